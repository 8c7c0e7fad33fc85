target "app" {
  cache-from = ["user/app:a,user/app:b", "user/app:a", "user/app:c", "user/app:b", "type=gha,scope=x", "user/app:a"]
  cache-to   = ["type=registry,ref=user/app:cache", "type=gha", "type=registry,ref=user/app:cache"]
}
