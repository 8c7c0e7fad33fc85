group "default" {
  targets = ["app"]
}
target "_base" {
  args = { B = "1" }
}
target "app" {
  inherits = ["_base"]
  name = "app-${v}"
  matrix = { v = ["1", "2"] }
}
target "lint" {
  inherits = ["_base"]
}
