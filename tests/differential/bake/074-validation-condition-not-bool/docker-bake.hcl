variable "NAME" {
  default = "app"
  validation {
    condition     = NAME
    error_message = "unused"
  }
}

target "app" {}
