package statefile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestLeave(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	remove, err := Leave(dir, "1.json", []byte("{}"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, "1.json"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("the file: %v %v, want mode 0600", st, err)
	}
	if d, _ := os.Stat(dir); d.Mode().Perm() != 0o700 {
		t.Errorf("the directory's mode %v, want 0700", d.Mode().Perm())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("left %d files, want only the state file (no temporary one)", len(entries))
	}
	remove()
	if _, err := os.Stat(filepath.Join(dir, "1.json")); !os.IsNotExist(err) {
		t.Errorf("after remove: %v", err)
	}
}
