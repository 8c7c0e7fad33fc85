target "app" {
  name = "app-${os}-${arch}"
  matrix = {
    os   = ["linux", "darwin"]
    arch = ["amd64", "arm64"]
  }
}
