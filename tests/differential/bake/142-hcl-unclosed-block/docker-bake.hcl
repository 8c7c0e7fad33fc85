target "app" {
  tags = ["a"]

target "other" {
  tags = ["b"]
}
