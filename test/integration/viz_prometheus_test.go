package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sinewmesh/sinew/viz/metricsapi"
)

// TestVizAgainstPrometheus runs the emojivoto demo, scrapes its proxies with a real Prometheus using the config viz
// generates, and checks that viz's queries read the traffic back: web's failed doughnut votes lower its success
// rate, emoji never fails, and web's calls to voting are mTLS with both identities.
//
// The demo runs as `sinew demo` (the same localmesh.Demo that `sinew demo` runs; cli/internal/localmesh is not
// importable from here). Its proxies' admin ports are base+12 (emoji), base+22 (voting) and base+32 (web).
func TestVizAgainstPrometheus(t *testing.T) {
	d := startPromDemo(t)
	bin, base, promURL, client := d.bin, d.base, d.promURL, d.client
	ctx := context.Background()
	app := fmt.Sprintf("http://127.0.0.1:%d/", base+31)
	// Counters start at their first value, so a rate needs traffic across scrapes: each poll sends one more round.
	round := func() { d.round(t) }

	window := time.Minute
	statOf := func(kind metricsapi.Kind, name string) (metricsapi.StatRow, error) {
		rows, err := metricsapi.Stat(ctx, client, metricsapi.StatRequest{
			Resource: metricsapi.Resource{Kind: kind, Namespace: "emojivoto", Name: name}, Window: window}, time.Time{})
		if err != nil {
			return metricsapi.StatRow{}, err
		}
		if len(rows) != 1 {
			return metricsapi.StatRow{}, fmt.Errorf("stat %s/%s: %d rows: %+v", kind, name, len(rows), rows)
		}
		if rows[0].SuccessRate == nil {
			return rows[0], fmt.Errorf("stat %s/%s: no success rate yet", kind, name)
		}
		return rows[0], nil
	}
	var web, emoji metricsapi.StatRow
	eventually(t, 60*time.Second, "Prometheus has web's failures and emoji's successes", func() error {
		round()
		var err error
		if web, err = statOf(metricsapi.KindPod, "web"); err != nil {
			return err
		}
		if *web.SuccessRate >= 1 {
			return fmt.Errorf("web success rate %v: the doughnut failures are not in yet", *web.SuccessRate)
		}
		if emoji, err = statOf(metricsapi.KindPod, "emoji"); err != nil {
			return err
		}
		return nil
	})
	if sr := *web.SuccessRate; sr <= 0 || sr >= 1 {
		t.Errorf("web success rate %v, want between 0 and 1 (a third of the requests fail)", sr)
	}
	if sr := *emoji.SuccessRate; sr != 1 {
		t.Errorf("emoji success rate %v, want 100%%", sr)
	}
	for _, r := range []metricsapi.StatRow{web, emoji} {
		if r.RPS == nil || *r.RPS <= 0 || r.LatencyP50 == nil || r.MeshedPods == nil || *r.MeshedPods != 1 || r.TotalPods == nil || *r.TotalPods != 1 {
			t.Errorf("stat row %+v: want traffic, a latency and 1/1 meshed", r)
		}
	}
	// The deployment view reads the same traffic through the deployment target label (sinew.dev/proxy-deployment).
	// Each proxy is scraped at its own offset, so poll until every row has caught up.
	var all []metricsapi.StatRow
	eventually(t, 30*time.Second, "deployments web below 100% and emoji at 100%", func() error {
		round()
		var err error
		all, err = metricsapi.Stat(ctx, client, metricsapi.StatRequest{
			Resource: metricsapi.Resource{Kind: metricsapi.KindDeployment, Namespace: "emojivoto"}, Window: window}, time.Time{})
		if err != nil {
			return err
		}
		byName := map[string]metricsapi.StatRow{}
		for _, r := range all {
			byName[r.Name] = r
		}
		if r, ok := byName["web"]; !ok || r.SuccessRate == nil || *r.SuccessRate >= 1 {
			return fmt.Errorf("deployment web: %+v, want a success rate below 100%%", r)
		}
		if r, ok := byName["emoji"]; !ok || r.SuccessRate == nil {
			return fmt.Errorf("deployment emoji: %+v, no success rate yet", r)
		} else if *r.SuccessRate != 1 {
			t.Fatalf("deployment emoji: success rate %v, want 100%%", *r.SuccessRate)
		}
		return nil
	})
	var table bytes.Buffer
	if err := metricsapi.WriteStat(&table, all, metricsapi.OutputWide, true); err != nil {
		t.Fatal(err)
	}
	t.Logf("stat deployments:\n%s", table.String())

	// Edges: web → voting over mTLS, each side's verified identity.
	const webID, votingID = "spiffe://cluster.local/ns/emojivoto/sa/web", "spiffe://cluster.local/ns/emojivoto/sa/voting"
	var edge metricsapi.Edge
	var edges []metricsapi.Edge
	eventually(t, 30*time.Second, "the web → voting edge", func() error {
		round()
		var err error
		edges, err = metricsapi.Edges(ctx, client, metricsapi.KindPod, "emojivoto", window, time.Time{})
		if err != nil {
			return err
		}
		for _, e := range edges {
			if e.Src == "web" && e.Dst == "voting" {
				edge = e
				if e.ClientID == "" {
					return fmt.Errorf("web → voting edge without a client identity yet (voting's proxy not scraped since): %+v", e)
				}
				return nil
			}
		}
		return fmt.Errorf("no web → voting edge in %+v", edges)
	})
	if !edge.Secured || edge.ClientID != webID || edge.ServerID != votingID || edge.SrcNamespace != "emojivoto" || edge.DstNamespace != "emojivoto" {
		t.Errorf("edge %+v: want secured, client %s, server %s", edge, webID, votingID)
	}
	var et bytes.Buffer
	if err := metricsapi.WriteEdges(&et, edges, metricsapi.OutputWide); err != nil {
		t.Fatal(err)
	}
	t.Logf("edges:\n%s", et.String())

	// The same, as a user sees it: `sinew viz stat` and `sinew viz edges` against the demo's Prometheus.
	sinew := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(filepath.Join(bin, "sinew"), append(args, "-n", "emojivoto", "--prometheus-url", promURL)...).CombinedOutput()
		if err != nil {
			t.Fatalf("sinew %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	var statJSON []metricsapi.StatRow
	if err := json.Unmarshal([]byte(sinew("viz", "stat", "deploy", "-o", "json")), &statJSON); err != nil {
		t.Fatal(err)
	}
	cliRows := map[string]metricsapi.StatRow{}
	for _, r := range statJSON {
		cliRows[r.Name] = r
	}
	if r := cliRows["web"]; r.SuccessRate == nil || *r.SuccessRate >= 1 {
		t.Errorf("sinew viz stat deploy: web %+v, want a success rate below 100%%", r)
	}
	if r := cliRows["emoji"]; r.SuccessRate == nil || *r.SuccessRate != 1 {
		t.Errorf("sinew viz stat deploy: emoji %+v, want 100%%", r)
	}
	statTable := sinew("viz", "stat", "deploy")
	if !regexp.MustCompile(`(?m)^emoji\s+1/1\s+100\.00%\s+\d+\.\drps`).MatchString(statTable) {
		t.Errorf("sinew viz stat deploy table lacks emoji at 100%%:\n%s", statTable)
	}
	edgesTable := sinew("viz", "edges", "deploy", "-o", "wide")
	if !regexp.MustCompile(`(?m)^web\s+voting\s+emojivoto\s+emojivoto\s+√\s+web\.emojivoto\s+voting\.emojivoto`).MatchString(edgesTable) {
		t.Errorf("sinew viz edges deploy -o wide lacks a secured web → voting edge with both identities:\n%s", edgesTable)
	}
	t.Logf("sinew viz stat deploy:\n%s\nsinew viz edges deploy -o wide:\n%s", statTable, edgesTable)

	// Through the viz API the demo serves (base+6), as `sinew viz` reads it by default: the same stat answer, and
	// live requests from tap and top.
	vizURL := fmt.Sprintf("http://127.0.0.1:%d", base+6)
	viz := func(ctx context.Context, args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, filepath.Join(bin, "sinew"), append(args, "-n", "emojivoto", "--viz-url", vizURL)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("sinew %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if apiTable := viz(ctx, "viz", "stat", "deploy"); !regexp.MustCompile(`(?m)^emoji\s+1/1\s+100\.00%`).MatchString(apiTable) {
		t.Errorf("sinew viz stat deploy through the viz API lacks emoji at 100%%:\n%s", apiTable)
	}

	// Authorization: the demo's proxies have no policy service, so the default policy all-unauthenticated admits
	// every inbound request. voting's row carries its doughnut failures, and its success rate and latencies (summed
	// per target in Go) equal stat's (PromQL's histogram_quantile) for its one pod and port at the same instant.
	voting := metricsapi.Resource{Kind: metricsapi.KindDeployment, Namespace: "emojivoto", Name: "voting"}
	var authz metricsapi.AuthzRow
	var votingStat metricsapi.StatRow
	eventually(t, 30*time.Second, "voting's authorization row", func() error {
		round()
		at := time.Now()
		rows, err := metricsapi.Authz(ctx, client, metricsapi.AuthzRequest{Resource: voting, Window: window}, at)
		if err != nil {
			return err
		}
		if len(rows) != 1 || rows[0].SuccessRate == nil || rows[0].LatencyP99 == nil {
			return fmt.Errorf("authz deploy/voting: %+v, want one admitted row with a success rate and latencies", rows)
		}
		stat, err := metricsapi.Stat(ctx, client, metricsapi.StatRequest{Resource: voting, Window: window}, at)
		if err != nil {
			return err
		}
		if len(stat) != 1 || stat[0].SuccessRate == nil || stat[0].LatencyP99 == nil {
			return fmt.Errorf("stat deploy/voting: %+v", stat)
		}
		authz, votingStat = rows[0], stat[0]
		return nil
	})
	if authz.Server() != "default:all-unauthenticated" || authz.Authorization() != "default/all-unauthenticated" || authz.Route != "default" ||
		authz.RPS == nil || *authz.RPS <= 0 || authz.UnauthorizedRPS == nil || *authz.UnauthorizedRPS != 0 {
		t.Errorf("authz deploy/voting %+v: want default:all-unauthenticated admitting traffic by default/all-unauthenticated, none denied", authz)
	}
	if sr := *authz.SuccessRate; sr <= 0 || sr >= 1 {
		t.Errorf("authz deploy/voting success rate %v, want between 0 and 1 (doughnut votes fail)", sr)
	}
	near := func(a, b *float64) bool {
		return a != nil && b != nil && math.Abs(*a-*b) <= 1e-9*math.Max(1, math.Abs(*b))
	}
	for _, c := range []struct {
		name        string
		authz, stat *float64
	}{{"success", authz.SuccessRate, votingStat.SuccessRate}, {"p50", authz.LatencyP50, votingStat.LatencyP50},
		{"p95", authz.LatencyP95, votingStat.LatencyP95}, {"p99", authz.LatencyP99, votingStat.LatencyP99}} {
		if !near(c.authz, c.stat) {
			t.Errorf("voting's %s: authz %v, stat %v; want the same", c.name, deref(c.authz), deref(c.stat))
		}
	}
	authzRE := regexp.MustCompile(`(?m)^default\s+default:all-unauthenticated\s+default/all-unauthenticated\s+0\.0rps\s+\d+\.\d\d%\s+\d+\.\drps\s+\d+ms`)
	for _, out := range []string{sinew("viz", "authz", "deploy/voting"), viz(ctx, "viz", "authz", "deploy/voting")} {
		if !authzRE.MatchString(out) {
			t.Errorf("sinew viz authz deploy/voting lacks the default policy's row:\n%s", out)
		}
	}
	t.Logf("sinew viz authz deploy/voting:\n%s", sinew("viz", "authz", "deploy/voting", "-o", "wide"))

	// Tap needs requests while it listens: keep voting until the taps are done.
	trafficCtx, stopTraffic := context.WithCancel(ctx)
	trafficDone := make(chan struct{})
	go func() {
		defer close(trafficDone)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-trafficCtx.Done():
				return
			case <-tick.C:
			}
			for _, path := range []string{"api/vote?choice=:beer:", "api/vote?choice=:doughnut:"} {
				if resp, err := http.Get(app + path); err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}
	}()
	defer func() { stopTraffic(); <-trafficDone }()
	tapCtx, cancelTap := context.WithTimeout(ctx, 60*time.Second)
	defer cancelTap()

	// web's calls to voting, as tap lines: every hop is mTLS, and ids carry the proxy's index as Linkerd's do.
	tapOut := viz(tapCtx, "viz", "tap", "deploy/web", "--to", "deploy/voting", "--limit", "4")
	lineRE := regexp.MustCompile(`^(req|rsp|end) id=0:\d+ proxy=out src=\S+ dst=127\.0\.0\.1:\d+ tls=true `)
	kinds := map[string]int{}
	for _, l := range splitLines(tapOut) {
		m := lineRE.FindStringSubmatch(l)
		if m == nil {
			t.Errorf("tap line %q: want an outbound mTLS line", l)
			continue
		}
		kinds[m[1]]++
	}
	if kinds["req"] != 4 || kinds["rsp"] != 4 || kinds["end"] != 4 {
		t.Errorf("sinew viz tap --limit 4: %v lines of each kind, want 4 req, 4 rsp and 4 end:\n%s", kinds, tapOut)
	}
	if !regexp.MustCompile(`:path=/emojivoto\.v1\.VotingService/Vote`).MatchString(tapOut) {
		t.Errorf("sinew viz tap shows no vote:\n%s", tapOut)
	}
	t.Logf("sinew viz tap deploy/web --to deploy/voting --limit 4:\n%s", tapOut)

	// JSON: one object per line, the event in protobuf JSON.
	var first struct {
		Proxy string `json:"proxy"`
		Event struct {
			TLS         string `json:"tls"`
			RequestInit *struct {
				Path string `json:"path"`
			} `json:"requestInit"`
		} `json:"event"`
	}
	jsonOut := splitLines(viz(tapCtx, "viz", "tap", "deploy/web", "--to", "deploy/voting", "--limit", "1", "-o", "json"))
	if len(jsonOut) == 0 || json.Unmarshal([]byte(jsonOut[0]), &first) != nil || first.Proxy != "emojivoto/web" || first.Event.TLS != "true" || first.Event.RequestInit == nil {
		t.Errorf("sinew viz tap -o json: first line %q, want web's request start over mTLS", jsonOut)
	}

	// top: the doughnut votes, all failed.
	topOut := viz(tapCtx, "viz", "top", "deploy/web", "--to", "deploy/voting", "--path", "/emojivoto.v1.VotingService/VoteDoughnut", "--limit", "3")
	if !regexp.MustCompile(`(?m)^web\s+voting\s+POST\s+/emojivoto\.v1\.VotingService/VoteDoughnut\s+3\s+\S+\s+\S+\s+\S+\s+0\.00%$`).MatchString(topOut) {
		t.Errorf("sinew viz top --path …/VoteDoughnut: want one row of 3 failed calls:\n%s", topOut)
	}
	t.Logf("sinew viz top:\n%s", topOut)
}

// splitLines is a command's output, a line each, without empty ones.
func splitLines(s string) []string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// deref shows a metric that may be missing.
func deref(v *float64) any {
	if v == nil {
		return nil
	}
	return *v
}
