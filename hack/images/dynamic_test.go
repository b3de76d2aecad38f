package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func TestParseLdd(t *testing.T) {
	out := "\tlinux-vdso.so.1 (0x00007ffd)\n" +
		"\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f0d)\n" +
		"\t/lib64/ld-linux-x86-64.so.2 (0x00007f0e)\n"
	got, err := parseLdd(out)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if _, err := parseLdd("\tlibfoo.so.1 => not found\n"); err == nil || !strings.Contains(err.Error(), "libfoo") {
		t.Errorf("a missing library: %v", err)
	}
}

func TestPrometheusImage(t *testing.T) {
	dir := t.TempDir()
	err := run([]string{"prometheus", "-o", filepath.Join(dir, "p.tar"), "-name", "ghcr.io/sinewmesh/prometheus-debian:1", "-binary", filepath.Join(dir, "nope")}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "apt-get install prometheus") {
		t.Fatalf("without the binary: %v", err)
	}
	// any dynamically linked program shows the layout: the binary at /bin/prometheus and its loader
	sh := "/bin/sh"
	if _, err := os.Stat(sh); err != nil {
		t.Skip("no /bin/sh")
	}
	out := filepath.Join(dir, "p.tar")
	if err := run([]string{"prometheus", "-o", out, "-name", "ghcr.io/sinewmesh/prometheus-debian:1", "-binary", sh}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag("ghcr.io/sinewmesh/prometheus-debian:1")
	img, err := tarball.ImageFromPath(out, &tag)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cf.Config.Entrypoint, " ") != "/bin/prometheus" || cf.Config.User != "65534" {
		t.Errorf("entrypoint %v user %q", cf.Config.Entrypoint, cf.Config.User)
	}
}
