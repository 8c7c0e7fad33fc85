target "app" {
  name = "app-v2"
}
