target "app" {
  tags   = ["example/app"]
  output = ["type=registry", "type=image,name=example/app", "type=local,dest=out", "type=registry"]
}
