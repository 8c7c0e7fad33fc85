variable "EXTRA_TAGS" {
  default = null
}

target "app" {
  tags = coalescelist(EXTRA_TAGS, ["app:latest"])
}
