target "app" {
  description     = "first"
  tags            = ["a:1", "a:2"]
  platforms       = ["linux/amd64"]
  cache-from      = ["type=registry,ref=x", "user/app:cache"]
  cache-to        = ["type=inline"]
  output          = ["type=docker"]
  secret          = ["id=a,src=a.txt", "id=b,env=B"]
  attest          = ["type=sbom", "type=provenance,mode=min"]
  annotations     = ["a=1"]
  no-cache-filter = ["s1"]
  ulimits         = ["nofile=1024:1024"]
  entitlements    = ["network.host"]
  args            = { A = "1", B = "2" }
  labels          = { L = "1" }
  contexts        = { c1 = "./c1" }
  extra-hosts     = { h1 = "1.1.1.1" }
  network         = "none"
  shm-size        = "128m"
  target          = "first"
}
