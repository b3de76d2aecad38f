// Package statefile leaves small files by which one process tells the others of the same user that it runs and
// where (a local mesh's proxies, a local viz's URL). It writes them whole or not at all, readable only by the
// user. It knows nothing of what the files hold.
package statefile

import (
	"os"
	"path/filepath"
)

// Leave writes data to dir/name (dir created 0700 if missing) atomically, so a reader never sees half a file,
// and returns the function that removes it.
func Leave(dir, name string, data []byte) (remove func(), err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, name)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp) // the rename failed; the temporary file is ours to clean up
		return nil, err
	}
	return func() { _ = os.Remove(path) }, nil
}
