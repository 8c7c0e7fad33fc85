group "g" {
  name = "x"
  targets = ["app"]
}

target "app" {}
