target "app" {
  dockerfile-inline = "FROM alpine\nRUN echo $${HOME} %%{x}"
  args        = { A = "$${x}" }
  labels      = { L = "%%{y}" }
  extra-hosts = { "h" = "$${ip}" }
  annotations = ["a=$${v}"]
  tags        = ["app:$${notescaped}"]
}
