variable "NAME" {
  default = "app"
}

target "app" {
  args = {
    LEN = length(NAME)
  }
}
