function "valid" {
  params = [v]
  result = v != ""
}

variable "NAME" {
  default = "app"
  validation {
    condition     = valid(NAME)
    error_message = "NAME is empty"
  }
}

target "app" {}
