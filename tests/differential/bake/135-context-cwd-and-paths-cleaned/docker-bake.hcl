target "app" {
  context    = "cwd://./sub/../app/"
  dockerfile = ""
  contexts   = { assets = "cwd://assets", none = "" }
}

target "remote" {
  context = "https://github.com/docker/buildx.git#v0.28.0"
}
