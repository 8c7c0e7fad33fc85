variable "BASE_ARGS" {
  default = {
    A = "1"
    B = null
  }
}

variable "NONE" {
  default = null
}

target "app" {
  args = merge(BASE_ARGS, NONE, {
    C          = "3"
    DISTINCT   = jsonencode(distinct(["a", null, "a", null, 1, "1"]))
    FLATTEN    = jsonencode(flatten([["a", ["b", null]], [], "c"]))
    CONCAT     = jsonencode(concat(["a"], [], [null, 2]))
    LOOKUP     = lookup({ x = "1" }, "y", "default")
    LOOKUP_NUL = jsonencode(lookup({ x = null }, "x", "default"))
    CONTAINS   = contains(["1", 2], "2")
    CONTAINS_N = contains([1, 2], 2)
    KEYS       = jsonencode(keys({ b = 1, a = null }))
    VALUES     = jsonencode(values({ b = 1, a = null }))
    ELEMENT    = element(["a", "b", "c"], -1)
    INDEX      = index(["a", null], 1) == null
    SLICE      = jsonencode(slice(["a", "b", "c"], 1, 3))
    SORT       = jsonencode(sort(["b", "", "a", 10, 9]))
    LENGTH     = length(["", null])
    MERGE_NULL = jsonencode(merge({ a = "x" }, { a = null }))
  })
}
