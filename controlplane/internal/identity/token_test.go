package identity

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// brokenFile is a real temporary file whose chmod, write or close fails as a full or read-only disk would make it.
type brokenFile struct {
	*os.File
	failChmod, failWrite, failClose bool
}

func (f *brokenFile) Chmod(mode fs.FileMode) error {
	if f.failChmod {
		return &fs.PathError{Op: "chmod", Path: f.Name(), Err: syscall.EPERM}
	}
	return f.File.Chmod(mode)
}

func (f *brokenFile) Write(b []byte) (int, error) {
	if f.failWrite {
		return 0, &fs.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
	}
	return f.File.Write(b)
}

func (f *brokenFile) Close() error {
	err := f.File.Close()
	if f.failClose {
		return &fs.PathError{Op: "close", Path: f.Name(), Err: syscall.EIO}
	}
	return err
}

func TestJoinKeyNotLinkedWhenIncomplete(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		broken brokenFile
		op     string
		errno  syscall.Errno
	}{
		{"write fails", brokenFile{failWrite: true}, "write", syscall.ENOSPC},
		{"chmod fails", brokenFile{failChmod: true}, "chmod", syscall.EPERM},
		{"close fails", brokenFile{failClose: true}, "close", syscall.EIO},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			create := func(dir, pattern string) (keyFile, error) {
				f, err := os.CreateTemp(dir, pattern)
				if err != nil {
					return nil, err
				}
				b := tc.broken
				b.File = f
				return &b, nil
			}
			_, err := loadOrCreateJoinKey(dir, create)
			if err == nil {
				t.Fatal("no error although the key file could not be completed")
			}
			if !errors.Is(err, tc.errno) || !strings.Contains(err.Error(), tc.op+" ") {
				t.Errorf("error %q does not name the failed %s (%v)", err, tc.op, tc.errno)
			}
			if _, err := os.Stat(filepath.Join(dir, JoinKeyFileName)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("key file linked into place after a failed %s (stat: %v)", tc.op, err)
			}
			if left, _ := os.ReadDir(dir); len(left) != 0 {
				t.Errorf("left behind in the data directory: %v", left)
			}

			// Nothing half-made stands in the way of the next attempt.
			key, err := LoadOrCreateJoinKey(dir)
			if err != nil || len(key) != joinKeyLen {
				t.Fatalf("next attempt: key of %d bytes, err %v", len(key), err)
			}
		})
	}
}
