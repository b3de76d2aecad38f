package cli

import (
	"strings"
	"testing"

	"github.com/sinewmesh/sinew/cli/internal/localmesh"
	goldenfile "github.com/sinewmesh/sinew/internal/golden"
	"github.com/sinewmesh/sinew/viz"
)

// The viz commands live in viz/cmd with their own tests; these check what only the whole CLI shows: that they are
// registered, and that viz install reads what a real `sinew install` stored.

func TestVizInstallOverInstalledControlPlane(t *testing.T) {
	out := mustRun(t, testEnv(t, installed(t)), "viz", "install")
	goldenfile.CheckYAML(t, "../viz/cmd/testdata/install/viz-install.golden.yaml", out)
}

func TestVizUnknownSubcommandFails(t *testing.T) {
	for _, args := range [][]string{
		{"viz", "profile", "deploy/web"},
		{"viz", "profile", "deploy/web", "-n", "emojivoto"},
		{"viz", "-n", "emojivoto", "profile"},
	} {
		r := run(t, testEnv(t, nil), args...)
		if r.code == 0 || !strings.Contains(r.stderr, `unknown command "profile" for "sinew viz"`) || strings.Contains(r.stderr, "shorthand") {
			t.Errorf("sinew %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
		}
	}
	r := run(t, testEnv(t, nil), "viz", "stta", "deploy")
	if r.code == 0 || !strings.Contains(r.stderr, "Did you mean this?\n\tstat") {
		t.Errorf("sinew viz stta: exit %d\n%s", r.code, r.stderr)
	}
	if r := run(t, testEnv(t, nil), "viz", "--no-such-flag"); r.code == 0 || !strings.Contains(r.stderr, "unknown flag: --no-such-flag") {
		t.Errorf("sinew viz --no-such-flag: exit %d\n%s", r.code, r.stderr)
	}
	if r := run(t, testEnv(t, nil), "viz", "help", "stat"); r.code != 0 || !strings.Contains(r.stdout, "sinew viz stat TYPE[/NAME]") {
		t.Errorf("sinew viz help stat: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, args := range [][]string{{"viz"}, {"viz", "--help"}, {"viz", "-h"}, {"viz", "help"}, {"viz", "--context", "kind-sinew"}} {
		r := run(t, testEnv(t, nil), args...)
		if r.code != 0 || !strings.Contains(r.stdout, "Available Commands:") {
			t.Errorf("sinew %s: exit %d, want viz's help\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
		}
	}
}

// TestDemoVizIsWhereTheCLILooks keeps the demo's default viz address and the one the viz commands try in step.
func TestDemoVizIsWhereTheCLILooks(t *testing.T) {
	if got := localmesh.DemoViz(localmesh.DefaultPortBase); got != viz.DefaultLocalAddr {
		t.Errorf("sinew demo serves viz at %s, the viz commands look at %s", got, viz.DefaultLocalAddr)
	}
}
