target "app" {
  tags            = ["a", "b", "a", "", "c", "b"]
  platforms       = ["linux/amd64", "linux/arm64", "linux/amd64"]
  cache-from      = ["type=registry,ref=x", "type=gha", "type=registry,ref=x", "type=local,src=c", "type=gha"]
  cache-to        = ["type=inline", "type=inline"]
  output          = ["type=image,name=a", "type=docker", "type=image,name=a", "type=local,dest=out"]
  secret          = ["id=a,env=A", "id=b,env=B", "id=a,env=C"]
  attest          = ["type=sbom", "type=provenance,mode=max", "type=sbom,disabled=true"]
  annotations     = ["a=1", "a=1", "b=2"]
  no-cache-filter = ["x", "x"]
  ulimits         = ["nofile=1024:2048", "nofile=1024:2048"]
  entitlements    = ["network.host", "security.insecure", "network.host"]
}
