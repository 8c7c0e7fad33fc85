function "tag" {
  params = [repo, version]
  result = "${repo}:${version}"
}

target "app" {
  tags = [tag("example/app", "1.0", "extra")]
}
