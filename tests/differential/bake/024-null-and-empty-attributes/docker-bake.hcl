target "base" {
  dockerfile = "base.Dockerfile"
  target = "base"
  network = "none"
  tags = ["base"]
}
target "app" {
  inherits = ["base"]
  context = ""
  dockerfile = null
  target = ""
  network = ""
  tags = [""]
  platforms = null
  output = [""]
  cache-from = []
  args = { A = "", B = null }
  labels = {}
  contexts = { x = "" }
  no-cache-filter = []
  call = ""
  description = ""
}
