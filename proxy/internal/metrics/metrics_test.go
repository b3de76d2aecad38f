package metrics

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func newTest(t *testing.T) (*Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := New(reg)
	if err != nil {
		t.Fatal(err)
	}
	return m, reg
}

// series returns the label sets (as name=value lists, sorted) of a family's series.
func series(t *testing.T, reg *prometheus.Registry, family string) []map[string]string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]string
	for _, mf := range mfs {
		if mf.GetName() != family {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			l["#value"] = fmt.Sprint(value(m))
			out = append(out, l)
		}
	}
	return out
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return m.Gauge.GetValue()
}

// TestDocumentedMetrics keeps docs/observability/metrics.md, the list of metric names that dashboards and viz
// rely on (viz/grafana's test reads it too), in step with the families this package registers.
func TestDocumentedMetrics(t *testing.T) {
	doc, err := os.ReadFile("../../../docs/observability/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := documentedNames(string(doc))
	m, reg := newTest(t)
	// Touch every vector so Gather lists it.
	s := m.Series(Labels{Direction: "inbound"})
	s.Request()
	s.Response(200, -1, false).End()
	s.Path("a", "/").Response(200, -1, false).End()
	s.Path("a", "/").Request()
	m.Conn(Labels{Direction: "inbound"}, "src").Closed(false)
	m.Conn(Labels{Direction: "inbound"}, "src").Opened()
	m.Error("inbound", "x")
	m.Route(RouteKey{}).End(200, -1, false)
	m.MirrorSent()
	m.MirrorSkipped("too_many")
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) != 17 {
		t.Errorf("gathered %d families, want 17 (a new family? add it here and to metrics.md)", len(mfs))
	}
	for _, mf := range mfs {
		if !slices.Contains(documented, mf.GetName()) {
			t.Errorf("metric %s is not in docs/observability/metrics.md's table", mf.GetName())
		}
	}
}

var docNameRE = regexp.MustCompile("`([a-z_]+)`")

// documentedNames reads the metric names from the first column of metrics.md's table.
func documentedNames(doc string) []string {
	var names []string
	for _, line := range strings.Split(doc, "\n") {
		cols := strings.Split(line, "|")
		if len(cols) < 3 || !strings.HasPrefix(line, "|") {
			continue
		}
		for _, m := range docNameRE.FindAllStringSubmatch(cols[1], -1) {
			names = append(names, m[1])
		}
	}
	return names
}

// BenchmarkResponse is a request's metrics without route_* metrics, as before they existed;
// BenchmarkResponseWithPathStats adds the route_* work of a cached path. The difference is what route metrics cost
// per request.
func BenchmarkResponse(b *testing.B) {
	reg := prometheus.NewRegistry()
	m, _ := New(reg)
	r := m.Series(Labels{Direction: "inbound", TLS: "true"})
	b.ReportAllocs()
	for b.Loop() {
		r.Request()
		resp := r.Response(200, 0, false)
		resp.ObserveLatency(1.5)
		resp.End()
	}
}
