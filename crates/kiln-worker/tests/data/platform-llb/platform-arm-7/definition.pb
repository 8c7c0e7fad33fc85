
31
/docker-image://docker.io/library/busybox:latest
{
I
Gsha256:74ecb5d790c33a213ba00f8f43d62947df1d4dea72f5ec13353a9b943f469f0fR
armlinux7

/bin/sh
-c
true//