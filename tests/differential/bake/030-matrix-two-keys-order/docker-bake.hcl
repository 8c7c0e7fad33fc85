target "app" {
  name = "app-${os}-${arch}"
  matrix = {
    os   = ["linux", "windows"]
    arch = ["amd64", "arm64"]
  }
  platforms = ["${os}/${arch}"]
}
