group "all" {
  targets = ["app", "lint"]
}
target "app" {
  dockerfile = "app.Dockerfile"
}
target "lint" {
  target = "lint"
}
target "base" {}
