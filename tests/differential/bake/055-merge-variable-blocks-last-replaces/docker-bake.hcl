variable "TAG" {
  default = "1"
  validation {
    condition = TAG != "1"
    error_message = "no ones"
  }
}
variable "T2" {
  type = number
  default = 5
}
target "app" {
  args = { TAG = TAG, T2 = T2 }
}
