variable "A" {
  default = "${B}-a"
}

variable "B" {
  default = "${A}-b"
}

target "app" {
  tags = [A]
}
