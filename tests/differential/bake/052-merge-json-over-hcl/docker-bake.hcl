group "default" {
  targets = ["app", "worker"]
}

target "app" {
  tags        = ["app:dev"]
  annotations = ["org.opencontainers.image.title=app"]
  args        = { MODE = "dev" }
}

target "worker" {
  tags = ["worker:dev"]
}
