package viz

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sinewmesh/sinew/internal/statefile"
)

// A local mesh's viz may listen anywhere (sinew demo --port-base, sinew run --viz-addr), so while it serves it
// leaves its URL in a file of its own in the state directory, with its process ID, and the `sinew viz` commands try
// the URLs they find there (docs/architecture/viz.md, "How the CLI reaches it"). A file left behind by a mesh that
// was killed outright names a process that is gone: LocalURLs removes it.

// DefaultLocalAddr is where `sinew demo` serves viz with its default --port-base (17000, plus 6).
const DefaultLocalAddr = "127.0.0.1:17006"

// StateDir is the directory local meshes leave their viz URLs in: $XDG_RUNTIME_DIR/sinew/viz when that is set,
// else $XDG_CACHE_HOME/sinew/viz, else $HOME/.cache/sinew/viz (os.UserCacheDir's choice on Linux). getenv reads the
// environment (os.Getenv, or a test's map). It is "" when none of them is set.
func StateDir(getenv func(string) string) string {
	switch {
	case getenv("XDG_RUNTIME_DIR") != "":
		return filepath.Join(getenv("XDG_RUNTIME_DIR"), "sinew", "viz")
	case getenv("XDG_CACHE_HOME") != "":
		return filepath.Join(getenv("XDG_CACHE_HOME"), "sinew", "viz")
	case getenv("HOME") != "":
		return filepath.Join(getenv("HOME"), ".cache", "sinew", "viz")
	}
	return ""
}

// AnnounceLocal leaves u in dir (created 0700 if missing) until the returned function removes it.
func AnnounceLocal(dir, u string) (remove func(), err error) {
	parsed, err := url.Parse(u)
	if err != nil || parsed.Host == "" {
		return nil, fmt.Errorf("viz URL %q: not an absolute URL", u)
	}
	// One file per address, so meshes on other ports do not overwrite each other.
	name := strings.NewReplacer(":", "_", "[", "", "]", "").Replace(parsed.Host) + ".url"
	return statefile.Leave(dir, name, fmt.Appendf(nil, "%s\n%d\n", u, os.Getpid()))
}

// LocalURLs are the viz URLs left in dir, the most recently announced first. A missing directory has none.
func LocalURLs(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	type announced struct {
		url string
		at  time.Time
	}
	var found []announced
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".url") {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		path := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		u, pid, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
		if n, err := strconv.Atoi(strings.TrimSpace(pid)); err == nil && n > 0 && errors.Is(syscall.Kill(n, 0), syscall.ESRCH) {
			_ = os.Remove(path) // its mesh was killed before it could take the file back
			continue
		}
		if u = strings.TrimSpace(u); u != "" {
			found = append(found, announced{u, info.ModTime()})
		}
	}
	slices.SortStableFunc(found, func(a, b announced) int { return b.at.Compare(a.at) })
	urls := make([]string, len(found))
	for i, f := range found {
		urls[i] = f.url
	}
	return urls, nil
}
