group "default" {
  targets = ["bar"]
}

group "foo-grp" {
  description = "Foo targets"
  targets = ["foo-a", "bar"]
}

target "foo-a" {}
target "foo-b" {}
target "bar" {}
target "boo" {}
