variable "MIN" {
  default = 3
}

variable "COUNT" {
  default = 5
  validation {
    condition     = COUNT >= MIN
    error_message = "COUNT (${COUNT}) must be at least MIN (${MIN})."
  }
}

target "app" {
  args = {
    COUNT = COUNT
  }
}
