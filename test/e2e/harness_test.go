//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// env is what the Makefile hands the test: the cluster (KUBECONFIG), the binaries it built and their version.
type env struct {
	sinew   string // path of the sinew CLI
	version string
	repo    string // repository root
}

func loadEnv(t *testing.T) env {
	t.Helper()
	if os.Getenv("KUBECONFIG") == "" {
		t.Fatal("KUBECONFIG is not set: run `make e2e`, or bring the cluster up (hack/cluster/up.sh) and export the path it prints")
	}
	bin := os.Getenv("SINEW_E2E_BIN")
	if bin == "" {
		t.Fatal("SINEW_E2E_BIN (the directory holding the sinew binary) is not set: run `make e2e`")
	}
	version := os.Getenv("SINEW_E2E_VERSION")
	if version == "" {
		t.Fatal("SINEW_E2E_VERSION is not set: run `make e2e`")
	}
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return env{sinew: filepath.Join(bin, "sinew"), version: version, repo: repo}
}

// result of one command.
type result struct {
	cmd      string
	stdout   string
	stderr   string
	exitCode int
	err      error // set when the command could not run, timed out, or exited non-zero
}

func (r result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "$ %s\n", r.cmd)
	if r.stdout != "" {
		fmt.Fprintf(&b, "%s\n", clip(r.stdout, 6000))
	}
	if r.stderr != "" {
		fmt.Fprintf(&b, "[stderr]\n%s\n", clip(r.stderr, 6000))
	}
	if r.err != nil {
		fmt.Fprintf(&b, "[%v]", r.err)
	} else {
		b.WriteString("[exit 0]")
	}
	return b.String()
}

func clip(s string, n int) string {
	s = strings.TrimRight(s, "\n")
	if len(s) <= n {
		return s
	}
	return s[:n/2] + fmt.Sprintf("\n... (%d bytes cut) ...\n", len(s)-n) + s[len(s)-n/2:]
}

// run executes a command with stdin and a deadline, never through a shell.
func run(timeout time.Duration, stdin string, args ...string) result {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.WaitDelay = 5 * time.Second
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	r := result{cmd: strings.Join(args, " "), stdout: out.String(), stderr: errOut.String()}
	if stdin != "" {
		r.cmd += fmt.Sprintf(" <<(%d bytes)", len(stdin))
	}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		r.err, r.exitCode = fmt.Errorf("timed out after %s", timeout), -1
	case errors.As(err, &ee):
		r.err, r.exitCode = fmt.Errorf("exit status %d", ee.ExitCode()), ee.ExitCode()
	case err != nil:
		r.err, r.exitCode = err, -1
	}
	return r
}

// must runs a command and fails the test, showing the command and its output, unless it succeeds.
func must(t *testing.T, timeout time.Duration, stdin string, args ...string) string {
	t.Helper()
	r := run(timeout, stdin, args...)
	if r.err != nil {
		t.Fatalf("command failed:\n%s", r)
	}
	t.Logf("%s", r)
	return r.stdout
}

// pipe is `a | b`: it fails the test naming whichever side failed.
func pipe(t *testing.T, timeout time.Duration, a, b []string) string {
	t.Helper()
	ra := run(timeout, "", a...)
	if ra.err != nil {
		t.Fatalf("left side of the pipe failed:\n%s", ra)
	}
	if strings.TrimSpace(ra.stdout) == "" {
		t.Fatalf("left side of the pipe printed nothing:\n%s", ra)
	}
	t.Logf("$ %s  (%d bytes of output)", ra.cmd, len(ra.stdout))
	return must(t, timeout, ra.stdout, b...)
}

func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	return must(t, 2*time.Minute, "", append([]string{"kubectl"}, args...)...)
}

// kubectlQuiet runs kubectl without logging, for polling.
func kubectlQuiet(args ...string) (string, error) {
	r := run(time.Minute, "", append([]string{"kubectl"}, args...)...)
	if r.err != nil {
		return r.stdout, fmt.Errorf("%s: %v: %s", r.cmd, r.err, strings.TrimSpace(r.stderr))
	}
	return r.stdout, nil
}

// eventually polls fn every half second until it returns nil, failing the test with fn's last error at the deadline.
func eventually(t *testing.T, timeout time.Duration, what string, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for {
		if err = fn(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s still not %s: %v", timeout, what, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// httpGet makes one request on a fresh connection (right after a rollout, kube-proxy may not have programmed a
// Service yet, and a reused connection would keep a stale path).
func httpGet(url string) (int, string, error) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b), err
}

// sample is one Prometheus text-format sample.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

var sampleRE = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)`)
var labelRE = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

func parseMetrics(text string) []sample {
	var out []sample
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<22)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		m := sampleRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			continue
		}
		s := sample{name: m[1], labels: map[string]string{}, value: v}
		for _, l := range labelRE.FindAllStringSubmatch(m[2], -1) {
			s.labels[l[1]] = l[2]
		}
		out = append(out, s)
	}
	return out
}

// sum adds the samples named name whose labels match every regexp in want (anchored).
func sum(samples []sample, name string, want map[string]string) float64 {
	var total float64
next:
	for _, s := range samples {
		if s.name != name {
			continue
		}
		for k, re := range want {
			if !regexp.MustCompile("^(?:" + re + ")$").MatchString(s.labels[k]) {
				continue next
			}
		}
		total += s.value
	}
	return total
}

// grepSamples renders the samples named name, for failure messages.
func grepSamples(samples []sample, name string) string {
	var b strings.Builder
	n := 0
	for _, s := range samples {
		if s.name == name && n < 40 {
			fmt.Fprintf(&b, "  %s %v %g\n", s.name, s.labels, s.value)
			n++
		}
	}
	if n == 0 {
		return "  (no " + name + " samples)\n"
	}
	return b.String()
}

// dumpState writes what helps explain a failure into the test log: pods, recent events, and for every pod that
// is not ready its description and the logs of all its containers (current and previous).
func dumpState(t *testing.T, namespaces ...string) {
	t.Helper()
	var b strings.Builder
	section := func(title, out string, err error) {
		fmt.Fprintf(&b, "\n----- %s\n%s", title, clip(out, 8000))
		if err != nil {
			fmt.Fprintf(&b, "\n(%v)", err)
		}
	}
	out, err := kubectlQuiet("get", "pods", "-A", "-o", "wide")
	section("kubectl get pods -A -o wide", out, err)
	for _, ns := range namespaces {
		out, err = kubectlQuiet("get", "events", "-n", ns, "--sort-by=.lastTimestamp")
		section("events in "+ns, tail(out, 40), err)
		out, err = kubectlQuiet("get", "pods", "-n", ns, "-o",
			`jsonpath={range .items[*]}{.metadata.name}{" "}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}`)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			f := strings.Fields(line)
			if len(f) == 0 || (len(f) == 2 && f[1] == "True") {
				continue
			}
			pod := f[0]
			d, err := kubectlQuiet("describe", "pod", "-n", ns, pod)
			section("describe pod "+ns+"/"+pod, tail(d, 60), err)
			l, err := kubectlQuiet("logs", "-n", ns, pod, "--all-containers", "--prefix", "--tail=60")
			section("logs "+ns+"/"+pod, l, err)
			if l, err := kubectlQuiet("logs", "-n", ns, pod, "--all-containers", "--prefix", "--tail=30", "--previous"); err == nil && l != "" {
				section("previous logs "+ns+"/"+pod, l, nil)
			}
		}
	}
	t.Logf("cluster state at failure:%s", b.String())
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... (%d lines cut)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// journey runs named steps in order. A step runs only when every step it needs passed; otherwise it is reported
// as skipped, naming the step that blocked it. A failed step dumps the cluster state. The summary at the end says
// which steps passed.
type journey struct {
	t       *testing.T
	state   map[string]string // step -> PASS, FAIL, SKIP
	order   []string
	timings map[string]time.Duration
	dumpNS  []string
}

func newJourney(t *testing.T, dumpNS ...string) *journey {
	j := &journey{t: t, state: map[string]string{}, timings: map[string]time.Duration{}, dumpNS: dumpNS}
	t.Cleanup(j.summary)
	return j
}

func (j *journey) step(name string, needs []string, fn func(t *testing.T)) {
	j.order = append(j.order, name)
	for _, n := range needs {
		if j.state[n] != "PASS" {
			j.state[name] = "SKIP (needs " + n + ")"
			j.t.Run(name, func(t *testing.T) { t.Skipf("skipped: needs step %q, which did not pass", n) })
			return
		}
	}
	start := time.Now()
	ok := j.t.Run(name, func(t *testing.T) {
		defer func() {
			if t.Failed() {
				dumpState(t, j.dumpNS...)
			}
		}()
		fn(t)
	})
	j.timings[name] = time.Since(start)
	if ok {
		j.state[name] = "PASS"
	} else {
		j.state[name] = "FAIL"
	}
}

func (j *journey) summary() {
	var b strings.Builder
	b.WriteString("journey summary:\n")
	for _, n := range j.order {
		fmt.Fprintf(&b, "  %-34s %-28s %6.1fs\n", n, j.state[n], j.timings[n].Seconds())
	}
	j.t.Log(b.String())
}

// meshedEmojivotoSteps adds the steps most scenarios start with: a clean cluster ("clean-slate"), sinew installed
// with its CRDs ("install"), and emojivoto in a namespace that meshes every pod ("emojivoto-meshed").
func meshedEmojivotoSteps(j *journey, e env) {
	j.step("clean-slate", nil, func(t *testing.T) {
		kubectl(t, "get", "--raw", "/readyz")
		removeLeftovers(t)
	})
	j.step("install", []string{"clean-slate"}, func(t *testing.T) {
		pipe(t, 2*time.Minute, []string{e.sinew, "install", "--crds"}, []string{"kubectl", "apply", "-f", "-"})
		kubectl(t, "wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
		pipe(t, 2*time.Minute, []string{e.sinew, "install"}, []string{"kubectl", "apply", "-f", "-"})
		for _, d := range cpDeploys {
			kubectl(t, "-n", cpNS, "rollout", "status", "deploy/"+d, "--timeout=4m")
		}
	})
	j.step("emojivoto-meshed", []string{"install"}, func(t *testing.T) {
		// the namespace opts in before the pods exist, so the webhook meshes every pod as it is created
		kubectl(t, "create", "namespace", appNS)
		kubectl(t, "annotate", "namespace", appNS, "sinew.dev/inject=enabled")
		applyEmojivoto(t, e.repo+"/examples/emojivoto/kubernetes/emojivoto.yml", e.version)
		waitEmojivoto(t)
		requireAllMeshed(t)
	})
}

// keepCalling calls call every interval, on a goroutine of its own, until the returned stop is called; stop waits
// for the last call to end. It keeps traffic going while a step waits for metrics or tap to show it.
func keepCalling(interval time.Duration, call func()) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				call()
			}
		}
	})
	return func() { close(done); wg.Wait() }
}
