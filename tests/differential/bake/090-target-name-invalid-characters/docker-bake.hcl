target "app" {}

target "app.v2" {
  tags = ["app:v2"]
}
