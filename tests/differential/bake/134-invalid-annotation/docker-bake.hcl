target "app" {
  annotations = ["manifest-list:org.example=1"]
}
