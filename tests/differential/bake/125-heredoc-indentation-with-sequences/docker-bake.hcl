variable "PKGS" {
  default = ["curl", "git"]
}

target "app" {
  args = {
    INTERP = <<-EOT
      first
    ${"second"}
      third
      EOT
    DIRECTIVE_AT_START = <<-EOT
      a
%{ if true }b%{ endif }
      c
      EOT
    NESTED = <<-EOT
        deep
      ${upper("x")}y
        %{ for p in PKGS }${p} %{ endfor }
      EOT
    BLANK = <<-EOT
      a

        b
      EOT
  }
}
