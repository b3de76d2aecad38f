// Package web holds the viz dashboard: static files served by viz/server at "/", talking to the viz JSON API
// (docs/architecture/viz.md). The files are used as written: no build step, and nothing is loaded from any other
// site, so the dashboard works offline and behind a port-forward. This package must not import the server.
package web

import (
	"embed"
	"io/fs"
)

//go:embed static
var files embed.FS

// Assets is the dashboard with index.html at its root.
var Assets = mustSub(files, "static")

func mustSub(f fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(f, dir)
	if err != nil {
		panic(err) // dir is a constant that go:embed has already checked
	}
	return sub
}
