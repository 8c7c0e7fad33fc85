variable "TAG" {
  description = "later"
}
variable "T2" {
  default = "7"
}
