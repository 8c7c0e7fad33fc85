target "app" {
  tags = concat(["a"], target.app.tags)
}
