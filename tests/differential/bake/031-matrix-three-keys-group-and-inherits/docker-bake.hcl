group "default" {
  targets = ["build", "extra"]
}

target "_common" {
  labels = { "org.example.team" = "core" }
}

target "build" {
  inherits = ["_common"]
  name = "build-${variant}-${replace(go, ".", "")}-${tgt}"
  matrix = {
    variant = ["slim", "full"]
    tgt     = ["bin", "image"]
    go      = ["1.22", "1.23"]
  }
  target = tgt
  args = {
    GO_VERSION = go
    VARIANT    = variant
  }
}

target "extra" {
  inherits = ["build-full-123-image"]
  tags = ["extra"]
}
