package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// The local cluster has no internet, so it cannot pull Prometheus. Its image is Debian's prometheus binary
// (apt-get install prometheus) with the shared libraries it is linked against, under a name of ours: it is not the
// official prom/prometheus image and does not pretend to be.
const prometheusBinary = "/usr/bin/prometheus"

func runPrometheus(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("prometheus", flag.ContinueOnError)
	o := fs.String("o", "", "output tarball")
	ref := fs.String("name", "", "image reference, e.g. ghcr.io/sinewmesh/prometheus-debian:<Debian version>")
	binary := fs.String("binary", prometheusBinary, "the prometheus program to wrap")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *o == "" || *ref == "" || fs.NArg() != 0 {
		return errors.New("prometheus needs -o and -name")
	}
	if _, err := os.Stat(*binary); err != nil {
		return fmt.Errorf("%s is missing: the local cluster's Prometheus image is built from Debian's prometheus package; install it with `apt-get install prometheus` (%v)", *binary, err)
	}
	files, err := withLibraries(*binary, "/bin/prometheus")
	if err != nil {
		return err
	}
	spec := Spec{Ref: *ref, Entrypoint: []string{"/bin/prometheus"}, User: nobody, Files: files}
	if err := Write(*o, spec); err != nil {
		return fmt.Errorf("image %s: %w", *ref, err)
	}
	fmt.Fprintf(out, "%s -> %s (%s and %d libraries)\n", spec.Ref, *o, *binary, len(files)-1)
	return nil
}

// withLibraries returns the binary, to be placed at dst, and every shared library ldd says it loads, each at the
// path ldd gives (the dynamic loader looks for them there).
func withLibraries(binary, dst string) ([]File, error) {
	files := []File{{Src: binary, Dst: dst}}
	out, err := exec.Command("ldd", binary).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "not a dynamic executable") {
			return files, nil
		}
		return nil, fmt.Errorf("ldd %s: %v: %s", binary, err, strings.TrimSpace(string(out)))
	}
	libs, err := parseLdd(string(out))
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w", binary, err)
	}
	for _, l := range libs {
		files = append(files, File{Src: l, Dst: l})
	}
	return files, nil
}

// parseLdd reads the libraries' paths from ldd's output: "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" and
// the loader's "/lib64/ld-linux-x86-64.so.2 (0x…)". The vDSO has no file; a library ldd did not find is an error.
func parseLdd(out string) ([]string, error) {
	var libs []string
	seen := map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if strings.Contains(line, "=> not found") {
			return nil, fmt.Errorf("a library is missing: %s", line)
		}
		p := line
		if _, after, ok := strings.Cut(line, "=>"); ok {
			p = strings.TrimSpace(after)
		}
		if i := strings.Index(p, " ("); i >= 0 {
			p = p[:i]
		}
		if !filepath.IsAbs(p) || seen[p] {
			continue // linux-vdso.so.1 and the like
		}
		seen[p] = true
		libs = append(libs, p)
	}
	return libs, nil
}
