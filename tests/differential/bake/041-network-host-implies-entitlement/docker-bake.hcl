target "base" {
  network = "host"
  entitlements = ["security.insecure"]
}

target "app" {
  inherits = ["base"]
  network = "none"
}

target "builder" {
  inherits = ["base"]
  entitlements = ["network.host"]
}
