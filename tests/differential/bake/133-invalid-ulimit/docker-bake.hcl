target "app" {
  ulimits = ["nofile=2048:1024"]
}
