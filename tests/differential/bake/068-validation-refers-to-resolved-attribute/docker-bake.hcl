X = "a"
variable "B" {
  default = X
}
variable "A" {
  default = "a"
  validation {
    condition = A != X
    error_message = "A (${A}) must differ from X (${X})"
  }
}
target "app" {}
