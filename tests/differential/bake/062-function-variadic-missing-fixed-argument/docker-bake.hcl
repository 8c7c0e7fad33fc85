function "tags" {
  params = [repo, suffix]
  variadic_params = versions
  result = [for v in versions : "${repo}:${v}${suffix}"]
}

target "app" {
  tags = tags("example/app")
}
