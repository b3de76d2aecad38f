package main

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func TestMeshImage(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "sinew-proxy"), []byte("#!fake binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "images")
	var log bytes.Buffer
	if err := run([]string{"mesh", "-version", "1.2.3", "-bin", bin, "-out", out, "sinew-proxy"}, &log); err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag("ghcr.io/sinewmesh/sinew-proxy:1.2.3")
	img, err := tarball.ImageFromPath(filepath.Join(out, "sinew-proxy.tar"), &tag)
	if err != nil {
		t.Fatalf("the tarball does not hold %s: %v", tag, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cf.Config.Entrypoint, " "); got != "/sinew-proxy" || cf.Config.User != "2102" || cf.OS != "linux" {
		t.Fatalf("config: entrypoint %q user %q os %q", got, cf.Config.User, cf.OS)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("want one layer, got %d (%v)", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files := map[string]int64{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = h.Mode
		if h.Name == "sinew-proxy" {
			b, _ := io.ReadAll(tr)
			if string(b) != "#!fake binary" {
				t.Fatalf("binary content %q", b)
			}
		}
	}
	if files["sinew-proxy"] != 0o755 || files["tmp/"] != 0o1777 || len(files) != 2 {
		t.Fatalf("layer entries (name: mode): %v", files)
	}
}

func TestImagesAreReproducible(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "x")
	if err := os.WriteFile(src, []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	digest := func(p string) string {
		if err := Write(p, Spec{Ref: "example.test/x:1", Entrypoint: []string{"/x"}, Files: []File{{Src: src, Dst: "/x"}}}); err != nil {
			t.Fatal(err)
		}
		img, err := tarball.ImageFromPath(p, nil)
		if err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d.String()
	}
	a := digest(filepath.Join(dir, "a.tar"))
	// Without the changed mtime the second image would match trivially.
	if err := os.Chtimes(src, time.Now().Add(-time.Hour), time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if b := digest(filepath.Join(dir, "b.tar")); a != b {
		t.Fatalf("same inputs, different digests: %s %s", a, b)
	}
}

func TestErrors(t *testing.T) {
	for _, args := range [][]string{
		{}, {"nope"}, {"mesh", "-bin", "x", "-out", "y", "a"}, {"wrap", "-o", "x"},
		{"mesh", "-version", "1", "-bin", t.TempDir(), "-out", t.TempDir(), "missing-binary"},
	} {
		if err := run(args, io.Discard); err == nil {
			t.Errorf("run(%q) succeeded", args)
		}
	}
}
