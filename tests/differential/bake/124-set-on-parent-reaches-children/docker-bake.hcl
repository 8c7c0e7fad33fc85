target "base" {
  tags = ["base"]
  args = { MODE = "dev" }
}

target "app" {
  inherits = ["base"]
  args = { OWN = "1" }
}
