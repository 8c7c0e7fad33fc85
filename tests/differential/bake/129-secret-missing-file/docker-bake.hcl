target "app" {
  secret = ["id=npmrc,src=.npmrc-missing"]
}
