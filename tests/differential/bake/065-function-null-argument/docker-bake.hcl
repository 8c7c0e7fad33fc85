variable "SUFFIX" {
  default = null
}

function "tag" {
  params = [repo, suffix]
  result = "${repo}${suffix == null ? "" : suffix}"
}

target "app" {
  tags = [tag("example/app", SUFFIX)]
}
