package localmesh

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sinewmesh/sinew/controlplane"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// eventually retries cond until it returns nil or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %v after %s", what, err, timeout)
		}
		<-tick.C
	}
}

func TestResourceFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "one.yaml"), "x")
	writeFile(t, filepath.Join(dir, "pol", "b.yml"), "x")
	writeFile(t, filepath.Join(dir, "pol", "a.yaml"), "x")
	writeFile(t, filepath.Join(dir, "pol", "README.md"), "x")
	writeFile(t, filepath.Join(dir, "pol", ".a.yaml.swp.yaml"), "x")
	writeFile(t, filepath.Join(dir, "pol", "sub", "c.yaml"), "x")
	writeFile(t, filepath.Join(dir, "none", "notes.txt"), "x")

	got, err := ResourceFiles([]string{filepath.Join(dir, "one.yaml"), filepath.Join(dir, "pol"), filepath.Join(dir, "pol", "a.yaml")})
	want := []string{filepath.Join(dir, "one.yaml"), filepath.Join(dir, "pol", "a.yaml"), filepath.Join(dir, "pol", "b.yml")}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("files %v, %v; want %v (a directory's YAML files in order, not recursive, each file once)", got, err, want)
	}
	if got, err := ResourceFiles(nil); err != nil || got != nil {
		t.Errorf("no -f: %v, %v", got, err)
	}
	for arg, msg := range map[string]string{
		filepath.Join(dir, "missing.yaml"): "-f " + filepath.Join(dir, "missing.yaml") + ": no such file or directory",
		filepath.Join(dir, "none"):         "-f " + filepath.Join(dir, "none") + ": the directory has no .yaml or .yml files",
	} {
		if _, err := ResourceFiles([]string{arg}); err == nil || err.Error() != msg {
			t.Errorf("%s: %v, want %q", arg, err, msg)
		}
	}
	// Copies cannot clash with the mesh's own file, nor with each other.
	if a, b := copiedName(0, "x/policy.yaml"), copiedName(1, "y/policy.yaml"); a == b || a == "mesh.yaml" || a != "user-01-policy.yaml" {
		t.Errorf("copied names %s, %s", a, b)
	}
	if n := copiedName(2, "routes"); n != "user-03-routes.yaml" {
		t.Errorf("a file without .yaml is copied as %s; the control plane would not read it", n)
	}
}

// fakeModel is a control plane's /debug/model the test sets. Each set reads the resource directory dir as it is
// then, as the control plane does before it publishes a model.
type fakeModel struct {
	mu  sync.Mutex
	v   modelView
	dir string
}

func (f *fakeModel) get(context.Context) (modelView, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.v, nil
}

func (f *fakeModel) set(version uint64, source, msg string, problems ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.v = modelView{Version: version, PolicyProblems: problems, Files: map[string]string{}}
	entries, _ := os.ReadDir(f.dir)
	for _, e := range entries {
		if b, err := os.ReadFile(filepath.Join(f.dir, e.Name())); err == nil {
			sum := sha256.Sum256(b)
			f.v.Files[e.Name()] = hex.EncodeToString(sum[:])
		}
	}
	if msg != "" {
		f.v.Errors = append(f.v.Errors, struct {
			Source  string `json:"source"`
			Message string `json:"message"`
		}{source, msg})
	}
}

// TestResourceWatcher: copies go in under their own names, a change is copied once, and the control plane's
// verdict on it (the first newer model) is reported with the user's path; an unreadable file is reported once.
func TestResourceWatcher(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src, res := t.TempDir(), t.TempDir()
	user := filepath.Join(src, "policy.yaml")
	writeFile(t, user, "v1")
	var out bytes.Buffer
	model := &fakeModel{dir: res}
	w := newResourceWatcher(res, []string{user}, &out, model.get)
	if err := w.copyAll(); err != nil {
		t.Fatal(err)
	}
	copied := filepath.Join(res, "user-01-policy.yaml")
	if b, _ := os.ReadFile(copied); string(b) != "v1" {
		t.Fatalf("copy holds %q", b)
	}

	// At start, an error about the file fails the run, naming the user's file.
	model.set(1, copied, "user-01-policy.yaml: document 2 (Server web, line 12): spec.port: required")
	if err := w.check(ctx); err == nil || err.Error() != "the control plane rejects "+user+": document 2 (Server web, line 12): spec.port: required" {
		t.Fatalf("check: %v", err)
	}
	model.set(1, filepath.Join(res, "mesh.yaml"), "mesh.yaml: not ours", "ServerAuthorization emojivoto/x: no Server \"web\"")
	if err := w.check(ctx); err != nil {
		t.Fatalf("check of a file the control plane accepts: %v", err)
	}
	if got := out.String(); got != "‼ policy: ServerAuthorization emojivoto/x: no Server \"web\"\n" {
		t.Errorf("problems at start: %q", got)
	}
	out.Reset()

	w.poll(ctx) // unchanged: nothing to say, nothing copied
	if out.Len() != 0 || w.anyCopying() {
		t.Fatalf("an unchanged file: %q", out.String())
	}

	// A broken edit: copied; reported once the control plane has read it.
	writeFile(t, user, "v2 broken")
	w.poll(ctx)
	if b, _ := os.ReadFile(copied); string(b) != "v2 broken" || !w.anyCopying() {
		t.Fatalf("the edit was not copied: %q", b)
	}
	w.poll(ctx) // same model version: no verdict yet
	if out.Len() != 0 {
		t.Fatalf("a verdict before the control plane read the file: %q", out.String())
	}
	model.set(2, copied, "user-01-policy.yaml: document 1 (line 1): error converting YAML to JSON")
	w.poll(ctx)
	want := fmt.Sprintf("✖ %s: document 1 (line 1): error converting YAML to JSON; the last good version of %s stays in force\n", user, user)
	if out.String() != want {
		t.Fatalf("broken edit reported as %q, want %q", out.String(), want)
	}
	out.Reset()

	// Fixed: applied; the problems, gone, are not repeated.
	writeFile(t, user, "v3")
	w.poll(ctx)
	model.set(3, "", "")
	w.poll(ctx)
	if out.String() != "✔ "+user+" applied\n" {
		t.Fatalf("fix reported as %q", out.String())
	}
	out.Reset()

	// Gone (an editor saving by rename): said once; the copy stays.
	if err := os.Remove(user); err != nil {
		t.Fatal(err)
	}
	w.poll(ctx)
	w.poll(ctx)
	if got := out.String(); strings.Count(got, "cannot read") != 1 || !strings.Contains(got, "its last copy stays in force") {
		t.Errorf("missing file reported as %q", got)
	}
	if _, err := os.Stat(copied); err != nil {
		t.Errorf("the copy was removed: %v", err)
	}
}

// TestResourcesCheckedByTheControlPlane runs a real local control plane over the demo's resources and the example
// policy: accepted at start; a broken edit is reported with the user's file and line and keeps the last good
// policy; the fix applies.
func TestResourcesCheckedByTheControlPlane(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	res := filepath.Join(dir, "resources")
	m := Demo(DefaultPortBase, true, []string{"emojivoto"})
	writeFile(t, filepath.Join(res, "mesh.yaml"), string(m.Resources()))
	example, err := os.ReadFile("../../../examples/emojivoto/policy/web-only-vote-bot.yaml")
	if err != nil {
		t.Fatal(err)
	}
	user := filepath.Join(dir, "policy.yaml")
	writeFile(t, user, string(example))

	var out bytes.Buffer
	var mu sync.Mutex
	w := newResourceWatcher(res, []string{user}, &lockedWriter{w: &out, mu: &mu}, nil)
	if err := w.copyAll(); err != nil {
		t.Fatal(err)
	}
	cp, err := controlplane.New(controlplane.Config{DataDir: filepath.Join(dir, "cp"), ResourceDir: res,
		IdentityAddr: "127.0.0.1:0", DestinationAddr: "127.0.0.1:0", PolicyAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cp.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	w.model = func(ctx context.Context) (modelView, error) { return fetchModel(ctx, cp.AdminAddr()) }
	if err := w.check(ctx); err != nil {
		t.Fatalf("the example policy: %v", err)
	}
	if out.Len() != 0 {
		t.Errorf("the example policy has problems: %s", out.String())
	}

	read := func() string { mu.Lock(); defer mu.Unlock(); return out.String() }
	broken := strings.Replace(string(example), "  port: http\n", "  port: [http]\n", 1)
	writeFile(t, user, broken)
	eventually(t, 10*time.Second, "the broken edit reported", func() error {
		w.poll(ctx)
		if got := read(); !strings.Contains(got, "✖ "+user+": document 1 (Server") || !strings.Contains(got, "line ") ||
			!strings.Contains(got, "the last good version of "+user+" stays in force") {
			return fmt.Errorf("output %q", got)
		}
		return nil
	})
	writeFile(t, user, string(example))
	eventually(t, 10*time.Second, "the fix applied", func() error {
		w.poll(ctx)
		if got := read(); !strings.Contains(got, "✔ "+user+" applied") {
			return fmt.Errorf("output %q", got)
		}
		return nil
	})
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestStateFiles(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "local")
	if got, err := Meshes(dir); err != nil || got != nil {
		t.Fatalf("no directory: %v, %v", got, err)
	}
	remove, err := announce(dir, Announced{PID: os.Getpid(), Name: "emojivoto", Namespace: "emojivoto",
		Workloads: []AnnouncedWorkload{{Name: "web", ProxyAdmin: "127.0.0.1:17032"}}})
	if err != nil {
		t.Fatal(err)
	}
	// A mesh that was killed outright left its file: it is removed, not used.
	writeFile(t, filepath.Join(dir, "999999999.json"), `{"pid": 999999999, "namespace": "emojivoto", "workloads": [{"name": "web", "proxyAdmin": "127.0.0.1:1"}]}`)
	admin, m, err := FindWorkload(dir, "emojivoto", "web")
	if err != nil || admin != "127.0.0.1:17032" || m.Name != "emojivoto" {
		t.Fatalf("web: %s %+v %v", admin, m, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "999999999.json")); err == nil {
		t.Error("a dead mesh's file was kept")
	}
	if admin, _, err := FindWorkload(dir, "", "web"); err != nil || admin != "127.0.0.1:17032" {
		t.Errorf("any namespace: %s %v", admin, err)
	}
	if _, _, err := FindWorkload(dir, "shop", "web"); err == nil || err.Error() != `no running local mesh (sinew run, sinew demo) has a workload "web" in namespace shop` {
		t.Errorf("other namespace: %v", err)
	}
	remove()
	if got, _ := Meshes(dir); len(got) != 0 {
		t.Errorf("after remove: %+v", got)
	}
	if d := StateDir(func(k string) string { return map[string]string{"HOME": "/home/u"}[k] }); d != "/home/u/.cache/sinew/local" {
		t.Errorf("state dir %s", d)
	}
}
