variable "JOBS" {
  default = "2"
}

variable "DEBUG" {
  default = "false"
}

target "app" {
  args = {
    DOUBLE   = JOBS * 2
    NEXT     = "${JOBS + 1}"
    MANY     = JOBS > 3
    BOTH     = DEBUG && true
    NOT      = !DEBUG
    NEG      = -JOBS
    SAME     = JOBS == 4
    SAME_STR = JOBS == "4"
    LIST     = format("%v|%v", ["a", 1], { k = "v" })
    PICK     = DEBUG ? "debug" : "release"
  }
}
