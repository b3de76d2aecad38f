package cli

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/sinewmesh/sinew/cli/internal/localmesh"
)

// TestDemoAppCommand: the demo's workloads run the emojivoto program next to sinew when there is one, else sinew
// itself with its hidden __emojivoto command (a lone `go install`ed sinew), or what --emojivoto names.
func TestDemoAppCommand(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "sinew")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	app, err := demoApp("", exe)
	if err != nil || !reflect.DeepEqual(app, []string{exe, "__emojivoto"}) {
		t.Fatalf("without emojivoto: %v, %v", app, err)
	}
	for _, w := range localmesh.Demo(localmesh.DefaultPortBase, true, app).Spec.Workloads {
		if len(w.Command) < 3 || w.Command[0] != exe || w.Command[1] != "__emojivoto" || w.Command[2] != w.Name {
			t.Errorf("workload %s runs %q, want %s __emojivoto %s …", w.Name, w.Command, exe, w.Name)
		}
	}
	// not executable: not the program
	ev := filepath.Join(dir, "emojivoto")
	if err := os.WriteFile(ev, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if app, _ := demoApp("", exe); app[0] != exe {
		t.Errorf("a non-executable emojivoto was used: %v", app)
	}
	if err := os.Chmod(ev, 0o755); err != nil {
		t.Fatal(err)
	}
	if app, err := demoApp("", exe); err != nil || !reflect.DeepEqual(app, []string{ev}) {
		t.Errorf("with emojivoto next to sinew: %v, %v", app, err)
	}
	if app, err := demoApp("/opt/emojivoto", exe); err != nil || !reflect.DeepEqual(app, []string{"/opt/emojivoto"}) {
		t.Errorf("--emojivoto: %v, %v", app, err)
	}
}

// TestHiddenEmojivotoCommand: sinew __emojivoto is the emojivoto program, and not in the help.
func TestHiddenEmojivotoCommand(t *testing.T) {
	r := run(t, testEnv(t, nil), "__emojivoto")
	if r.code == 0 || !strings.Contains(r.stderr, "usage: sinew __emojivoto web|emoji|voting|vote-bot") {
		t.Errorf("no part: exit %d\n%s", r.code, r.stderr)
	}
	r = run(t, testEnv(t, nil), "__emojivoto", "frontend", "--port", "1")
	if r.code == 0 || !strings.Contains(r.stderr, `unknown service "frontend"`) {
		t.Errorf("unknown part: exit %d\n%s", r.code, r.stderr)
	}
	if help := mustRun(t, testEnv(t, nil), "--help"); strings.Contains(help, "__emojivoto") {
		t.Errorf("the help lists the hidden command:\n%s", help)
	}
}
