target "base" {
  tags = ["example/base:1"]
}

target "app" {
  cache-from = ["type=registry,ref=${target.base.tags[0]}"]
  args = {
    BASE_CONTEXT = "${target.base.context}"
  }
}
