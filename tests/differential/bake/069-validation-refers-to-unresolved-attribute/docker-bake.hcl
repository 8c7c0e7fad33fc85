X = "a"
variable "A" {
  default = "x"
  validation {
    condition = A != X
    error_message = "A must differ from X"
  }
}
target "app" {}
