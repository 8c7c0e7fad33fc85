target "deps" {
  network = "host"
  platforms = ["linux/amd64", "linux/arm64"]
}

target "base" {
  contexts = {
    deps  = "target:deps"
    empty = ""
  }
  entitlements = ["security.insecure"]
  platforms = ["linux/amd64", "linux/arm64"]
}

target "app" {
  contexts = { base = "target:base", alpine = "docker-image://alpine:3.20" }
  platforms = ["linux/arm64"]
}
