package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// File is one regular file copied into the image: Src on the host, Dst an absolute path in the image.
type File struct {
	Src, Dst string
}

// Spec describes a single-layer image.
type Spec struct {
	Ref        string
	Entrypoint []string
	User       string
	Env        []string
	Files      []File
}

// Write builds the image described by spec and writes it as a tarball to dst. The output depends only on the
// files' contents and modes (timestamps are zeroed), so rebuilding unchanged binaries gives the same digest.
func Write(dst string, spec Spec) error {
	ref, err := name.NewTag(spec.Ref)
	if err != nil {
		return fmt.Errorf("image reference %q: %w", spec.Ref, err)
	}
	layerTar, err := layerTar(spec.Files)
	if err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return fmt.Errorf("layer: %w", err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return fmt.Errorf("layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Created = v1.Time{Time: time.Unix(0, 0).UTC()}
	cf.Config = v1.Config{
		Entrypoint: spec.Entrypoint,
		User:       spec.User,
		Env:        append([]string{"PATH=/"}, spec.Env...),
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}
	tmp := dst + ".tmp"
	if err := tarball.WriteToFile(tmp, ref, img); err != nil {
		_ = os.Remove(tmp) // the write error is the one to report
		return fmt.Errorf("write %s: %w", dst, err)
	}
	return os.Rename(tmp, dst)
}

// layerTar returns an uncompressed tar holding the files and their parent directories, plus /tmp.
func layerTar(files []File) ([]byte, error) {
	if len(files) == 0 {
		return nil, errors.New("an image needs at least one file")
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{"/": true}
	var writeDirs func(p string) error
	writeDirs = func(p string) error {
		if dirs[p] {
			return nil
		}
		if err := writeDirs(path.Dir(p)); err != nil {
			return err
		}
		dirs[p] = true
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(p, "/") + "/", Mode: 0o755, Format: tar.FormatPAX})
	}
	sorted := append([]File(nil), files...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Dst < sorted[j].Dst })
	for _, f := range sorted {
		if !path.IsAbs(f.Dst) {
			return nil, fmt.Errorf("destination %q of %s must be an absolute path", f.Dst, f.Src)
		}
		dst := path.Clean(f.Dst)
		data, err := os.ReadFile(f.Src)
		if err != nil {
			return nil, fmt.Errorf("file for %s: %w", dst, err)
		}
		fi, err := os.Stat(f.Src)
		if err != nil {
			return nil, err
		}
		if err := writeDirs(path.Dir(dst)); err != nil {
			return nil, err
		}
		hdr := &tar.Header{
			Typeflag: tar.TypeReg, Name: strings.TrimPrefix(dst, "/"), Mode: int64(fi.Mode().Perm()),
			Size: int64(len(data)), Format: tar.FormatPAX,
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	// A world-writable /tmp, as programs expect one (Go's os.TempDir); a pod may still mount over it.
	if !dirs["/tmp"] {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "tmp/", Mode: 0o1777, Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
