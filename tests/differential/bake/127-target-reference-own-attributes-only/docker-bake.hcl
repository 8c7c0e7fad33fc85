target "_defaults" {
  dockerfile = "defaults.Dockerfile"
}

target "base" {
  inherits = ["_defaults"]
  tags = ["example/base:1", "example/base:latest"]
  args = { A = "1" }
}

target "app" {
  cache-from = [for t in target.base.tags : "type=registry,ref=${t}"]
  args = {
    BASE_DOCKERFILE = jsonencode(target.base.dockerfile)
    BASE_ARGS       = jsonencode(target.base.args)
  }
}
