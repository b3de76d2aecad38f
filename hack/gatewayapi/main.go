// Command gatewayapi copies the Gateway API standard-channel CRDs of the version go.mod requires from the Go module
// cache into the sinew-crds chart (charts/sinew-crds/gateway-api/), which the CLI embeds. The copies are build
// output, never committed (.gitignore): `make build` runs this, so every make target that builds has them.
//
//	go run ./hack/gatewayapi [-out charts/sinew-crds/gateway-api]
//
// A file is only rewritten when its content changed, so repeated builds leave the embedded chart alone.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

const module = "sigs.k8s.io/gateway-api"

func main() {
	out := flag.String("out", "charts/sinew-crds/gateway-api", "directory to write the CRDs to")
	flag.Parse()
	if err := run(*out); err != nil {
		fmt.Fprintln(os.Stderr, "gatewayapi:", err)
		os.Exit(1)
	}
}

func run(out string) error {
	// Without a version, go mod download takes the one in the main module's build list (go.mod).
	cmd := exec.Command("go", "mod", "download", "-json", module)
	cmd.Stderr = os.Stderr
	b, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("go mod download %s: %w", module, err)
	}
	var m struct{ Version, Dir, Error string }
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("go mod download %s: %w", module, err)
	}
	if m.Error != "" || m.Dir == "" {
		return fmt.Errorf("go mod download %s: %s", module, m.Error)
	}
	src := filepath.Join(m.Dir, "config", "crd", "standard")
	files, err := filepath.Glob(filepath.Join(src, "gateway.networking.k8s.io_*.yaml"))
	if err != nil {
		return err
	}
	want := map[string][]byte{}
	for _, f := range files {
		name := filepath.Base(f)
		// the bundle's ValidatingAdmissionPolicy is not a CRD: installing CRDs should not add cluster policies
		if strings.Contains(name, "_vap_") {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if !bytes.Contains(data, []byte("gateway.networking.k8s.io/bundle-version: "+m.Version)) {
			return fmt.Errorf("%s: no bundle-version annotation %s", f, m.Version)
		}
		want[name] = data
	}
	if len(want) == 0 {
		return fmt.Errorf("no CRDs in %s", src)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	// drop CRDs of another version that are no longer in the bundle
	old, err := filepath.Glob(filepath.Join(out, "*.yaml"))
	if err != nil {
		return err
	}
	for _, f := range old {
		if _, ok := want[filepath.Base(f)]; !ok {
			if err := os.Remove(f); err != nil {
				return err
			}
		}
	}
	for name, data := range want {
		dst := filepath.Join(out, name)
		if cur, err := os.ReadFile(dst); err == nil && bytes.Equal(cur, data) {
			continue
		} else if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if err := os.WriteFile(dst, data, 0o644); err != nil { //nolint:gosec // a chart file, readable by all
			return err
		}
	}
	return nil
}
