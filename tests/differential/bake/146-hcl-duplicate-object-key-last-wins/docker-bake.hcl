target "app" {
  args = {
    MODE = "dev"
    "MODE" = "prod"
    OTHER = "1"
  }
  labels = { a = "1", b = "2", a = "3" }
}
