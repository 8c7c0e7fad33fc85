variable "JOBS" {
  default = null
}

target "app" {
  args = {
    NEXT = JOBS + 1
  }
}
