target "web" {
  args = { FROM_HCL = "1" }
  cache-from = ["type=gha"]
  tags = ["example/web:hcl"]
}
