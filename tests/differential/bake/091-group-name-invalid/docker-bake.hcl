group "default" {
  targets = ["app"]
}

group "ci tests" {
  targets = ["app"]
}

target "app" {}
