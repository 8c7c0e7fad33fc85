variable "EXTRA" {
  default = null
}

target "app" {
  tags = ["app:latest", EXTRA]
}
