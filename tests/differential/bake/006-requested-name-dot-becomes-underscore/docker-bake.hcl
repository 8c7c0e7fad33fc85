target "web_app" {
  tags = ["web"]
}
