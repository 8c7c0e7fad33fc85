target "a" {
  contexts = { b = "target:b" }
}

target "b" {
  contexts = { c = "target:c" }
}

target "c" {
  contexts = { a = "target:a" }
}
