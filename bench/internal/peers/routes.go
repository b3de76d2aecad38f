package peers

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// RouteName is the HTTPRoute of sinew-routes and of S10, on the client's target Service "server".
const RouteName = "bench-split"

// SplitBackends are the two Services of the route's split. Both select the server Workload (and, in S10, the
// standby while it is in), so a request reaches the same proxies and app whichever the split picks.
var SplitBackends = [2]string{"server-a", "server-b"}

// routeMisses is how many rules come before the catch-all: each matches a path prefix or a header the load
// never sends, so every request is tested against all of them before it falls through to the split.
const routeMisses = 9

// RouteDoc is the HTTPRoute on Service server, port 80: routeMisses rules of two matches each (a path prefix
// /r<i>, or a header x-r: <i>) sending to server-a, then a rule without matches splitting weightA/weightB
// between server-a and server-b. The load generator's requests (path "/", no x-r header) match only the last.
func RouteDoc(weightA, weightB int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: %s, namespace: bench}
spec:
  parentRefs: [{group: "", kind: Service, name: server, port: 80}]
  rules:
`, RouteName)
	for i := 1; i <= routeMisses; i++ {
		fmt.Fprintf(&b, "  - matches: [{path: {type: PathPrefix, value: /r%d}}, {headers: [{name: x-r, value: %q}]}]\n", i, strconv.Itoa(i))
		fmt.Fprintf(&b, "    backendRefs: [{name: %s, port: 80}]\n", SplitBackends[0])
	}
	fmt.Fprintf(&b, "  - backendRefs:\n    - {name: %s, port: 80, weight: %d}\n    - {name: %s, port: 80, weight: %d}\n",
		SplitBackends[0], weightA, SplitBackends[1], weightB)
	return b.String()
}

// SplitServices are the route's backends: Services like server (port 80 to the container port 8080 that the
// server proxy maps to the app), selecting the same Workloads.
func SplitServices() string {
	var docs []string
	for _, name := range SplitBackends {
		docs = append(docs, fmt.Sprintf(`apiVersion: sinew.dev/v1alpha1
kind: Service
metadata: {name: %s, namespace: bench}
spec: {selector: {app: server}, ports: [{name: http, port: 80, targetPort: 8080}]}
`, name))
	}
	return strings.Join(docs, "---\n")
}

// standbyWorkload is the second server of ChurnMesh: the same app behind its own proxy.
const standbyWorkload = "standby"

// StandbyDoc is the standby's Workload; in puts it in the server Services' selection (label app: server),
// out of it (app: standby) otherwise. Its proxy keeps running either way, so requests already sent to it finish.
func StandbyDoc(meshPort string, in bool) string {
	app := "standby"
	if in {
		app = "server"
	}
	return fmt.Sprintf(`apiVersion: sinew.dev/v1alpha1
kind: Workload
metadata: {name: %s, namespace: bench, labels: {app: %s}}
spec: {serviceAccount: %s, address: 127.0.0.1, meshPort: %s, ports: [{name: http, port: 8080}]}
`, standbyWorkload, app, standbyWorkload, meshPort)
}

// ChurnWeights are the split's weights that S10 cycles through, starting with the first.
var ChurnWeights = [][2]int{{90, 10}, {10, 90}, {50, 50}}

// Churn rewrites a ChurnMesh instance's resource files, each atomically (a dot-file the control plane ignores,
// renamed over the old one), so the control plane never reads half a file. It is not safe for concurrent use.
type Churn struct {
	dir, standbyPort          string
	in                        bool // the standby is in the server Services' selection
	weights                   int  // index into ChurnWeights
	clientAdmin, standbyAdmin string
}

// newChurn writes the initial resources into dir: the split Services, the route at ChurnWeights[0] and the
// standby in.
func newChurn(dir, standbyMeshPort string) (*Churn, error) {
	c := &Churn{dir: dir, standbyPort: standbyMeshPort, in: true}
	for name, doc := range map[string]string{"split.yaml": SplitServices(), "route.yaml": c.route(), "standby.yaml": StandbyDoc(c.standbyPort, c.in)} {
		if err := writeAtomic(dir, name, doc); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (c *Churn) route() string {
	w := ChurnWeights[c.weights]
	return RouteDoc(w[0], w[1])
}

// ToggleEndpoints moves the standby in or out of the server Services' endpoints; it returns whether it is in now.
func (c *Churn) ToggleEndpoints() (bool, error) {
	c.in = !c.in
	return c.in, writeAtomic(c.dir, "standby.yaml", StandbyDoc(c.standbyPort, c.in))
}

// NextRoute rewrites the route with the next weights of ChurnWeights and returns them.
func (c *Churn) NextRoute() ([2]int, error) {
	c.weights = (c.weights + 1) % len(ChurnWeights)
	return ChurnWeights[c.weights], writeAtomic(c.dir, "route.yaml", c.route())
}

// Served reads, from the proxies' metrics, how many requests the standby's proxy took in and how many the client
// proxy sent to each backend of the route: evidence that the changes reached the data plane.
func (c *Churn) Served(ctx context.Context) (standby float64, backends map[string]float64, err error) {
	text, err := scrape(ctx, c.standbyAdmin)
	if err != nil {
		return 0, nil, err
	}
	standby = SeriesSum(text, "request_total", map[string]string{"direction": "inbound"})
	if text, err = scrape(ctx, c.clientAdmin); err != nil {
		return 0, nil, err
	}
	return standby, routeBackends(text), nil
}

func writeAtomic(dir, name, content string) error {
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, name))
}

// routeInForce sends requests through the instance until the client proxy's metrics show both backends of
// RouteName's split, so that a run with routes measures a route in force (plain sinew would show neither).
func routeInForce(ctx context.Context, in *Instance, clientAdmin string) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	var seen map[string]float64
	for {
		for range 50 {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+in.Addr+"/", nil)
			req.Host = in.Host
			if in.Authorization != "" {
				req.Header.Set("Authorization", in.Authorization)
			}
			resp, err := client.Do(req)
			if err != nil {
				return fmt.Errorf("checking the HTTPRoute: %w", err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("checking the HTTPRoute: status %d", resp.StatusCode)
			}
		}
		text, err := scrape(ctx, clientAdmin)
		if err != nil {
			return fmt.Errorf("checking the HTTPRoute: %w", err)
		}
		if seen = routeBackends(text); seen[SplitBackends[0]] > 0 && seen[SplitBackends[1]] > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("HTTPRoute %s not in force: the client proxy's outbound_http_route_backend_requests_total for it shows %v, want both %s and %s",
				RouteName, seen, SplitBackends[0], SplitBackends[1])
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// routeBackends is the client proxy's requests per backend of RouteName, from its metrics text.
func routeBackends(metrics string) map[string]float64 {
	out := map[string]float64{}
	for _, b := range SplitBackends {
		if n := SeriesSum(metrics, "outbound_http_route_backend_requests_total", map[string]string{"route_name": RouteName, "backend_name": b}); n > 0 {
			out[b] = n
		}
	}
	return out
}

func scrape(ctx context.Context, admin string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s/metrics: status %d", admin, resp.StatusCode)
	}
	return string(b), err
}

// SeriesSum adds up the samples of family in Prometheus text whose labels include every pair of want.
func SeriesSum(text, family string, want map[string]string) float64 {
	var sum float64
	for _, line := range strings.Split(text, "\n") {
		rest, ok := strings.CutPrefix(line, family)
		if !ok || rest == "" || (rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		var labels map[string]string
		if rest[0] == '{' {
			if labels, rest, ok = parseLabels(rest[1:]); !ok {
				continue
			}
		}
		match := true
		for k, v := range want {
			if labels[k] != v {
				match = false
				break
			}
		}
		fields := strings.Fields(rest)
		if !match || len(fields) == 0 {
			continue
		}
		if v, err := strconv.ParseFloat(fields[0], 64); err == nil {
			sum += v
		}
	}
	return sum
}

// parseLabels reads `k="v",...}` (the text after a series' "{") and returns the labels and what follows "}".
func parseLabels(s string) (map[string]string, string, bool) {
	labels := map[string]string{}
	for {
		s = strings.TrimLeft(s, " ,")
		if strings.HasPrefix(s, "}") {
			return labels, s[1:], true
		}
		eq := strings.Index(s, `="`)
		if eq <= 0 {
			return nil, "", false
		}
		key := s[:eq]
		s = s[eq+2:]
		var v strings.Builder
		i := 0
		for ; i < len(s) && s[i] != '"'; i++ {
			if s[i] == '\\' && i+1 < len(s) {
				i++
				switch s[i] {
				case 'n':
					v.WriteByte('\n')
				default:
					v.WriteByte(s[i])
				}
				continue
			}
			v.WriteByte(s[i])
		}
		if i == len(s) {
			return nil, "", false
		}
		labels[key] = v.String()
		s = s[i+1:]
	}
}
