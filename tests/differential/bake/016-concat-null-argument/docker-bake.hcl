variable "MORE" {
  default = null
}

target "app" {
  tags = concat(["app:latest"], MORE)
}
