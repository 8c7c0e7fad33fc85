variable "SERVICES" {
  default = [
    { name = "api", port = 8080 },
    { name = "web", port = 80 },
  ]
}

target "svc" {
  name = "svc-${s.name}-${replace(v, ".", "_")}"
  matrix = {
    v = ["1.0", "2.0"]
    s = SERVICES
  }
  args = {
    PORT    = s.port
    VERSION = v
  }
  tags = ["example/${s.name}:${v}"]
}
