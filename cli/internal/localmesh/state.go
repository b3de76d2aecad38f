package localmesh

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/sinewmesh/sinew/internal/statefile"
)

// While a mesh runs it leaves a file in the state directory saying where its proxies' admin servers are, so that
// commands run from another terminal (sinew diagnostics) find a workload's proxy by name. A file left behind by a
// mesh that was killed outright names a process that is gone: Meshes removes it. (viz leaves its URL the same way,
// in its own directory: viz.StateDir.)

// StateDir is where running meshes leave their files: $XDG_RUNTIME_DIR/sinew/local when that is set, else
// $XDG_CACHE_HOME/sinew/local, else $HOME/.cache/sinew/local; "" when none is set. getenv reads the environment.
func StateDir(getenv func(string) string) string {
	switch {
	case getenv("XDG_RUNTIME_DIR") != "":
		return filepath.Join(getenv("XDG_RUNTIME_DIR"), "sinew", "local")
	case getenv("XDG_CACHE_HOME") != "":
		return filepath.Join(getenv("XDG_CACHE_HOME"), "sinew", "local")
	case getenv("HOME") != "":
		return filepath.Join(getenv("HOME"), ".cache", "sinew", "local")
	}
	return ""
}

// Announced is what a running mesh leaves in the state directory.
type Announced struct {
	PID               int                 `json:"pid"`
	Name              string              `json:"name"`
	Namespace         string              `json:"namespace"`
	ControlPlaneAdmin string              `json:"controlPlaneAdmin"`
	Workloads         []AnnouncedWorkload `json:"workloads"`
}

// AnnouncedWorkload is a workload of a running mesh and its proxy's admin address.
type AnnouncedWorkload struct {
	Name       string `json:"name"`
	ProxyAdmin string `json:"proxyAdmin"`
}

// announce leaves a in dir (created 0700 if missing) until the returned function removes it.
func announce(dir string, a Announced) (remove func(), err error) {
	b, err := json.Marshal(a)
	if err != nil {
		return nil, err
	}
	return statefile.Leave(dir, strconv.Itoa(a.PID)+".json", b)
}

// Meshes are the running meshes that left a file in dir, newest first. A missing directory has none.
func Meshes(dir string) ([]Announced, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	type found struct {
		a   Announced
		mod int64
	}
	var all []found
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		info, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		var a Announced
		if err := json.Unmarshal(b, &a); err != nil {
			continue
		}
		if a.PID > 0 && errors.Is(syscall.Kill(a.PID, 0), syscall.ESRCH) {
			_ = os.Remove(path) // its mesh was killed before it could take the file back
			continue
		}
		all = append(all, found{a, info.ModTime().UnixNano()})
	}
	slices.SortStableFunc(all, func(x, y found) int { return int(min(max(y.mod-x.mod, -1), 1)) })
	out := make([]Announced, len(all))
	for i, f := range all {
		out[i] = f.a
	}
	return out, nil
}

// FindWorkload returns the proxy admin address of workload name in the running meshes of dir (namespace "" matches
// any), the newest mesh first.
func FindWorkload(dir, namespace, name string) (admin string, mesh Announced, err error) {
	meshes, err := Meshes(dir)
	if err != nil {
		return "", Announced{}, err
	}
	for _, m := range meshes {
		if namespace != "" && m.Namespace != namespace {
			continue
		}
		for _, w := range m.Workloads {
			if w.Name == name {
				return w.ProxyAdmin, m, nil
			}
		}
	}
	return "", Announced{}, fmt.Errorf("no running local mesh (sinew run, sinew demo) has a workload %q%s", name, inNamespace(namespace))
}

func inNamespace(ns string) string {
	if ns == "" {
		return ""
	}
	return " in namespace " + ns
}
