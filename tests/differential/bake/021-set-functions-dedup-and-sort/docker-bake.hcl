target "app" {
  platforms = setunion(["linux/arm64", "linux/amd64"], ["linux/amd64", "linux/riscv64"])
  args = {
    UNION     = jsonencode(setunion(["b", "a"], [], ["c", "a"]))
    INTERSECT = jsonencode(setintersection(["a", "b", "c"], ["c", "a"]))
    SUBTRACT  = jsonencode(setsubtract(["a", "b", "c"], ["b"]))
    SYMDIFF   = jsonencode(setsymmetricdifference(["a", "b"], ["b", "c"]))
    HAS       = sethaselement(["a", "b"], "b")
    NUMBERS   = jsonencode(setunion([3, 1], [2, 1]))
  }
}
