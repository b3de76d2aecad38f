package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// dashboardSummary is what browser/dashboard.mjs prints after driving the dashboard.
type dashboardSummary struct {
	Nodes []struct {
		Name    string   `json:"name"`
		Success *float64 `json:"success"`
	} `json:"nodes"`
	Edges []struct {
		Src     string `json:"src"`
		Dst     string `json:"dst"`
		Secured bool   `json:"secured"`
		Label   string `json:"label"`
	} `json:"edges"`
	VotingSuccess   *float64   `json:"votingSuccess"`
	Workloads       [][]string `json:"workloads"`
	NamespaceCLI    []string   `json:"namespaceCLI"`
	NamespaceErrors []string   `json:"namespaceErrors"`
	WorkloadURL     string     `json:"workloadURL"`
	CountFirst      int        `json:"countFirst"`
	CountLater      int        `json:"countLater"`
	LiveCalls       [][]string `json:"liveCalls"`
	LiveHeader      []string   `json:"liveHeader"`
	TapStatus       string     `json:"tapStatus"`
	WorkloadCLI     []string   `json:"workloadCLI"`
	WorkloadErrors  []string   `json:"workloadErrors"`
	Screenshot      string     `json:"screenshot"`
	Stopped         bool       `json:"stopped"`
	PageErrors      []string   `json:"pageErrors"`
	ConsoleErrors   []string   `json:"consoleErrors"`
	Split           []struct {
		Service  string `json:"service"`
		Route    string `json:"route"`
		Heading  string `json:"heading"`
		Backends []struct {
			Backend  string   `json:"backend"`
			Share    *float64 `json:"share"`
			Cells    []string `json:"cells"`
			BarWidth float64  `json:"barWidth"`
			BarMax   float64  `json:"barMax"`
		} `json:"backends"`
	} `json:"split"`
	SplitCLI          string `json:"splitCLI"`
	Failure           string `json:"failure"`
	FailureScreenshot string `json:"failureScreenshot"`
	FailureText       string `json:"failureText"`
}

// TestDashboardInBrowser opens the viz dashboard of a `sinew demo` with the vote-bot's traffic in a real Chromium
// (browser/dashboard.mjs, Playwright): the emojivoto topology with voting below 100 %, a click through to web,
// web's live calls counting up, and the traffic split of an HTTPRoute (given with -f) that sends a fifth of web's
// calls to voting-svc to a second Service of the voting workload, voting-canary. It keeps a full-page screenshot in $SINEW_TEST_ARTIFACTS (default
// test/integration/artifacts/).
func TestDashboardInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the sinew and emojivoto binaries and runs a browser")
	}
	const chromium = "/usr/bin/chromium"
	if _, err := os.Stat(chromium); err != nil {
		t.Skipf("%s is missing (Debian: apt-get install chromium); .ci/run installs it", chromium)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is missing (Debian: apt-get install nodejs npm); .ci/run installs it")
	}
	browserDir, err := filepath.Abs("browser")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(browserDir, "node_modules", "playwright-core")); err != nil {
		t.Skip("playwright-core is not installed: run `npm ci --prefix test/integration/browser` (.ci/run does)")
	}
	artifacts := os.Getenv("SINEW_TEST_ARTIFACTS")
	if artifacts == "" {
		if artifacts, err = filepath.Abs("artifacts"); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(artifacts, "dashboard-deploy-web.png")
	_ = os.Remove(shot) // a picture from an earlier run must not pass for this one's

	bin := buildBinaries(t, "sinew", "emojivoto")
	base := freePortBase(t, 50)
	split := filepath.Join(t.TempDir(), "voting-split.yaml")
	if err := os.WriteFile(split, []byte(votingSplit), 0o644); err != nil {
		t.Fatal(err)
	}
	demo := startDemo(t, bin, "--port-base", fmt.Sprint(base), "-f", split) // with the vote-bot's traffic
	demo.out.waitLine(t, regexp.MustCompile(`Ctrl-C stops everything`), 90*time.Second)

	viz := fmt.Sprintf("http://127.0.0.1:%d", base+6)
	get := func(path, host string) (int, http.Header, string, error) {
		req, err := http.NewRequest(http.MethodGet, viz+path, nil)
		if err != nil {
			return 0, nil, "", err
		}
		if host != "" {
			req.Host = host
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, nil, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b), err
	}
	eventually(t, 60*time.Second, "the viz API at "+viz, func() error {
		code, _, body, err := get("/api/version", "")
		if err != nil {
			return err
		}
		var v struct{ Version, Mode string }
		if code != http.StatusOK || json.Unmarshal([]byte(body), &v) != nil || v.Version == "" {
			return fmt.Errorf("/api/version: %d %s", code, body)
		}
		return nil
	})
	code, hdr, body, err := get("/", "")
	if err != nil || code != http.StatusOK || !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") || !strings.Contains(body, "app.js") {
		t.Fatalf("GET / should serve the dashboard: %d %q %v\n%.300s", code, hdr.Get("Content-Type"), err, body)
	}
	// DNS rebinding: a page on another name that resolves to 127.0.0.1 must not read the API.
	for _, path := range []string{"/api/version", "/"} {
		if code, _, body, err := get(path, "evil.example"); err != nil || code != http.StatusForbidden {
			t.Errorf("GET %s with Host evil.example: %d %v %.200s, want 403", path, code, err, body)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "dashboard.mjs")
	cmd.Dir = browserDir
	cmd.Env = append(os.Environ(), "SINEW_VIZ_URL="+viz, "SINEW_SCREENSHOT="+shot, "CHROMIUM="+chromium, "SINEW_EXPECT_SPLIT=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	t.Logf("dashboard.mjs:\n%s", stderr.String())
	var s dashboardSummary
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &s); err != nil {
		t.Fatalf("dashboard.mjs: %v; its output is not a summary (%v):\n%s", runErr, err, stdout.String())
	}
	if runErr != nil || s.Failure != "" {
		t.Fatalf("dashboard.mjs failed (%v): %s\nscreenshot of the failure: %s\npage text:\n%s", runErr, s.Failure, s.FailureScreenshot, s.FailureText)
	}

	// The namespace view.
	var names []string
	for _, n := range s.Nodes {
		names = append(names, n.Name)
	}
	for _, want := range []string{"web", "voting", "emoji"} {
		if !slices.Contains(names, want) {
			t.Errorf("topology nodes %v, want %s among them", names, want)
		}
	}
	if s.VotingSuccess == nil || *s.VotingSuccess <= 0 || *s.VotingSuccess >= 1 {
		t.Errorf("voting's success rate in the graph: %v, want between 0 and 1 (doughnut votes fail)", s.VotingSuccess)
	} else {
		t.Logf("voting's success rate in the graph: %.2f%%", *s.VotingSuccess*100)
	}
	secured := false
	for _, e := range s.Edges {
		if e.Src == "web" && e.Dst == "voting" {
			secured = e.Secured
		}
	}
	if !secured {
		t.Errorf("edges %+v: want web → voting marked secured", s.Edges)
	}
	for _, want := range []string{"sinew viz stat deploy -n emojivoto", "sinew viz edges deploy -n emojivoto"} {
		if !slices.Contains(s.NamespaceCLI, want) {
			t.Errorf("namespace view shows the commands %q, want %q among them", s.NamespaceCLI, want)
		}
	}
	if len(s.NamespaceErrors) > 0 {
		t.Errorf("namespace view shows errors: %q", s.NamespaceErrors)
	}

	// The workload view.
	if !strings.HasSuffix(s.WorkloadURL, "#/namespaces/emojivoto/deploy/web") {
		t.Errorf("clicking web led to %s", s.WorkloadURL)
	}
	wantHeader := []string{"Source", "Destination", "Method", "Path", "Count", "Best", "Worst", "Last", "Success Rate"}
	if !slices.EqualFunc(s.LiveHeader, wantHeader, strings.EqualFold) {
		t.Errorf("live-calls columns %q, want %q", s.LiveHeader, wantHeader)
	}
	if len(s.LiveCalls) == 0 || s.CountLater <= s.CountFirst {
		t.Errorf("live calls: %d rows, count %d then %d; want rows and a growing count", len(s.LiveCalls), s.CountFirst, s.CountLater)
	}
	if !slices.ContainsFunc(s.WorkloadCLI, func(c string) bool { return strings.HasPrefix(c, "sinew viz top deploy/web -n emojivoto") }) {
		t.Errorf("workload view shows the commands %q, want sinew viz top deploy/web -n emojivoto among them", s.WorkloadCLI)
	}
	if !s.Stopped {
		t.Error("the live-calls stop button did not stop the stream")
	}
	if len(s.PageErrors) > 0 {
		t.Errorf("the page threw: %q", s.PageErrors)
	}
	t.Logf("topology: %v; live calls (count %d → %d):\n%s", names, s.CountFirst, s.CountLater, formatRows(s.LiveCalls))
	if len(s.WorkloadErrors) > 0 {
		t.Errorf("workload view shows errors: %q", s.WorkloadErrors)
	}

	// The traffic split: voting-svc's route, with both backends, the canary's share near its weight (20 of 100;
	// dashboard.mjs waits for 60 responses in the window, over which a 20 % share varies by about 5 points, so the
	// bounds are 3 and 45), the shares adding up, and each bar as wide as its share.
	if len(s.Split) != 1 || s.Split[0].Service != "voting-svc" || s.Split[0].Route != "HTTPRoute/voting-split" {
		t.Errorf("traffic split %+v: want one block, voting-svc → HTTPRoute/voting-split", s.Split)
	} else {
		shares := map[string]float64{}
		for _, b := range s.Split[0].Backends {
			if b.Share == nil {
				t.Errorf("backend %s without a share: %v", b.Backend, b.Cells)
				continue
			}
			shares[b.Backend] = *b.Share
			if b.BarMax <= 0 || math.Abs(b.BarWidth/b.BarMax*100-*b.Share) > 3 {
				t.Errorf("backend %s: bar %.0f of %.0f px for a share of %.1f %%", b.Backend, b.BarWidth, b.BarMax, *b.Share)
			}
		}
		canary, stable := shares["voting-canary:8080"], shares["voting-svc:8080"]
		if len(shares) != 2 || math.Abs(canary+stable-100) > 0.2 || canary < 3 || canary > 45 {
			t.Errorf("traffic split shares %v: want voting-svc:8080 and voting-canary:8080, the canary near 20 %%", shares)
		}
		t.Logf("traffic split: %s: %v", s.Split[0].Heading, shares)
	}
	if s.SplitCLI != "sinew viz routes deploy/web -n emojivoto --to svc" {
		t.Errorf("traffic split panel's command %q", s.SplitCLI)
	}

	// The picture.
	png, err := os.ReadFile(shot)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if len(png) < 8 || !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("screenshot %s is not a PNG (%d bytes)", shot, len(png))
	}
	t.Logf("screenshot of deploy/web: %s (%d bytes)", shot, len(png))
}

// votingSplit is the demo's extra documents for the traffic split: a second Service of the voting workload and an
// HTTPRoute that sends a fifth of voting-svc's requests to it.
const votingSplit = `apiVersion: sinew.dev/v1alpha1
kind: Service
metadata: {name: voting-canary, namespace: emojivoto}
spec:
  selector: {app: voting-svc}
  ports: [{name: grpc, port: 8080, targetPort: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: voting-split, namespace: emojivoto}
spec:
  parentRefs: [{group: "", kind: Service, name: voting-svc, port: 8080}]
  rules:
  - backendRefs:
    - {name: voting-svc, port: 8080, weight: 80}
    - {name: voting-canary, port: 8080, weight: 20}
`

func formatRows(rows [][]string) string {
	var b strings.Builder
	for _, r := range rows {
		b.WriteString("  " + strings.Join(r, " | ") + "\n")
	}
	return b.String()
}
