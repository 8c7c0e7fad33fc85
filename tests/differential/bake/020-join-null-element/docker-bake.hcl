variable "SUFFIX" {
  default = null
}

target "app" {
  tags = [join("-", ["app", SUFFIX])]
}
