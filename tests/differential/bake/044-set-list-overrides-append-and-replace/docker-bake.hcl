target "app" {
  tags         = ["a", "b"]
  platforms    = ["linux/amd64"]
  cache-from   = ["type=gha"]
  cache-to     = ["type=inline"]
  attest       = ["type=sbom", "type=provenance,mode=min"]
  annotations  = ["manifest:k=v"]
  entitlements = ["network.host"]
}
