group "svcs" {
  targets = ["api-svc", "web-svc"]
}
group "all-svc" {
  targets = ["svcs"]
}
target "api-svc" {}
target "web-svc" {
  tags = ["web"]
}
