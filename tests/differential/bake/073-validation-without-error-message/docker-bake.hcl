variable "PORT" {
  default = 80
  validation {
    condition = PORT > 1024
  }
}

target "app" {}
