function "valid" {
  params = [v]
  result = v != ""
}

variable "NAME" {
  default = "app"
  validation {
    condition     = valid(NAME) && valid(OTHER)
    error_message = "NAME and OTHER must be set"
  }
}

variable "OTHER" {
  default = valid("x") ? "" : "y"
}

target "app" {}
