target "app" {
  tags            = ["b:1"]
  platforms       = ["linux/arm64"]
  cache-from      = ["type=registry,ref=y", "type=registry,ref=x"]
  cache-to        = ["type=local,dest=cache"]
  output          = ["type=image"]
  secret          = ["id=a,src=b.txt", "id=c,env=C"]
  attest          = ["type=sbom,disabled=true"]
  annotations     = ["b=2", "a=1"]
  no-cache-filter = ["s2", "s1"]
  ulimits         = ["nproc=10"]
  entitlements    = ["security.insecure"]
  args            = { B = "3", C = null }
  labels          = { M = "2" }
  contexts        = { c2 = "./c2" }
  extra-hosts     = { h2 = "2.2.2.2" }
  target          = null
}
