function "now" {
  variadic_params = parts
  result = join("-", parts)
}

target "app" {
  tags = [now("a", "b")]
}
