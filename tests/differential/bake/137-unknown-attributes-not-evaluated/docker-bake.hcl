target "app" {
  tags = ["app"]
  privileged = true
  memory = undefined_function()
}
