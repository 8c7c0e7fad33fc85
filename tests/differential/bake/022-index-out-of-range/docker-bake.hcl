target "app" {
  tags = [index(["a", "b"], 2)]
}
