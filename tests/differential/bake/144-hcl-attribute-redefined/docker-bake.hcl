target "app" {
  tags = ["a"]
  platforms = ["linux/amd64"]
  tags = ["b"]
}
