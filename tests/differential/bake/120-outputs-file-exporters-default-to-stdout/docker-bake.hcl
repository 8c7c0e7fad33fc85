target "tar" {
  output = ["type=tar"]
}

target "oci" {
  output = [{ type = "oci", name = "example/app" }]
}

target "docker" {
  output = ["type=docker", "type=oci,tar=false,dest=layout"]
}
