//go:build e2e

package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

const vizNS = "sinew-viz"

// vizSteps is the viz extension's part of the journey, run while emojivoto is meshed: install, check, the golden
// metrics of each deployment, the mTLS edge web → voting, live tap, and uninstall. ready is the step after which
// emojivoto is meshed and serving.
func vizSteps(j *journey, e env, ready string) {
	// a failed step also shows the extension's pods and logs
	step := func(name string, needs []string, fn func(t *testing.T)) {
		j.step(name, needs, func(t *testing.T) {
			defer func() {
				if t.Failed() {
					dumpState(t, vizNS)
				}
			}()
			fn(t)
		})
	}
	step("viz-install", []string{ready}, func(t *testing.T) { installViz(t, e) })

	step("viz-check", []string{"viz-install"}, func(t *testing.T) { checkViz(t, e) })

	step("viz-stat", []string{"viz-check"}, func(t *testing.T) {
		// vote-bot calls web all the time, and web calls emoji and voting; Prometheus needs a few scrapes in
		// the 1m window before rates show
		var last string
		eventually(t, 3*time.Minute, "web, voting and emoji in `viz stat` with traffic", func() error {
			r := run(time.Minute, "", e.sinew, "viz", "stat", "-n", appNS, "deploy")
			last = r.String()
			if r.err != nil {
				return fmt.Errorf("%s", r)
			}
			rows, err := parseTable(r.stdout)
			if err != nil {
				return fmt.Errorf("%v\n%s", err, r)
			}
			for _, d := range []string{"web", "voting", "emoji"} {
				row, ok := rows[d]
				if !ok {
					return fmt.Errorf("no row for %s:\n%s", d, r.stdout)
				}
				if rps := number(row["RPS"]); rps <= 0 {
					return fmt.Errorf("%s has RPS %q:\n%s", d, row["RPS"], r.stdout)
				}
			}
			if sr := number(rows["voting"]["SUCCESS"]); sr <= 0 || sr >= 100 {
				return fmt.Errorf("voting's success rate is %q, want below 100%% (every doughnut vote fails):\n%s", rows["voting"]["SUCCESS"], r.stdout)
			}
			return nil
		})
		t.Logf("%s", last)
	})

	step("viz-edges", []string{"viz-check"}, func(t *testing.T) {
		var last string
		eventually(t, 2*time.Minute, "web → voting secured in `viz edges`", func() error {
			r := run(time.Minute, "", e.sinew, "viz", "edges", "deploy", "-n", appNS)
			last = r.String()
			if r.err != nil {
				return fmt.Errorf("%s", r)
			}
			for _, l := range strings.Split(r.stdout, "\n") {
				f := strings.Fields(l)
				if len(f) >= 5 && f[0] == "web" && f[1] == "voting" {
					if f[4] != "√" {
						return fmt.Errorf("web → voting is not secured (%s):\n%s", f[4], r.stdout)
					}
					return nil
				}
			}
			return fmt.Errorf("no web → voting edge:\n%s", r.stdout)
		})
		t.Logf("%s", last)
	})

	step("viz-tap", []string{"viz-check"}, func(t *testing.T) {
		r := run(90*time.Second, "", e.sinew, "viz", "tap", "deploy/web", "-n", appNS, "--limit", "10")
		t.Logf("%s", r)
		if r.err != nil {
			t.Fatalf("sinew viz tap failed")
		}
		if !strings.Contains(r.stdout, "tls=true") {
			t.Fatalf("sinew viz tap deploy/web printed no tls=true line")
		}
	})

	step("viz-routes-top", []string{"viz-check"}, func(t *testing.T) {
		// Prometheus has voting's routes once it scraped a doughnut vote twice; vote-bot votes for it 15 % of the time.
		eventually(t, 2*time.Minute, "voting's doughnut route failing in viz routes", func() error {
			r := run(time.Minute, "", e.sinew, "viz", "routes", "deploy/voting", "-n", appNS)
			if r.err != nil {
				return fmt.Errorf("%s", r)
			}
			for _, l := range strings.Split(r.stdout, "\n") {
				if f := strings.Fields(l); len(f) > 2 && f[0] == "/emojivoto.v1.VotingService/VoteDoughnut" && f[2] == "0.00%" {
					t.Logf("%s", r)
					return nil
				}
			}
			return fmt.Errorf("no VoteDoughnut row at 0.00%%:\n%s", r.stdout)
		})
		r := run(90*time.Second, "", e.sinew, "viz", "top", "deploy/web", "-n", appNS, "--limit", "10")
		t.Logf("%s", r)
		if r.err != nil || !strings.HasPrefix(r.stdout, "SOURCE") || !strings.Contains(r.stdout, "web") {
			t.Fatalf("sinew viz top deploy/web: want a table of web's calls")
		}
	})

	step("viz-dashboard", []string{"viz-check"}, func(t *testing.T) {
		// `viz dashboard --show url` port-forwards to sinew-viz and prints the URL until interrupted.
		cmd := exec.Command(e.sinew, "viz", "dashboard", "--show", "url", "--port", "0")
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() {
			_ = cmd.Process.Signal(os.Interrupt)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("sinew viz dashboard after Ctrl-C: %v\n%s", err, stderr.String())
				}
			case <-time.After(15 * time.Second):
				_ = cmd.Process.Kill()
				t.Errorf("sinew viz dashboard did not stop on Ctrl-C")
			}
		}()
		urls := make(chan string, 1)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				if strings.HasPrefix(sc.Text(), "http://") {
					urls <- strings.TrimSpace(sc.Text())
				}
			}
		}()
		var url string
		select {
		case url = <-urls:
		case <-time.After(time.Minute):
			t.Fatalf("sinew viz dashboard printed no URL; stderr:\n%s", stderr.String())
		}
		t.Logf("dashboard at %s", url)
		get := func(path, host string) (int, string) {
			req, err := http.NewRequest(http.MethodGet, url+path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if host != "" {
				req.Host = host
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("GET %s: %v", url+path, err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(body)
		}
		if code, body := get("", ""); code != 200 || !strings.Contains(body, "<html") {
			t.Errorf("dashboard page: %d %.200s", code, body)
		}
		if code, body := get("api/version", ""); code != 200 || !strings.Contains(body, `"mode":"kubernetes"`) {
			t.Errorf("api/version through the port-forward: %d %s", code, body)
		}
		if code, _ := get("api/version", "evil.example"); code != http.StatusForbidden {
			t.Errorf("a foreign Host header through the port-forward: %d, want 403", code)
		}
	})

	step("viz-uninstall", []string{"viz-install"}, func(t *testing.T) {
		pipe(t, 3*time.Minute, []string{e.sinew, "viz", "uninstall"}, []string{"kubectl", "delete", "--ignore-not-found", "-f", "-"})
		eventually(t, 3*time.Minute, "free of the viz extension", func() error {
			if left := vizObjects(); len(left) > 0 {
				return fmt.Errorf("still there: %s", strings.Join(left, ", "))
			}
			return nil
		})
	})
}

// installViz installs the extension, as a user of the local cluster does.
func installViz(t *testing.T, e env) {
	t.Helper()
	removeVizLeftovers(t)
	args := []string{e.sinew, "viz", "install"}
	// the local cluster has no internet: `make images` built a Prometheus image from Debian's binary, which
	// has no Kubernetes discovery, so it reads its targets over HTTP
	if img := os.Getenv("SINEW_E2E_PROMETHEUS_IMAGE"); img != "" {
		args = append(args, "--set", "prometheus.image="+img, "--set", "prometheus.discovery=http")
	}
	pipe(t, 2*time.Minute, args, []string{"kubectl", "apply", "-f", "-"})
}

// checkViz waits for `sinew viz check` to pass.
func checkViz(t *testing.T, e env) {
	t.Helper()
	out := must(t, 4*time.Minute, "", e.sinew, "viz", "check", "--wait", "3m")
	if !strings.Contains(out, "Status check results are ✔") {
		t.Fatalf("sinew viz check:\n%s", out)
	}
}

// removeVizLeftovers deletes what an earlier run may have left of the extension.
func removeVizLeftovers(t *testing.T) {
	t.Helper()
	kubectl(t, "delete", "ns", vizNS, "--ignore-not-found", "--wait=true", "--timeout=3m")
	kubectl(t, "delete", "clusterrole,clusterrolebinding", "-l", "sinew.dev/extension=viz", "--ignore-not-found", "--wait=true")
}

// vizObjects lists the extension's namespace and cluster-scoped objects that are still there.
func vizObjects() []string {
	var left []string
	if out, err := kubectlQuiet("get", "ns", vizNS, "-o", "name", "--ignore-not-found"); err != nil || strings.TrimSpace(out) != "" {
		left = append(left, "namespace/"+vizNS+strings.TrimSpace(" "+errString(err)))
	}
	out, err := kubectlQuiet("get", "clusterrole,clusterrolebinding", "-l", "sinew.dev/extension=viz", "-o", "name")
	if err != nil {
		return append(left, "(listing cluster roles failed: "+err.Error()+")")
	}
	left = append(left, strings.Fields(out)...)
	return left
}

// parseTable reads a table with a header line into rows keyed by the NAME column.
func parseTable(out string) (map[string]map[string]string, error) {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) == 0 {
		return nil, fmt.Errorf("empty output")
	}
	header := strings.Fields(lines[0])
	name := -1
	for i, h := range header {
		if h == "NAME" {
			name = i
		}
	}
	if name < 0 {
		return nil, fmt.Errorf("no NAME column in %q", lines[0])
	}
	rows := map[string]map[string]string{}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != len(header) {
			continue
		}
		row := map[string]string{}
		for i, h := range header {
			row[h] = f[i]
		}
		rows[f[name]] = row
	}
	return rows, nil
}

// number reads "97.50%", "1.5rps" or "3ms" as its number; "-" (no data) is 0.
func number(s string) float64 {
	s = strings.TrimRight(s, "%rpsm")
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0
	}
	return v
}
