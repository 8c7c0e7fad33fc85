target "app" {
  tags = ["one"]
  ulimits = ["nofile=1"]
  pull = true
}

target "other" {}

target "app" {
  tags = ["two"]
  ulimits = ["nproc=2"]
  pull = false
}
