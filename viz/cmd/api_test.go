package cmd

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sinewmesh/sinew/viz"
	"github.com/sinewmesh/sinew/viz/server"
)

// fakeViz answers /api/version like a viz in mode.
func fakeViz(t *testing.T, mode string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/version" {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(server.Version{Version: testVersion, Mode: mode, Prometheus: "embedded"})
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// deadURL is an address that refuses connections.
func deadURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + ln.Addr().String()
	ln.Close()
	return u
}

// TestDirectVizFindsALocalMeshOnAnyPort: a demo started with another --port-base leaves its viz URL in the state
// directory, and the viz commands find it there without --viz-url, passing over URLs that no longer answer and vizes
// that are not local.
func TestDirectVizFindsALocalMeshOnAnyPort(t *testing.T) {
	runtimeDir := t.TempDir()
	env := testEnv(t, nil)
	env.Getenv = func(k string) string {
		if k == "XDG_RUNTIME_DIR" {
			return runtimeDir
		}
		return ""
	}
	dir := viz.StateDir(env.Lookup)
	if !strings.HasPrefix(dir, runtimeDir) {
		t.Fatalf("state directory %s is not under $XDG_RUNTIME_DIR", dir)
	}
	live := fakeViz(t, server.ModeLocal)
	for i, u := range []string{live, fakeViz(t, server.ModeKubernetes), deadURL(t)} { // the dead one newest
		if _, err := viz.AnnounceLocal(dir, u); err != nil {
			t.Fatal(err)
		}
		at := time.Now().Add(time.Duration(i-3) * time.Minute)
		host := strings.NewReplacer(":", "_").Replace(strings.TrimPrefix(u, "http://"))
		if err := os.Chtimes(filepath.Join(dir, host+".url"), at, at); err != nil {
			t.Fatal(err)
		}
	}
	if got := localCandidates(env); len(got) != 4 || got[0] == live || got[3] != "http://"+viz.DefaultLocalAddr {
		t.Errorf("candidates %v: want the three announced, newest first, then the demo's default", got)
	}
	conn, err := directViz(context.Background(), env, "")
	if err != nil || conn == nil {
		t.Fatalf("directViz: %v, %v; want the local mesh at %s", conn, err, live)
	}
	if conn.client.URL() != live || !strings.Contains(conn.where, live) {
		t.Errorf("reached %s (%s), want %s", conn.client.URL(), conn.where, live)
	}
	// --viz-url and $SINEW_VIZ_URL come first
	conn, err = directViz(context.Background(), env, "http://viz.example:8084")
	if err != nil || conn.client.URL() != "http://viz.example:8084" {
		t.Errorf("--viz-url: %v, %v", conn, err)
	}
}
