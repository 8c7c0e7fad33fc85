target "app" {
  name = "app-${v}"
  matrix = ["1.0", "2.0"]
}
