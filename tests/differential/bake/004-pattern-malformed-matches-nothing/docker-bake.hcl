target "foo-a" {}
target "foo-b" {}
