variable "PORT" {
  type    = number
  default = "8080"
}

variable "RETRIES" {
  type    = number
  default = 3
}

variable "DEBUG" {
  type    = bool
  default = "true"
}

variable "UNTYPED" {}

target "app" {
  args = {
    NEXT_PORT = PORT + 1
    RETRIES   = RETRIES * 2
    DEBUG     = DEBUG ? "on" : "off"
    UNTYPED   = "[${UNTYPED}]"
  }
}
