target "app" {
  shm-size = "lots"
}
