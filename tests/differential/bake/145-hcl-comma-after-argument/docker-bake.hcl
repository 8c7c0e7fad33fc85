target "app" {
  tags = ["a"],
  platforms = ["linux/amd64"]
}
