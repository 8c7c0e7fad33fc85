target "app" {
  output = ["dest=out", "", "type=image,push=false"]
}
