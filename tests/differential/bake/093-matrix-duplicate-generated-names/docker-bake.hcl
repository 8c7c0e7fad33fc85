target "app" {
  name = "app-${lower(v)}"
  matrix = {
    v = ["A", "a"]
  }
}
