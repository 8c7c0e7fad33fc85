variable "CONFIG" {
  type = object({
    registry = string
  })
  default = {
    registry = "docker.io"
  }
}

target "app" {
  tags = ["${CONFIG.registry}/example/app"]
}
