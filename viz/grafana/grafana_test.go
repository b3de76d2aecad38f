package grafana

import (
	"encoding/json"
	"io/fs"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// dashboard is the part of a dashboard file the tests read.
type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Definition string          `json:"definition"`
			Datasource *datasource     `json:"datasource"`
			Query      json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	Targets    []struct {
		Expr       string      `json:"expr"`
		RefID      string      `json:"refId"`
		Datasource *datasource `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's
}

func load(t *testing.T) map[string]dashboard {
	t.Helper()
	names, err := fs.Glob(Dashboards, "*.json")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"sinew-deployment.json", "sinew-namespace.json", "sinew-top-line.json"}; !slices.Equal(names, want) {
		t.Fatalf("dashboards %v, want %v", names, want)
	}
	out := map[string]dashboard{}
	for _, n := range names {
		b, err := fs.ReadFile(Dashboards, n)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard
		dec := json.NewDecoder(strings.NewReader(string(b)))
		if err := dec.Decode(&d); err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		out[n] = d
	}
	return out
}

// queryPanels flattens rows away.
func queryPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		if p.Type == "row" {
			out = append(out, queryPanels(p.Panels)...)
			continue
		}
		out = append(out, p)
	}
	return out
}

const dsVar = "${DS_PROMETHEUS}"

func TestDashboards(t *testing.T) {
	uids := map[string]string{}
	for name, d := range load(t) {
		if d.UID == "" || d.Title == "" {
			t.Errorf("%s: no uid or title", name)
		}
		if prev, dup := uids[d.UID]; dup {
			t.Errorf("%s and %s share uid %q", prev, name, d.UID)
		}
		uids[d.UID] = name
		if d.SchemaVersion < 36 {
			t.Errorf("%s: schemaVersion %d, want a current Grafana's (39)", name, d.SchemaVersion)
		}
		vars := map[string]bool{}
		for _, v := range d.Templating.List {
			vars[v.Name] = true
			if v.Type == "query" && (v.Datasource == nil || v.Datasource.UID != dsVar || !strings.HasPrefix(v.Definition, "label_values(")) {
				t.Errorf("%s: variable %s: want a label_values() query on %s", name, v.Name, dsVar)
			}
		}
		for _, v := range []string{"DS_PROMETHEUS", "namespace", "deployment"} {
			if !vars[v] {
				t.Errorf("%s: no template variable %s", name, v)
			}
		}
		ids := map[int]bool{}
		ps := queryPanels(d.Panels)
		if len(ps) < 6 {
			t.Errorf("%s: only %d panels", name, len(ps))
		}
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("%s: panel id %d used twice", name, p.ID)
			}
			ids[p.ID] = true
			if p.Datasource == nil || p.Datasource.Type != "prometheus" || p.Datasource.UID != dsVar {
				t.Errorf("%s: panel %q: datasource %+v, want prometheus %s", name, p.Title, p.Datasource, dsVar)
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s: panel %q has no query", name, p.Title)
			}
			for _, tg := range p.Targets {
				if strings.TrimSpace(tg.Expr) == "" || tg.RefID == "" {
					t.Errorf("%s: panel %q: a target without expr or refId", name, p.Title)
				}
				if tg.Datasource != nil && tg.Datasource.UID != dsVar {
					t.Errorf("%s: panel %q: target datasource %+v", name, p.Title, tg.Datasource)
				}
			}
		}
	}
}

// metricRE finds the metric of each selector: every selector in the dashboards has braces.
var metricRE = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{`)

// labelRE finds the label names in matchers and in by (...) clauses.
var (
	matcherRE = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"`)
	byRE      = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
	backtick  = regexp.MustCompile("`([a-z_]+)`")
)

// documented reads the backticked names of a Markdown table's column (0-based, after the leading pipe) from a doc.
func documented(t *testing.T, path string, col int, from string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	if from != "" {
		i := strings.Index(text, from)
		if i < 0 {
			t.Fatalf("%s: no %q", path, from)
		}
		text = text[i:]
	}
	var names []string
	for _, line := range strings.Split(text, "\n") {
		cols := strings.Split(line, "|")
		if !strings.HasPrefix(line, "|") || len(cols) < col+3 {
			continue
		}
		for _, m := range backtick.FindAllStringSubmatch(cols[col+1], -1) {
			names = append(names, m[1])
		}
	}
	return names
}

// TestOnlyOurMetrics checks every metric and label the dashboards use against the proxy's documented metrics
// (docs/observability/metrics.md, which the proxy's own test keeps in step with the families it registers) and the
// label contract's target labels (docs/observability/viz.md).
func TestOnlyOurMetrics(t *testing.T) {
	metrics := documented(t, "../../docs/observability/metrics.md", 0, "")
	labels := documented(t, "../../docs/observability/metrics.md", 1, "")
	labels = append(labels, documented(t, "../../docs/observability/viz.md", 0, "## Label contract")...)
	labels = append(labels, "le") // histogram buckets
	for _, want := range []string{"response_total", "route_response_total", "tcp_open_connections"} {
		if !slices.Contains(metrics, want) {
			t.Fatalf("metrics.md lists %v, not %s: has its table changed shape?", metrics, want)
		}
	}
	for _, want := range []string{"job", "namespace", "deployment", "pod", "direction", "rt_route", "dst_deployment"} {
		if !slices.Contains(labels, want) {
			t.Fatalf("the docs' labels %v lack %s: has a table changed shape?", labels, want)
		}
	}
	known := func(m string) bool {
		if m == "up" { // Prometheus's own, per scrape target
			return true
		}
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(m, suffix); ok && slices.Contains(metrics, b) {
				return true
			}
		}
		return slices.Contains(metrics, m)
	}
	used := 0
	for name, d := range load(t) {
		var exprs []string
		for _, p := range queryPanels(d.Panels) {
			for _, tg := range p.Targets {
				exprs = append(exprs, tg.Expr)
			}
		}
		for _, v := range d.Templating.List {
			if v.Definition != "" {
				exprs = append(exprs, v.Definition)
			}
		}
		for _, e := range exprs {
			ms := metricRE.FindAllStringSubmatch(e, -1)
			if len(ms) == 0 {
				t.Errorf("%s: no metric selector in %s", name, e)
			}
			for _, m := range ms {
				used++
				if !known(m[1]) {
					t.Errorf("%s: metric %s is not one the proxies export (docs/observability/metrics.md): %s", name, m[1], e)
				}
			}
			var ls []string
			for _, m := range matcherRE.FindAllStringSubmatch(e, -1) {
				ls = append(ls, m[1])
			}
			for _, m := range byRE.FindAllStringSubmatch(e, -1) {
				for _, l := range strings.Split(m[1], ",") {
					ls = append(ls, strings.TrimSpace(l))
				}
			}
			for _, l := range ls {
				if !slices.Contains(labels, l) {
					t.Errorf("%s: label %s is neither a proxy metric label nor a target label: %s", name, l, e)
				}
			}
		}
	}
	if used == 0 {
		t.Fatal("no metrics found in the dashboards")
	}
}
