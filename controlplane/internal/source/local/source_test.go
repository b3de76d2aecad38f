package local

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sinewmesh/sinew/controlplane/internal/model"
	"github.com/sinewmesh/sinew/internal/testutil"
)

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func workload(name, app string) string {
	return "kind: Workload\nmetadata: {name: " + name + ", namespace: ns, labels: {app: " + app + "}}\nspec: {ports: [{port: 8080}]}\n"
}

func TestCorruptFileKeepsLastGood(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write(t, dir, "a.yaml", workload("a", "a"))
	write(t, dir, "b.yml", workload("b", "b"))
	write(t, dir, "notes.txt", "not yaml at all: [")
	reg := prometheus.NewRegistry()
	s, err := New(Config{Dir: dir, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if r := s.Resources(); len(r.Workloads) != 2 || len(r.Errors) != 0 {
		t.Fatalf("initial: %d workloads, errors %v", len(r.Workloads), r.Errors)
	}

	write(t, dir, "a.yaml", workload("a", "a")+"---\nkind: Workload\nmetadata: {name: a2, namespace: ns}\nspec: {ports: [{port: 0}]}\n")
	s.load("a.yaml")
	r := s.Resources()
	if len(r.Workloads) != 2 || r.Workloads[0].Name != "a" {
		t.Errorf("after corrupting a.yaml: workloads %v, want a (last good) and b", r.Workloads)
	}
	if len(r.Errors) != 1 || r.Errors[0].Message != "a.yaml: document 2 (Workload a2, line 5): spec.ports[0].port: must be 1-65535" {
		t.Errorf("errors %+v", r.Errors)
	}
	var m dto.Metric
	if err := s.invalidFiles.Write(&m); err != nil || m.GetGauge().GetValue() != 1 {
		got := m.GetGauge().GetValue()
		t.Errorf("local_source_invalid_files = %v, want 1", got)
	}

	write(t, dir, "a.yaml", workload("a", "changed"))
	s.load("a.yaml")
	r = s.Resources()
	if len(r.Errors) != 0 || r.Workloads[0].Labels["app"] != "changed" {
		t.Errorf("after fixing a.yaml: %+v", r)
	}

	// A file that was never good contributes nothing but its error.
	write(t, dir, "c.yaml", "kind: Workload\nmetadata: {name: c}\nspec: {nope: 1}\n")
	s.load("c.yaml")
	if r := s.Resources(); len(r.Workloads) != 2 || len(r.Errors) != 1 || !strings.HasPrefix(r.Errors[0].Message, "c.yaml: ") {
		t.Errorf("never-good file: %+v", r)
	}
}

func TestDuplicatesAcrossFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write(t, dir, "1.yaml", workload("web", "first"))
	write(t, dir, "2.yaml", workload("web", "second"))
	s, err := New(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r := s.Resources()
	if len(r.Workloads) != 1 || r.Workloads[0].Labels["app"] != "first" || len(r.Errors) != 1 ||
		!strings.Contains(r.Errors[0].Message, "Workload ns/web is already defined in 1.yaml") {
		t.Errorf("%+v", r)
	}
}

type recorder struct{ store *model.Store }

func (r recorder) Update(res model.Resources) { r.store.Update(res) }

func TestWatchReflectsChanges(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write(t, dir, "a.yaml", workload("a", "a"))
	s, err := New(Config{Dir: dir, Debounce: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	store := model.NewStore()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, recorder{store}) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	has := func(name string) func() bool {
		return func() bool { _, ok := store.Snapshot().Workload("ns", name); return ok }
	}
	testutil.Eventually(t, 10*time.Second, "initial publish", has("a"))

	write(t, dir, "b.yaml", workload("b", "b"))
	testutil.Eventually(t, 10*time.Second, "b added", has("b"))

	if err := os.Remove(filepath.Join(dir, "a.yaml")); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "a removed", func() bool { return !has("a")() })

	// Rename-over, as editors and kubectl-like tools do.
	write(t, dir, ".b.yaml.swp", workload("b", "renamed"))
	if err := os.Rename(filepath.Join(dir, ".b.yaml.swp"), filepath.Join(dir, "b.yaml")); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "b replaced", func() bool {
		w, ok := store.Snapshot().Workload("ns", "b")
		return ok && w.Labels["app"] == "renamed"
	})

	write(t, dir, "b.yaml", "kind: Workload\nmetadata: {name: b, namespace: ns}\nspec: {ports: [{port: 99999}]}\n")
	testutil.Eventually(t, 10*time.Second, "error reported", func() bool { return len(store.Snapshot().Errors()) == 1 })
	if !has("b")() {
		t.Error("corrupting b.yaml removed b")
	}
}

// A malformed annotation is reported with the model but does not make the file invalid: its resources load.
func TestBadAnnotationKeepsTheFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write(t, dir, "a.yaml", workload("a", "a")+"---\nkind: Service\nmetadata: {name: s, namespace: ns, annotations: {retry.sinew.dev/limit: none, timeout.sinew.dev/request: 5s}}\nspec: {selector: {app: a}, ports: [{port: 80, targetPort: 8080}]}\n")
	reg := prometheus.NewRegistry()
	s, err := New(Config{Dir: dir, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r := s.Resources()
	if len(r.Services) != 1 || len(r.Workloads) != 1 || r.Services[0].Outbound.RequestTimeout != model.Duration(5*time.Second) || r.Services[0].Outbound.Retry != nil {
		t.Fatalf("resources %+v, service defaults %+v", r, r.Services)
	}
	if len(r.Errors) != 1 || r.Errors[0].Source != filepath.Join(dir, "a.yaml") || !strings.Contains(r.Errors[0].Message, "annotation retry.sinew.dev/limit: \"none\"") {
		t.Errorf("errors %+v", r.Errors)
	}
	var m dto.Metric
	if err := s.invalidFiles.Write(&m); err != nil || m.GetGauge().GetValue() != 0 {
		t.Errorf("local_source_invalid_files = %v, want 0", m.GetGauge().GetValue())
	}
}

// Policies follow their file like the other kinds: a broken edit keeps the last good ones (never none, which
// would fall back to the more open default policy), and an object defined in two files is reported.
func TestPoliciesKeepLastGood(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const server = "apiVersion: policy.sinew.dev/v1alpha1\nkind: Server\nmetadata: {name: web-http, namespace: ns}\nspec: {podSelector: {matchLabels: {app: a}}, port: 8080}\n"
	write(t, dir, "a.yaml", workload("a", "a"))
	write(t, dir, "policy.yaml", server)
	s, err := New(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if r := s.Resources(); len(r.Policies.Servers) != 1 || len(r.Errors) != 0 {
		t.Fatalf("initial: %+v, errors %v", r.Policies, r.Errors)
	}

	write(t, dir, "policy.yaml", server+"---\nkind: ServerAuthorization\nmetadata: {name: x, namespace: ns}\nspec: {server: {name: web-http}, client: {}}\n")
	s.load("policy.yaml")
	r := s.Resources()
	if len(r.Policies.Servers) != 1 || r.Policies.Len() != 1 {
		t.Errorf("after breaking policy.yaml: %+v, want the last good Server alone", r.Policies)
	}
	want := "policy.yaml: document 2 (ServerAuthorization x, line 6): spec.client: give meshTLS (meshed clients) or unauthenticated: true (any client), not both and not neither"
	if len(r.Errors) != 1 || r.Errors[0].Message != want {
		t.Errorf("errors %+v\nwant %s", r.Errors, want)
	}

	write(t, dir, "policy.yaml", server)
	s.load("policy.yaml")
	write(t, dir, "z.yaml", server)
	s.load("z.yaml")
	r = s.Resources()
	if len(r.Policies.Servers) != 1 || len(r.Errors) != 1 ||
		r.Errors[0].Message != "z.yaml: Server ns/web-http is already defined in policy.yaml; ignoring this one" {
		t.Errorf("duplicate: %+v, errors %+v", r.Policies, r.Errors)
	}
}
