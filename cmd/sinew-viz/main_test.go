package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// TestFlagsAreDocumented keeps docs/reference/sinew-viz.md and the flags in step.
func TestFlagsAreDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "reference", "sinew-viz.md"))
	if err != nil {
		t.Fatal(err)
	}
	body := string(doc)
	documented := strings.Count(body, "\n| `--")
	flags := 0
	newCmd(&bytes.Buffer{}).Flags().VisitAll(func(f *pflag.Flag) {
		if f.Name == "help" || f.Name == "version" {
			return
		}
		flags++
		def := f.DefValue
		if def == "" {
			def = "-"
		}
		if row := "| `--" + f.Name + "` | `" + def + "` |"; !strings.Contains(body, row) && !strings.Contains(body, "| `--"+f.Name+"` | "+def+" |") {
			t.Errorf("no row %s", row)
		}
	})
	if documented != flags {
		t.Errorf("%d flags documented, %d exist", documented, flags)
	}
}

func TestBadInputIsRefusedClearly(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope")
	garbage := filepath.Join(t.TempDir(), "anchors.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--log-format", "xml"}, `--log-format "xml": want text or json`},
		{[]string{"--log-level", "loud"}, `--log-level "loud"`},
		{[]string{"--enforced-host", "("}, "--enforced-host"},
		{[]string{"--identity-trust-anchors-file", missing}, "trust anchors"},
		{[]string{"--identity-trust-anchors-file", garbage}, garbage},
		{[]string{"extra"}, "unknown command"},
	} {
		var stderr bytes.Buffer
		cmd := newCmd(&stderr)
		cmd.SetArgs(tc.args)
		cmd.SetOut(&bytes.Buffer{})
		err := cmd.ExecuteContext(context.Background())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error mentioning %q", tc.args, err, tc.want)
		}
	}
}
