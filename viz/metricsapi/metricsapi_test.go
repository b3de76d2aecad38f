package metricsapi

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	goldenfile "github.com/sinewmesh/sinew/internal/golden"
	"github.com/sinewmesh/sinew/viz/internal/promql"
)

var fixedTime = time.Date(2026, 1, 2, 3, 4, 5, 600e6, time.UTC)

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	goldenfile.Check(t, filepath.Join("testdata", name), got)
}

// fakeQuerier answers by query text; an unknown query is a test failure, so the fixtures stay in step with the
// query builder.
type fakeQuerier struct {
	t       *testing.T
	answers map[string][]Sample
}

func (f *fakeQuerier) Query(_ context.Context, q string, at time.Time) ([]Sample, error) {
	if !at.Equal(fixedTime) {
		f.t.Errorf("query %s at %v, want every query at %v", q, at, fixedTime)
	}
	a, ok := f.answers[q]
	if !ok {
		f.t.Errorf("unexpected query %s", q)
	}
	return a, nil
}

func s(v float64, kv ...string) Sample {
	l := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		l[kv[i]] = kv[i+1]
	}
	return Sample{Labels: l, Value: v}
}

func statFixture(t *testing.T, req StatRequest) *fakeQuerier {
	qs, err := promql.Stat(req)
	if err != nil {
		t.Fatal(err)
	}
	row := func(ns, name string) []string { return []string{"namespace", ns, "deployment", name} }
	return &fakeQuerier{t: t, answers: map[string][]Sample{
		qs.Meshed:  {s(1, row("emojivoto", "web")...), s(1, row("emojivoto", "emoji")...), s(2, row("emojivoto", "voting")...), s(1, row("other", "idle")...)},
		qs.Pods:    {s(1, row("emojivoto", "web")...), s(1, row("emojivoto", "emoji")...), s(2, row("emojivoto", "voting")...), s(1, row("other", "idle")...)},
		qs.Total:   {s(2, row("emojivoto", "web")...), s(4.05, row("emojivoto", "emoji")...), s(1.5, row("emojivoto", "voting")...), s(0, row("other", "idle")...)},
		qs.Success: {s(1.9, row("emojivoto", "web")...), s(4.05, row("emojivoto", "emoji")...), s(1.425, row("emojivoto", "voting")...), s(0, row("other", "idle")...)},
		qs.P50:     {s(3.2, row("emojivoto", "web")...), s(1, row("emojivoto", "emoji")...), s(1.4, row("emojivoto", "voting")...), s(math.NaN(), row("other", "idle")...)},
		qs.P95:     {s(9.5, row("emojivoto", "web")...), s(1.9, row("emojivoto", "emoji")...), s(4.75, row("emojivoto", "voting")...), s(math.NaN(), row("other", "idle")...)},
		qs.P99:     {s(19.9, row("emojivoto", "web")...), s(2, row("emojivoto", "emoji")...), s(5, row("emojivoto", "voting")...), s(math.NaN(), row("other", "idle")...)},
		qs.TCPConns: {s(3, row("emojivoto", "web")...), s(1, row("emojivoto", "emoji")...), s(2, row("emojivoto", "voting")...),
			s(0, row("other", "idle")...)},
		qs.ReadBytes:  {s(1234.56, row("emojivoto", "web")...), s(88, row("emojivoto", "emoji")...)},
		qs.WriteBytes: {s(4321, row("emojivoto", "web")...), s(99.9, row("emojivoto", "emoji")...)},
	}}
}

func TestStatOutputs(t *testing.T) {
	req := StatRequest{Resource: Resource{Kind: KindDeployment}, Window: time.Minute}
	rows, err := Stat(context.Background(), statFixture(t, req), req, fixedTime)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		file, output string
		all          bool
	}{{"stat.table", OutputTable, false}, {"stat_all_namespaces.table", OutputTable, true}, {"stat_wide.table", OutputWide, true}, {"stat.json", OutputJSON, true}} {
		var b bytes.Buffer
		if err := WriteStat(&b, rows, c.output, c.all); err != nil {
			t.Fatal(err)
		}
		golden(t, c.file, b.Bytes())
	}
	var b bytes.Buffer
	if err := WriteStat(&b, nil, OutputTable, false); err != nil || b.String() != "No traffic found.\n" {
		t.Errorf("empty stat: %q, %v", b.String(), err)
	}
	if err := WriteStat(&b, rows, "yaml", false); err == nil || !strings.Contains(err.Error(), `unknown output format "yaml"`) {
		t.Errorf("-o yaml: %v", err)
	}
}

func TestEdgesOutputs(t *testing.T) {
	qs, err := promql.Edges(KindDeployment, "", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	const web, voting, emoji, bot = "spiffe://cluster.local/ns/emojivoto/sa/web", "spiffe://cluster.local/ns/emojivoto/sa/voting",
		"spiffe://cluster.local/ns/emojivoto/sa/emoji", "spiffe://cluster.local/ns/emojivoto/sa/default"
	fq := &fakeQuerier{t: t, answers: map[string][]Sample{
		qs.Outbound: {
			s(2, "namespace", "emojivoto", "deployment", "web", "dst_namespace", "emojivoto", "dst_deployment", "voting", "server_id", voting, "tls", "true"),
			s(4, "namespace", "emojivoto", "deployment", "web", "dst_namespace", "emojivoto", "dst_deployment", "emoji", "server_id", emoji, "tls", "true"),
			s(2, "namespace", "emojivoto", "deployment", "vote-bot", "dst_namespace", "emojivoto", "dst_deployment", "web", "server_id", "", "tls", "no_identity"),
			s(1, "namespace", "emojivoto", "deployment", "web", "tls", "no_identity"), // to something outside the mesh
		},
		qs.Inbound: {
			s(2, "namespace", "emojivoto", "deployment", "voting", "client_id", web, "tls", "true"),
			s(4, "namespace", "emojivoto", "deployment", "emoji", "client_id", web, "tls", "true"),
			s(1, "namespace", "emojivoto", "deployment", "emoji", "client_id", bot, "tls", "true"),
			s(2, "namespace", "emojivoto", "deployment", "web", "tls", "no_identity"),
		},
	}}
	edges, err := Edges(context.Background(), fq, KindDeployment, "", time.Minute, fixedTime)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ file, output string }{{"edges.table", OutputTable}, {"edges_wide.table", OutputWide}, {"edges.json", OutputJSON}} {
		var b bytes.Buffer
		if err := WriteEdges(&b, edges, c.output); err != nil {
			t.Fatal(err)
		}
		golden(t, c.file, b.Bytes())
	}
}

func TestMatchClient(t *testing.T) {
	a, b := "spiffe://td/ns/n/sa/a", "spiffe://td/ns/n/sa/b"
	for _, c := range []struct {
		ids      []string
		ns, name string
		want     string
	}{
		{[]string{a, b}, "n", "b", b},               // service account named like the source
		{[]string{a}, "n", "a-deploy", a},           // the only client from that namespace
		{[]string{a, b}, "n", "c", ""},              // ambiguous: say nothing rather than guess
		{[]string{a}, "other", "a", ""},             // wrong namespace
		{[]string{"not-a-spiffe-id"}, "n", "a", ""}, // unparseable
	} {
		if got := matchClient(c.ids, c.ns, c.name); got != c.want {
			t.Errorf("matchClient(%v, %s, %s) = %q, want %q", c.ids, c.ns, c.name, got, c.want)
		}
	}
}

func TestClient(t *testing.T) {
	var gotQuery string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/prom/api/v1/query" {
			http.NotFound(w, r)
			return
		}
		gotQuery = r.FormValue("query")
		if at := r.FormValue("time"); gotQuery == "good" && at != "1700000000.250" {
			t.Errorf("time=%q, want the requested instant", at)
		}
		switch gotQuery {
		case "good":
			fmt.Fprint(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"deployment":"web"},"value":[1700000000.1,"0.95"]},{"metric":{},"value":[1700000000.1,"NaN"]}]}}`)
		case "scalar(1)":
			fmt.Fprint(w, `{"status":"success","data":{"resultType":"scalar","result":[1700000000.1,"1"]}}`)
		case "matrix":
			fmt.Fprint(w, `{"status":"success","data":{"resultType":"matrix","result":[]}}`)
		case "slow":
			<-r.Context().Done()
		case "html":
			w.WriteHeader(http.StatusBadGateway)
			fmt.Fprint(w, "<html>bad gateway</html>")
		default:
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected end of input"}`)
		}
	}))
	defer srv.Close()
	c, err := NewClient(srv.URL+"/prom", 500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	got, err := c.Query(ctx, "good", time.UnixMilli(1700000000250))
	if err != nil || len(got) != 2 || got[0].Labels["deployment"] != "web" || got[0].Value != 0.95 || !math.IsNaN(got[1].Value) {
		t.Fatalf("good: %+v, %v", got, err)
	}
	if got, err := c.Query(ctx, "scalar(1)", time.Time{}); err != nil || len(got) != 1 || got[0].Value != 1 {
		t.Errorf("scalar: %+v, %v", got, err)
	}
	for q, want := range map[string]string{
		"sum(":   "query failed: bad_data: 1:5: parse error: unexpected end of input (query: sum()",
		"matrix": `want an instant vector, got a "matrix" result`,
		"html":   `answered HTTP 502 with something that is not its API ("<html>bad gateway</html>")`,
		"slow":   "is unreachable",
	} {
		if _, err := c.Query(ctx, q, time.Time{}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error with %q", q, err, want)
		}
	}

	// Nothing listening: a clear message naming the address, and IsUnreachable.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := "http://" + ln.Addr().String()
	ln.Close()
	down, _ := NewClient(addr, time.Second)
	_, err = down.Query(ctx, "up", time.Time{})
	if err == nil || !IsUnreachable(err) || !strings.HasPrefix(err.Error(), "Prometheus at "+addr+" is unreachable: ") {
		t.Errorf("down: %v", err)
	}
	for _, bad := range []string{"", "127.0.0.1:9090", "ftp://x", "http://"} {
		if _, err := NewClient(bad, 0); err == nil {
			t.Errorf("NewClient(%q): want an error", bad)
		}
	}
}

func TestPrometheusConfig(t *testing.T) {
	targets := []ScrapeTarget{
		{Address: "127.0.0.1:17032", Namespace: "emojivoto", Deployment: "web-svc", Pod: "web"},
		{Address: "127.0.0.1:17012", Namespace: "emojivoto", Deployment: "emoji-svc", Pod: "emoji"},
		{Address: "127.0.0.1:17022", Namespace: "emojivoto", Deployment: "voting-svc", Pod: "voting"},
	}
	cfg, err := PrometheusConfig(targets, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "prometheus.yml", cfg)
	if promtool, err := exec.LookPath("promtool"); err == nil {
		path := filepath.Join(t.TempDir(), "prometheus.yml")
		if err := os.WriteFile(path, cfg, 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(promtool, "check", "config", path).CombinedOutput(); err != nil {
			t.Errorf("promtool rejects the config: %v\n%s", err, out)
		}
	}
	for _, c := range []struct {
		targets  []ScrapeTarget
		interval time.Duration
		want     string
	}{
		{targets, 500 * time.Millisecond, "want whole seconds"},
		{nil, time.Second, "no scrape targets"},
		{[]ScrapeTarget{{Address: "nohost", Namespace: "n", Deployment: "d", Pod: "p"}}, time.Second, `scrape target "nohost": want host:port`},
		{[]ScrapeTarget{targets[0], targets[0]}, time.Second, "listed twice"},
		{[]ScrapeTarget{{Address: "127.0.0.1:1", Namespace: "n"}}, time.Second, "namespace, deployment and pod are all required"},
	} {
		if _, err := PrometheusConfig(c.targets, c.interval); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("PrometheusConfig: %v, want an error with %q", err, c.want)
		}
	}
	if d := LocalDeployment("web", map[string]string{"app": "web-svc"}); d != "web-svc" {
		t.Errorf("LocalDeployment with an app label = %q", d)
	}
	if d := LocalDeployment("web", map[string]string{"app": "web-svc", "sinew.dev/proxy-deployment": "web"}); d != "web" {
		t.Errorf("LocalDeployment with the deployment label = %q", d)
	}
	if d := LocalDeployment("web", nil); d != "web" {
		t.Errorf("LocalDeployment without labels = %q", d)
	}
}
