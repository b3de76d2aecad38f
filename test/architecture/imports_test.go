// Package architecture holds tests of the repository's shape: which component may import which. The rules are the
// ones docs/architecture/packages.md draws; a change that breaks one should change the picture first.
package architecture

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/sinewmesh/sinew"

type pkg struct {
	ImportPath string
	Deps       []string
}

// packages lists every package of the module (tests excluded) with its transitive dependencies.
func packages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps=false", "-json=ImportPath,Deps", module+"/...")
	cmd.Dir = "../.."
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(out)
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	if len(pkgs) < 20 {
		t.Fatalf("go list found %d packages; the test is not looking at the module", len(pkgs))
	}
	return pkgs
}

func under(path, prefix string) bool {
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

func TestComponentBoundaries(t *testing.T) {
	t.Parallel()
	rules := []struct {
		from, why string
		not       []string
	}{
		{module + "/proxy", "the sidecar stays small: no Kubernetes client, no CLI framework, no control plane",
			[]string{"k8s.io/client-go", "github.com/spf13/cobra", module + "/controlplane", module + "/viz", module + "/cli"}},
		{module + "/cmd/sinew-proxy", "the sidecar binary links only the proxy",
			[]string{"k8s.io/client-go", "github.com/spf13/cobra", module + "/controlplane", module + "/viz", module + "/cli"}},
		{module + "/viz", "viz reads names from internal/names, not from the injector",
			[]string{module + "/controlplane", module + "/proxy"}},
		{module + "/controlplane", "the control plane does not link the proxy, viz or the CLI",
			[]string{module + "/proxy", module + "/viz", module + "/cli"}},
		{module + "/internal", "internal/ is infrastructure shared by components, with no component in it",
			[]string{module + "/proxy", module + "/controlplane", module + "/viz", module + "/cli"}},
		{module + "/api", "the contract depends on nothing of ours",
			[]string{module + "/proxy", module + "/controlplane", module + "/viz", module + "/cli", module + "/internal"}},
		{module + "/internal/names", "every component imports names, so names imports nothing of ours",
			[]string{module + "/"}},
	}
	for _, p := range packages(t) {
		for _, r := range rules {
			if !under(p.ImportPath, r.from) {
				continue
			}
			for _, d := range p.Deps {
				for _, n := range r.not {
					if under(d, strings.TrimSuffix(n, "/")) || (strings.HasSuffix(n, "/") && strings.HasPrefix(d, n)) {
						t.Errorf("%s imports %s: %s", p.ImportPath, d, r.why)
					}
				}
			}
		}
	}
}
