target "base" {
  args = { SOURCE_DATE_EPOCH = "1" }
}

target "app" {
  contexts = { base = "target:base" }
}
