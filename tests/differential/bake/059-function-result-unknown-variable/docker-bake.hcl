function "f" {
  params = [x]
  result = "${x}-${nope}"
}
target "app" {
  tags = ["a"]
}
