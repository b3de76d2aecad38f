package integration

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// admitAnyone admits every client to web's http port, next to the example's vote-bot-only authorization.
const admitAnyone = `---
apiVersion: policy.sinew.dev/v1alpha1
kind: ServerAuthorization
metadata: {name: web-anyone, namespace: emojivoto}
spec:
  server: {name: web-http}
  client: {unauthenticated: true}
`

// brokenServer is a document the control plane rejects: a port is a number or a name, not a list.
const brokenServer = `---
apiVersion: policy.sinew.dev/v1alpha1
kind: Server
metadata: {name: web-broken, namespace: emojivoto}
spec:
  podSelector: {matchLabels: {app: web-svc}}
  port: [8080]
`

// TestSinewDemoPolicyFile runs `sinew demo -f policy.yaml` with the example that admits only vote-bot to web: a
// plain client gets 403 while vote-bot is admitted, and `sinew diagnostics policy` shows what web's proxy received.
// Editing the file to admit anyone applies without a restart; breaking it is reported on stderr with the file and
// line, and the last good policy stays.
func TestSinewDemoPolicyFile(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the sinew binary")
	}
	example, err := os.ReadFile("../../examples/emojivoto/policy/web-only-vote-bot.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	policy := filepath.Join(dir, "policy.yaml")
	writePolicy := func(content string) {
		t.Helper()
		if err := os.WriteFile(policy, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writePolicy(string(example))

	bin := buildBinaries(t, "sinew")
	base := freePortBase(t, 50)
	env := []string{"XDG_RUNTIME_DIR=" + t.TempDir()} // where the demo says where its proxies are, for diagnostics
	demo := startDemoEnv(t, bin, env, "--port-base", fmt.Sprint(base), "--no-prometheus", "-f", policy)
	demo.out.waitLine(t, regexp.MustCompile(`Ctrl-C stops everything`), 120*time.Second)
	if got := demo.stderr.String(); !strings.Contains(got, "✔ "+policy+" accepted by the control plane") {
		t.Fatalf("the start does not say the policy was accepted:\n%s", got)
	}

	web := fmt.Sprintf("http://127.0.0.1:%d/api/leaderboard", base+31)
	status := func() (int, error) {
		resp, err := http.Get(web)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	expect := func(what string, want int) {
		t.Helper()
		eventually(t, 15*time.Second, what, func() error {
			code, err := status()
			if err != nil {
				return err
			}
			if code != want {
				return fmt.Errorf("status %d, want %d", code, want)
			}
			return nil
		})
	}
	webMetrics := func() string {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", base+32))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	diagnostics := func() string {
		t.Helper()
		cmd := exec.Command(filepath.Join(bin, "sinew"), "diagnostics", "policy", "-n", "emojivoto", "web", "8080")
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("sinew diagnostics policy: %v\n%s%s", err, out, stderrOf(err))
		}
		return string(out)
	}

	// Only vote-bot: the test, an unmeshed client, is refused; vote-bot's votes are admitted by its authorization.
	expect("a plain client refused", http.StatusForbidden)
	eventually(t, 15*time.Second, "vote-bot admitted", func() error {
		if n := metricValue(webMetrics(), "inbound_http_authz_allow_total", `srv_name="web-http"`, `authz_name="web-vote-bot"`); n < 1 {
			return fmt.Errorf("web's proxy admitted %v requests by web-vote-bot", n)
		}
		return nil
	})
	if got := diagnostics(); !strings.Contains(got, `"srvName": "web-http"`) || !strings.Contains(got, `"authzName": "web-vote-bot"`) || strings.Contains(got, "web-anyone") {
		t.Errorf("diagnostics policy before the edit:\n%s", got)
	}

	// Edited to admit anyone: applies without a restart.
	writePolicy(string(example) + admitAnyone)
	expect("a plain client admitted after the edit", http.StatusOK)
	eventually(t, 10*time.Second, "the edit reported", func() error {
		if got := demo.stderr.String(); !strings.Contains(got, "✔ "+policy+" applied") {
			return fmt.Errorf("stderr:\n%s", got)
		}
		return nil
	})
	if got := diagnostics(); !strings.Contains(got, `"authzName": "web-anyone"`) {
		t.Errorf("diagnostics policy after the edit:\n%s", got)
	}

	// Broken: reported with the file, the document and its line; the last good policy stays.
	writePolicy(string(example) + admitAnyone + brokenServer)
	wantErr := regexp.MustCompile(`✖ ` + regexp.QuoteMeta(policy) + `: document 4 \(Server[^)]*, line \d+\): port: .*the last good version of ` + regexp.QuoteMeta(policy) + ` stays in force`)
	eventually(t, 10*time.Second, "the broken edit reported", func() error {
		if got := demo.stderr.String(); !wantErr.MatchString(got) {
			return fmt.Errorf("stderr:\n%s", got)
		}
		return nil
	})
	for range 3 {
		if code, err := status(); err != nil || code != http.StatusOK {
			t.Fatalf("after the broken edit: %d %v, want 200 (the last good policy)", code, err)
		}
	}
	if got := diagnostics(); !strings.Contains(got, `"authzName": "web-anyone"`) {
		t.Errorf("diagnostics policy after the broken edit:\n%s", got)
	}
}

func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}
