// Writes gotar-headers.tar: headers of the kinds BuildKit's layers hold, as
// containerd's archive.ChangeWriter hands them to Go's archive/tar (Format PAX, times
// in whole seconds, no user or group names), plus a whiteout (Format left unset).
// Regenerate with: go run gotar-headers.go (Go 1.23; no module needed).
package main

import (
	"archive/tar"
	"os"
	"strings"
	"time"
)

func main() {
	f, err := os.Create("gotar-headers.tar")
	if err != nil {
		panic(err)
	}
	tw := tar.NewWriter(f)
	t := time.Unix(1700000000, 0)
	long := strings.Repeat("d", 120) + "/" + strings.Repeat("f", 50)
	hdrs := []struct {
		h    tar.Header
		data string
	}{
		{tar.Header{Typeflag: tar.TypeDir, Name: "etc/", Mode: 0o755, ModTime: t}, ""},
		{tar.Header{Typeflag: tar.TypeReg, Name: "etc/hosts", Mode: 0o644, Size: 6, ModTime: t}, "hello\n"},
		{tar.Header{Typeflag: tar.TypeReg, Name: "suid", Mode: 0o4755, Uid: 1000, Gid: 1000, Size: 0, ModTime: t}, ""},
		{tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/sh", Linkname: "/bin/busybox", Mode: 0o777, ModTime: t}, ""},
		{tar.Header{Typeflag: tar.TypeLink, Name: "bin/ash", Linkname: "bin/busybox", Mode: 0o755, ModTime: t}, ""},
		{tar.Header{Typeflag: tar.TypeChar, Name: "dev/null", Mode: 0o666, Devmajor: 1, Devminor: 3, ModTime: t}, ""},
		{tar.Header{Typeflag: tar.TypeBlock, Name: "dev/loop0", Mode: 0o660, Gid: 6, Devmajor: 7, Devminor: 0, ModTime: t}, ""},
		{tar.Header{Typeflag: tar.TypeFifo, Name: "run/fifo", Mode: 0o600, ModTime: t}, ""},
		{tar.Header{Typeflag: tar.TypeReg, Name: long, Mode: 0o644, Size: 1, ModTime: t}, "x"},
		{tar.Header{Typeflag: tar.TypeDir, Name: strings.Repeat("e", 101) + "/", Mode: 0o755, ModTime: t}, ""},
		{tar.Header{Typeflag: tar.TypeReg, Name: strings.Repeat("x", 130), Mode: 0o644, ModTime: t}, ""},
		{tar.Header{Typeflag: tar.TypeReg, Name: "caf\u00e9/na\u00efve", Mode: 0o644, ModTime: t}, ""},
		{tar.Header{Typeflag: tar.TypeReg, Name: "bad\xffname", Mode: 0o644, ModTime: t}, ""},
		{tar.Header{Typeflag: tar.TypeSymlink, Name: "link", Linkname: strings.Repeat("t", 150), Mode: 0o777, ModTime: t}, ""},
		{tar.Header{Typeflag: tar.TypeReg, Name: "bigid", Mode: 0o644, Uid: 3000000, Gid: 4000000, ModTime: t}, ""},
		{tar.Header{Typeflag: tar.TypeReg, Name: "old", Mode: 0o644, ModTime: time.Unix(-86400, 0)}, ""},
		{tar.Header{Typeflag: tar.TypeReg, Name: "bin/ping", Mode: 0o755, Size: 2, ModTime: t,
			PAXRecords: map[string]string{"SCHILY.xattr.security.capability": "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"}}, "pi"},
		{tar.Header{Typeflag: tar.TypeDir, Name: "caps/", Mode: 0o755, ModTime: t,
			PAXRecords: map[string]string{"SCHILY.xattr.security.capability": "\x01"}}, ""},
	}
	for _, e := range hdrs {
		h := e.h
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(&h); err != nil {
			panic(err)
		}
		if _, err := tw.Write([]byte(e.data)); err != nil {
			panic(err)
		}
	}
	wh := time.Unix(0, 0).UTC()
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "etc/.wh.gone", ModTime: wh, AccessTime: wh, ChangeTime: wh}); err != nil {
		panic(err)
	}
	if err := tw.Close(); err != nil {
		panic(err)
	}
}
