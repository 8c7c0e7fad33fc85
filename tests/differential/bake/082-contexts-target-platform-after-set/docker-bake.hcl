target "base" {
  platforms = ["linux/amd64"]
}

target "app" {
  contexts  = { base = "target:base" }
  platforms = ["linux/amd64", "linux/ppc64le"]
}
