target "app" {
  network = "none"
}
