variable "TAG" {
  default = "dev"
  validation {
    condition     = MODE != "release" || can(regex("^v[0-9]+", TAG))
    error_message = "A release needs a version tag, got ${TAG}."
  }
}

variable "MODE" {
  default = "dev"
}

target "app" {
  tags = ["example/app:${TAG}"]
  args = {
    MODE = MODE
  }
}
