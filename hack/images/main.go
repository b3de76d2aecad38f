// Command images wraps static binaries into single-layer container image tarballs without a Docker engine or a
// registry. The tarballs use the docker-archive layout (manifest.json + config + layer), which both
// `ctr images import` and `docker load` accept.
//
//	go run ./hack/images mesh -version V -bin DIR -out DIR [-registry R] NAME...
//	    one image per NAME: DIR/NAME becomes /NAME, the entrypoint, tagged R/NAME:V, written to OUT/NAME.tar
//	go run ./hack/images wrap -o FILE -name REF -entrypoint /PATH [-user UID] SRC[:DST]...
//	    any files (used by hack/cluster for the pause and CoreDNS images)
//	go run ./hack/images prometheus -o FILE -name REF [-binary /usr/bin/prometheus]
//	    Debian's dynamically linked prometheus and the libraries ldd lists (the local cluster's Prometheus)
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(1)
	}
}

const usage = `usage:
  images mesh -version V -bin DIR -out DIR [-registry R] NAME...
  images wrap -o FILE -name REF -entrypoint /PATH [-user UID] SRC[:DST]...
  images prometheus -o FILE -name REF [-binary /usr/bin/prometheus]`

func run(args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	switch args[0] {
	case "mesh":
		return runMesh(args[1:], out)
	case "wrap":
		return runWrap(args[1:], out)
	case "prometheus":
		return runPrometheus(args[1:], out)
	default:
		return fmt.Errorf("unknown subcommand %q\n%s", args[0], usage)
	}
}

// meshUsers is the default user of each mesh image. The proxy runs as the UID that sinew-init exempts from
// capture; sinew-init must be root (it programs nftables with NET_ADMIN). Everything else runs as nobody.
var meshUsers = map[string]string{
	"sinew-proxy": "2102",
	"sinew-init":  "0",
}

const nobody = "65534"

func runMesh(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("mesh", flag.ContinueOnError)
	version := fs.String("version", "", "image tag (the build's version)")
	registry := fs.String("registry", "ghcr.io/sinewmesh", "image registry prefix")
	binDir := fs.String("bin", "", "directory holding the static binaries")
	outDir := fs.String("out", "", "directory for the image tarballs")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *version == "" || *binDir == "" || *outDir == "" || fs.NArg() == 0 {
		return errors.New("mesh needs -version, -bin, -out and at least one image name")
	}
	if err := os.MkdirAll(*outDir, 0o755); err != nil {
		return err
	}
	for _, name := range fs.Args() {
		user, ok := meshUsers[name]
		if !ok {
			user = nobody
		}
		spec := Spec{
			Ref:        fmt.Sprintf("%s/%s:%s", strings.TrimSuffix(*registry, "/"), name, *version),
			Entrypoint: []string{"/" + name},
			User:       user,
			Files:      []File{{Src: filepath.Join(*binDir, name), Dst: "/" + name}},
		}
		dst := filepath.Join(*outDir, name+".tar")
		if err := Write(dst, spec); err != nil {
			return fmt.Errorf("image %s: %w", name, err)
		}
		fmt.Fprintf(out, "%s -> %s\n", spec.Ref, dst)
	}
	return nil
}

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(s string) error { *m = append(*m, s); return nil }

func runWrap(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("wrap", flag.ContinueOnError)
	o := fs.String("o", "", "output tarball")
	ref := fs.String("name", "", "image reference")
	ep := fs.String("entrypoint", "", "entrypoint, space separated")
	user := fs.String("user", "", "default user")
	var env multi
	fs.Var(&env, "env", "K=V (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *o == "" || *ref == "" || fs.NArg() == 0 {
		return errors.New("wrap needs -o, -name and at least one SRC[:DST]")
	}
	spec := Spec{Ref: *ref, Entrypoint: strings.Fields(*ep), User: *user, Env: env}
	for _, a := range fs.Args() {
		src, dst, ok := strings.Cut(a, ":")
		if !ok {
			dst = "/" + filepath.Base(src)
		}
		spec.Files = append(spec.Files, File{Src: src, Dst: dst})
	}
	if err := Write(*o, spec); err != nil {
		return err
	}
	fmt.Fprintf(out, "%s -> %s\n", spec.Ref, *o)
	return nil
}
