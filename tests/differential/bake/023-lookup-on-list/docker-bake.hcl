target "app" {
  tags = [lookup(["a"], "x", "y")]
}
