target "app" {
  tags = sort(["b", null, "a"])
}
