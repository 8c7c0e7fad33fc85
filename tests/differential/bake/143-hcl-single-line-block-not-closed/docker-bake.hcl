target "app" { tags = ["a"]
}
