//go:build e2e

package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestHelmInstall installs both charts with plain Helm, as docs/getting-started/kubernetes.md tells users to, and
// checks that the result is as healthy as a `sinew install`, then that `helm uninstall` removes it.
func TestHelmInstall(t *testing.T) {
	e := loadEnv(t)
	helmBin := filepath.Join(t.TempDir(), "helm")
	build := exec.Command("go", "build", "-o", helmBin, "helm.sh/helm/v3/cmd/helm") // pinned as a go.mod tool
	build.Dir = e.repo
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building helm: %v\n%s", err, out)
	}
	j := newJourney(t, cpNS)
	j.step("clean-slate", nil, func(t *testing.T) { removeLeftovers(t) })
	certs := filepath.Join(e.repo, "cli/testdata/install") // valid until 2124
	j.step("helm-install", []string{"clean-slate"}, func(t *testing.T) {
		must(t, 2*time.Minute, "", helmBin, "install", "sinew-crds", filepath.Join(e.repo, "charts/sinew-crds"))
		kubectl(t, "create", "namespace", cpNS)
		kubectl(t, "label", "namespace", cpNS, "sinew.dev/is-control-plane=true",
			"config.sinew.dev/admission-webhooks=disabled", "sinew.dev/control-plane-ns=sinew",
			"pod-security.kubernetes.io/enforce=privileged")
		must(t, 2*time.Minute, "", helmBin, "install", "sinew", filepath.Join(e.repo, "charts/sinew-control-plane"),
			"--namespace", cpNS, "--set", "installNamespace=false", "--set", "image.tag="+e.version,
			"--set-file", "identity.trustAnchorsPEM="+certs+"/ca.crt",
			"--set-file", "identity.issuer.tls.crtPEM="+certs+"/issuer.crt",
			"--set-file", "identity.issuer.tls.keyPEM="+certs+"/issuer.key",
			"--set-file", "proxyInjector.tls.crtPEM="+certs+"/webhook.crt",
			"--set-file", "proxyInjector.tls.keyPEM="+certs+"/webhook.key",
			"--set-file", "proxyInjector.caBundle="+certs+"/webhook-ca.crt")
	})
	j.step("check", []string{"helm-install"}, func(t *testing.T) {
		out := must(t, 4*time.Minute, "", e.sinew, "check", "--wait", "3m")
		if !strings.Contains(out, "Status check results are ✔") {
			t.Fatalf("sinew check after a Helm install:\n%s", out)
		}
	})
	j.step("helm-uninstall", []string{"helm-install"}, func(t *testing.T) {
		must(t, 3*time.Minute, "", helmBin, "uninstall", "--namespace", cpNS, "sinew", "--wait")
		must(t, 3*time.Minute, "", helmBin, "uninstall", "sinew-crds", "--wait")
		kubectl(t, "delete", "namespace", cpNS, "--wait=true", "--timeout=3m")
		if left := sinewObjects(); len(left) > 0 {
			t.Fatalf("helm uninstall left: %v", left)
		}
	})
}
