variable "A" {
  default = null
}

target "app" {
  args = {
    V = coalesce(A, null)
  }
}
