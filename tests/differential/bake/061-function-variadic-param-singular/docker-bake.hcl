function "tags" {
  params = [repo]
  variadic_param = versions
  result = [for v in versions : "${repo}:${v}"]
}

target "app" {
  tags = tags("example/app", "1.0")
}
