variable "REPO" {
  default = "example/app"
}

function "tags" {
  params = [repo]
  variadic_params = versions
  result = [for v in versions : "${repo}:${v}"]
}

function "count" {
  params = []
  variadic_params = items
  result = length(items)
}

function "first_or" {
  params = [fallback]
  variadic_params = rest
  result = length(rest) > 0 ? rest[0] : fallback
}

target "app" {
  tags = tags(REPO, "1.0", "latest")
  args = {
    NONE     = count()
    TWO      = count("a", "")
    SPREAD   = count(["x", "y", "z"]...)
    EMPTY    = jsonencode(tags(REPO))
    FIRST    = first_or("none", "a", "b")
    FALLBACK = first_or("none")
  }
}
