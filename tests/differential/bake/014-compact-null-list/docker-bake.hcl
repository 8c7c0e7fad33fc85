variable "TAGS" {
  default = null
}

target "app" {
  tags = compact(TAGS)
}
