target "lint" {
  args = { LINT = "1" }
  tags = ["lint"]
}

target "app" {
  inherits = ["lint"]
  dockerfile = "app.Dockerfile"
}
