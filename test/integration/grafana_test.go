package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"math"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sinewmesh/sinew/viz/grafana"
)

// grafanaQuery is one PromQL query of a dashboard: a panel target's or a template variable's.
type grafanaQuery struct {
	dashboard, panel, panelType, expr string
}

// grafanaQueries reads every panel target of every shipped dashboard (rows included).
func grafanaQueries(t *testing.T) (panels, variables []grafanaQuery) {
	t.Helper()
	type panel struct {
		Type    string `json:"type"`
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
		Panels []json.RawMessage `json:"panels"`
	}
	var walk func(dash string, raw []json.RawMessage)
	walk = func(dash string, raw []json.RawMessage) {
		for _, r := range raw {
			var p panel
			if err := json.Unmarshal(r, &p); err != nil {
				t.Fatalf("%s: %v", dash, err)
			}
			walk(dash, p.Panels)
			for _, tg := range p.Targets {
				panels = append(panels, grafanaQuery{dash, p.Title, p.Type, tg.Expr})
			}
		}
	}
	names, err := fs.Glob(grafana.Dashboards, "*.json")
	if err != nil || len(names) == 0 {
		t.Fatalf("no dashboards: %v", err)
	}
	for _, n := range names {
		b, err := fs.ReadFile(grafana.Dashboards, n)
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			Panels     []json.RawMessage `json:"panels"`
			Templating struct {
				List []struct {
					Name       string `json:"name"`
					Definition string `json:"definition"`
				} `json:"list"`
			} `json:"templating"`
		}
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		walk(n, d.Panels)
		for _, v := range d.Templating.List {
			if v.Definition != "" {
				variables = append(variables, grafanaQuery{n, v.Name, "variable", v.Definition})
			}
		}
	}
	return panels, variables
}

// substitute does what Grafana does to a query before sending it, for the demo's web deployment.
func substitute(expr string) string {
	return strings.NewReplacer("$__rate_interval", "1m", "${namespace}", "emojivoto", "$namespace", "emojivoto",
		"${deployment}", "web", "$deployment", "web").Replace(expr)
}

// labelValuesRE reads Grafana's label_values(selector, label), which Prometheus itself does not know.
var labelValuesRE = regexp.MustCompile(`^label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$`)

// TestGrafanaDashboards evaluates every query of the Grafana dashboards in viz/grafana against the demo's real
// Prometheus, with the template variables set to namespace emojivoto and deployment web: Prometheus must accept
// each one, the variables must offer emojivoto and web, and with traffic flowing every panel must show data (the
// stat panels a number).
func TestGrafanaDashboards(t *testing.T) {
	panels, variables := grafanaQueries(t)
	d := startPromDemo(t)
	ctx := context.Background()

	for _, v := range variables {
		m := labelValuesRE.FindStringSubmatch(v.expr)
		if m == nil {
			t.Errorf("%s: variable %s: %q is not label_values(selector, label)", v.dashboard, v.panel, v.expr)
			continue
		}
		q := fmt.Sprintf("count by (%s) (%s)", m[2], substitute(m[1]))
		want := map[string]string{"namespace": "emojivoto", "deployment": "web"}[m[2]]
		eventually(t, 30*time.Second, fmt.Sprintf("%s: variable %s offers %s", v.dashboard, v.panel, want), func() error {
			got, err := d.client.Query(ctx, q, time.Time{})
			if err != nil {
				return err
			}
			for _, s := range got {
				if s.Labels[m[2]] == want {
					return nil
				}
			}
			return fmt.Errorf("%s: %+v", q, got)
		})
	}

	// Counters need traffic over two scrapes inside the window: keep sending while polling.
	pending := map[int]bool{}
	for i := range panels {
		pending[i] = true
	}
	eventually(t, 60*time.Second, "every dashboard query showing data", func() error {
		d.round(t)
		at := time.Now()
		for i := range pending {
			p := panels[i]
			q := substitute(p.expr)
			got, err := d.client.Query(ctx, q, at)
			if err != nil {
				t.Fatalf("%s: panel %q: Prometheus rejects the query: %v", p.dashboard, p.panel, err)
			}
			if len(got) == 0 {
				continue
			}
			if p.panelType == "stat" && (math.IsNaN(got[0].Value) || math.IsInf(got[0].Value, 0)) {
				continue
			}
			delete(pending, i)
		}
		if len(pending) > 0 {
			var missing []string
			for i := range pending {
				missing = append(missing, fmt.Sprintf("%s: %q: %s", panels[i].dashboard, panels[i].panel, substitute(panels[i].expr)))
			}
			return fmt.Errorf("%d queries without data yet:\n%s", len(missing), strings.Join(missing, "\n"))
		}
		return nil
	})
	t.Logf("%d panel queries and %d variable queries answered", len(panels), len(variables))
}
