target "test" {
  args = { TEST = "1", LINT = "0" }
  platforms = ["linux/arm64"]
}

target "app" {
  inherits = ["test"]
  args = { OWN = "1" }
}
