package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestResourceFlagChecksFilesFirst: -f is repeatable on run and demo, and a path that is not there (or a directory
// without YAML) fails the command before anything starts, naming it.
func TestResourceFlagChecksFilesFirst(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(good, []byte("kind: Server\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.yaml")
	const meshFile = "../examples/emojivoto/local/emojivoto.yaml"
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"run", meshFile, "-f", good, "-f", missing}, "Error: -f " + missing + ": no such file or directory\n"},
		{[]string{"run", meshFile, "--filename", empty}, "Error: -f " + empty + ": the directory has no .yaml or .yml files\n"},
		{[]string{"demo", "-f", good, "-f", missing}, "Error: -f " + missing + ": no such file or directory\n"},
		{[]string{"demo", "-f", empty}, "Error: -f " + empty + ": the directory has no .yaml or .yml files\n"},
	} {
		r := run(t, testEnv(t, nil), c.args...)
		if r.code == 0 || r.stderr != c.want || r.stdout != "" {
			t.Errorf("%s: exit %d, stderr %q, want %q", strings.Join(c.args, " "), r.code, r.stderr, c.want)
		}
	}
}
