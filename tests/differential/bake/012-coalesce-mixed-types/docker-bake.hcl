target "app" {
  args = {
    V = coalesce(true, 1)
  }
}
