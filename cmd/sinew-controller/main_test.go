package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/sinewmesh/sinew/internal/testutil"
)

func TestTokenCommand(t *testing.T) {
	t.Parallel()
	dataDir := filepath.Join(t.TempDir(), "data")
	var out, errOut bytes.Buffer
	cmd := newRootCmd(&out, &errOut)
	cmd.SetArgs([]string{"token", "--data-dir", dataDir, "--namespace", "emojivoto", "--workload", "web"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	tok := strings.TrimSpace(out.String())
	if strings.Count(tok, ".") != 1 || strings.ContainsAny(tok, " \n=+/") {
		t.Errorf("token %q is not base64url.base64url", tok)
	}
	entries, _ := os.ReadDir(dataDir)
	if len(entries) != 1 || entries[0].Name() != "join-token.key" {
		t.Errorf("token wrote %v, want only join-token.key", entries)
	}
	if errOut.Len() != 0 {
		t.Errorf("stderr: %q", errOut.String())
	}
}

func TestLocalCommand(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	cmd := newRootCmd(&out, &errOut)
	cmd.SetArgs([]string{"local", "--resource-dir", t.TempDir()})
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "data-dir") {
		t.Errorf("local without --data-dir: %v", err)
	}

	// Runs until its context is cancelled, then stops cleanly.
	dataDir := t.TempDir()
	cmd = newRootCmd(&out, &errOut)
	cmd.SetArgs([]string{"local", "--data-dir", dataDir, "--resource-dir", t.TempDir(), "--log-level", "warn",
		"--identity-addr", "127.0.0.1:0", "--destination-addr", "127.0.0.1:0", "--policy-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	testutil.Eventually(t, 10*time.Second, "ca.crt to appear", func() bool {
		_, err := os.Stat(filepath.Join(dataDir, "ca.crt"))
		return err == nil
	})
	cancel()
	if err := <-done; err != nil {
		t.Errorf("local: %v", err)
	}
	if out.Len() != 0 {
		t.Errorf("local wrote to stdout: %q", out.String())
	}
}

// docs/reference/sinew-controller.md lists every flag of every subcommand with the default the code uses, and
// nothing else.
func TestReferenceDocMatchesFlags(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../../docs/reference/sinew-controller.md")
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]string{}
	for _, part := range strings.Split(string(doc), "\n## `sinew-controller ")[1:] {
		name, body, _ := strings.Cut(part, "`")
		sections[name] = body
	}
	root := newRootCmd(&bytes.Buffer{}, &bytes.Buffer{})
	for _, cmd := range root.Commands() {
		if cmd.Name() == "help" || cmd.Name() == "completion" {
			continue
		}
		body, ok := sections[cmd.Name()]
		if !ok {
			t.Errorf("no section for %q", cmd.Name())
			continue
		}
		documented := 0
		for _, line := range strings.Split(body, "\n") {
			if strings.HasPrefix(line, "| `--") {
				documented++
			}
		}
		flags := 0
		cmd.Flags().VisitAll(func(f *pflag.Flag) {
			flags++
			def := f.DefValue
			if def == "" {
				def = "-"
			}
			if row := "| `--" + f.Name + "` | `" + def + "` |"; !strings.Contains(body, row) {
				t.Errorf("%s: no row %s", cmd.Name(), row)
			}
		})
		if documented != flags {
			t.Errorf("%s: %d flags documented, %d exist", cmd.Name(), documented, flags)
		}
	}
}

func TestKubernetesCommandsRefuseBadInput(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "nope")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"identity", "--log-format", "xml"}, `--log-format "xml": want text or json`},
		{[]string{"destination", "--log-level", "loud"}, `--log-level "loud"`},
		{[]string{"identity", "--kubeconfig", missing, "--identity-trust-anchors-file", missing}, missing},
		{[]string{"destination", "--kubeconfig", missing, "--identity-trust-anchors-file", missing}, "trust anchors"},
		{[]string{"destination", "--default-opaque-ports", "1-x"}, "DefaultOpaquePorts"},
		{[]string{"identity", "extra"}, "unknown command"},
	} {
		cmd := newRootCmd(&bytes.Buffer{}, &bytes.Buffer{})
		cmd.SetArgs(tc.args)
		if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
}
