variable "IMAGES" {
  default = {
    app = "example/app"
  }
}

target "app" {
  tags = [lookup(IMAGES, "app")]
}
