group "empty" {
  description = "No targets"
}

target "app" {}
