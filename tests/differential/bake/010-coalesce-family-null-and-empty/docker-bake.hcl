variable "UNSET" {
  default = null
}

variable "EMPTY" {
  default = ""
}

variable "NOTHING" {}

target "app" {
  args = {
    EMPTY_WINS    = coalesce(UNSET, EMPTY, "fallback")
    NULL_SKIPPED  = coalesce(UNSET, "fallback")
    NO_DEFAULT    = coalesce(NOTHING, "fallback")
    UNIFIED       = coalesce(null, 1, "x")
    BOOL_STRING   = coalesce(false, "x")
    FIRST_LIST    = jsonencode(coalescelist([], [""], ["a"]))
    EMPTY_LIST    = jsonencode(coalesce([], ["a"]))
    COMPACT       = jsonencode(compact(["a", "", null, 1, "b"]))
    COMPACT_EMPTY = jsonencode(compact([]))
    NULL_ARG      = UNSET
  }
  tags = compact(["app:${EMPTY}latest", EMPTY, null])
}
