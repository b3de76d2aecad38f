package peers

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"
)

// The route has nine rules the load never matches, then a catch-all split between two Services on port 80, and
// it decodes strictly as a Gateway API HTTPRoute with a Service parent.
func TestRouteDoc(t *testing.T) {
	t.Parallel()
	var rt gatewayv1.HTTPRoute
	if err := yaml.UnmarshalStrict([]byte(RouteDoc(90, 10)), &rt); err != nil {
		t.Fatalf("RouteDoc is not an HTTPRoute: %v", err)
	}
	if rt.Name != RouteName || rt.Namespace != "bench" || len(rt.Spec.ParentRefs) != 1 {
		t.Fatalf("metadata %s/%s, parents %d", rt.Namespace, rt.Name, len(rt.Spec.ParentRefs))
	}
	p := rt.Spec.ParentRefs[0]
	if p.Group == nil || *p.Group != "" || p.Kind == nil || *p.Kind != "Service" || p.Name != "server" || p.Port == nil || *p.Port != 80 {
		t.Errorf("parentRef = %+v, want core Service server port 80", p)
	}
	rules := rt.Spec.Rules
	if len(rules) != routeMisses+1 {
		t.Fatalf("%d rules, want %d", len(rules), routeMisses+1)
	}
	for i, r := range rules[:routeMisses] {
		if len(r.Matches) != 2 || len(r.BackendRefs) != 1 {
			t.Errorf("rule %d: %d matches, %d backends", i, len(r.Matches), len(r.BackendRefs))
		}
		for _, m := range r.Matches {
			if loadMatches(m) {
				t.Errorf("rule %d matches the load's requests (GET /, no x-r header): %+v", i, m)
			}
		}
	}
	last := rules[routeMisses]
	if len(last.Matches) != 0 || len(last.BackendRefs) != 2 {
		t.Fatalf("catch-all: %d matches, %d backends", len(last.Matches), len(last.BackendRefs))
	}
	for i, want := range []int32{90, 10} {
		b := last.BackendRefs[i]
		if string(b.Name) != SplitBackends[i] || b.Port == nil || *b.Port != 80 || b.Weight == nil || *b.Weight != want {
			t.Errorf("backend %d = %s port %v weight %v, want %s port 80 weight %d", i, b.Name, b.Port, b.Weight, SplitBackends[i], want)
		}
	}
}

// loadMatches reports whether a match can select the load generator's requests: path "/", no x-r header.
func loadMatches(m gatewayv1.HTTPRouteMatch) bool {
	if len(m.Headers) > 0 || len(m.QueryParams) > 0 || m.Method != nil {
		return false
	}
	if m.Path == nil || m.Path.Value == nil {
		return true
	}
	return *m.Path.Value == "/"
}

func TestSplitServicesAndStandby(t *testing.T) {
	t.Parallel()
	docs := strings.Split(SplitServices(), "---\n")
	if len(docs) != 2 {
		t.Fatalf("%d documents, want 2", len(docs))
	}
	type doc struct {
		Kind     string `json:"kind"`
		Metadata struct {
			Name   string            `json:"name"`
			Labels map[string]string `json:"labels"`
		} `json:"metadata"`
		Spec struct {
			Selector map[string]string `json:"selector"`
			MeshPort int               `json:"meshPort"`
		} `json:"spec"`
	}
	for i, d := range docs {
		var s doc
		if err := yaml.Unmarshal([]byte(d), &s); err != nil {
			t.Fatal(err)
		}
		if s.Kind != "Service" || s.Metadata.Name != SplitBackends[i] || s.Spec.Selector["app"] != "server" {
			t.Errorf("document %d: %+v, want Service %s selecting app=server", i, s, SplitBackends[i])
		}
	}
	for _, in := range []bool{true, false} {
		var w doc
		if err := yaml.Unmarshal([]byte(StandbyDoc("4143", in)), &w); err != nil {
			t.Fatal(err)
		}
		if selected := w.Metadata.Labels["app"] == "server"; selected != in || w.Spec.MeshPort != 4143 || w.Kind != "Workload" {
			t.Errorf("in=%v: %+v", in, w)
		}
	}
}

// Changes are written whole: the file is replaced by a rename, and no temporary file is left behind under a name
// the control plane would read.
func TestChurnWritesAtomically(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c, err := newChurn(dir, "4143")
	if err != nil {
		t.Fatal(err)
	}
	in, err := c.ToggleEndpoints()
	if err != nil || in {
		t.Fatalf("first toggle: in=%v err=%v, want the standby out", in, err)
	}
	if w, err := c.NextRoute(); err != nil || w != ChurnWeights[1] {
		t.Fatalf("first route change: %v %v, want %v", w, err, ChurnWeights[1])
	}
	b, err := os.ReadFile(filepath.Join(dir, "route.yaml"))
	if err != nil || string(b) != RouteDoc(ChurnWeights[1][0], ChurnWeights[1][1]) {
		t.Errorf("route.yaml = %q, %v", b, err)
	}
	b, err = os.ReadFile(filepath.Join(dir, "standby.yaml"))
	if err != nil || string(b) != StandbyDoc("4143", false) {
		t.Errorf("standby.yaml = %q, %v", b, err)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, ",") != "route.yaml,split.yaml,standby.yaml" {
		t.Errorf("files %v", names)
	}
}

func TestSeriesSum(t *testing.T) {
	t.Parallel()
	text := `# HELP outbound_http_route_backend_requests_total x
# TYPE outbound_http_route_backend_requests_total counter
outbound_http_route_backend_requests_total{parent_name="server",route_name="bench-split",backend_name="server-a",backend_port="80"} 91
outbound_http_route_backend_requests_total{parent_name="server",route_name="bench-split",backend_name="server-b",backend_port="80"} 9
outbound_http_route_backend_requests_total{parent_name="other",route_name="say \"hi\", then",backend_name="server-b"} 5
outbound_http_route_backend_requests_total_extra{route_name="bench-split",backend_name="server-a"} 1000
request_total{direction="inbound",target_addr="127.0.0.1:8080"} 40
request_total{direction="outbound"} 7
request_total 3
`
	got := routeBackends(text)
	if got["server-a"] != 91 || got["server-b"] != 9 || len(got) != 2 {
		t.Errorf("routeBackends = %v, want server-a 91, server-b 9", got)
	}
	if n := SeriesSum(text, "request_total", map[string]string{"direction": "inbound"}); n != 40 {
		t.Errorf("inbound requests = %v, want 40", n)
	}
	if n := SeriesSum(text, "request_total", nil); n != 50 {
		t.Errorf("all requests = %v, want 50", n)
	}
	if n := SeriesSum(text, "outbound_http_route_backend_requests_total", map[string]string{"route_name": `say "hi", then`}); n != 5 {
		t.Errorf("escaped label value: %v, want 5", n)
	}
	if len(routeBackends("request_total 3\n")) != 0 {
		t.Error("a proxy without the route shows backends")
	}
}

func TestChurnSkip(t *testing.T) {
	t.Parallel()
	for _, p := range All() {
		why := ChurnSkip(p)
		if (why == "") != (p.Name() == "sinew") {
			t.Errorf("%s: ChurnSkip = %q, want only sinew to churn", p.Name(), why)
		}
	}
}
