function "repeat" {
  params = [s, n]
  result = n > 0 ? "${s}${repeat(s, n - 1)}" : ""
}

target "app" {
  tags = [repeat("a", 3)]
}
