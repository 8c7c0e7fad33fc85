target "app" {
  secret = ["id=TOKEN", { id = "other", env = "OTHER" }, "type=env,id=T2,src=TOKEN"]
}
