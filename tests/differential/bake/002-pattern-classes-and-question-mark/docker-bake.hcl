target "foo" {
  tags = ["foo"]
}
target "boo" {
  tags = ["boo"]
}
target "zoo" {
  tags = ["zoo"]
}
target "bar-1" {}
target "car-2" {}
target "bar" {}
