target "app" {
  platforms = ["linux/amd64", "toaster"]
}
