target "app" {
  output = ["type=local"]
}
