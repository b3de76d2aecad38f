package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// buildBinaries builds the named commands into a temporary directory, as `make build` would.
func buildBinaries(t *testing.T, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	args := []string{"build", "-o", dir + "/"}
	for _, n := range names {
		args = append(args, "github.com/sinewmesh/sinew/cmd/"+n)
	}
	out, err := exec.Command("go", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return dir
}

// freePortBase finds a base with its whole span of loopback ports free, below the kernel's ephemeral port range:
// the demo binds its ports some time after this check, and a port in that range may meanwhile become the local
// end of another test's outgoing connection.
func freePortBase(t *testing.T, span int) int {
	t.Helper()
	low := 32768 // Linux's default start of ip_local_port_range
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 10000+2*span {
				low = n
			}
		}
	}
	for range 50 {
		base := 10000 + rand.IntN(low-10000-span)
		ok := true
		for off := range span {
			ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+off))
			if err != nil {
				ok = false
				break
			}
			ln.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free port range")
	return 0
}

// lineReader collects a child's output while the test reads it.
type lineReader struct {
	ch  chan string
	all bytes.Buffer
	// stderr, when set, is the child's standard error so far, for failure messages.
	stderr func() string
}

func lines(r io.Reader) *lineReader {
	b := &lineReader{ch: make(chan string, 1000)}
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			b.ch <- sc.Text()
		}
		close(b.ch)
	}()
	return b
}

// waitLine reads lines until one matches, returning the submatches; everything read is kept for failure messages.
func (b *lineReader) waitLine(t *testing.T, re *regexp.Regexp, timeout time.Duration) []string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-b.ch:
			if !ok {
				t.Fatalf("output ended before a line matching %q:\n%s%s", re, b.all.String(), b.errors())
			}
			b.all.WriteString(l + "\n")
			if m := re.FindStringSubmatch(l); m != nil {
				return m
			}
		case <-deadline:
			t.Fatalf("no line matching %q within %s:\n%s%s", re, timeout, b.all.String(), b.errors())
		}
	}
}

// errors is the child's standard error for a failure message, if the reader knows it.
func (b *lineReader) errors() string {
	if b.stderr == nil {
		return ""
	}
	return "\nstandard error:\n" + b.stderr()
}

// demoProc is a running `sinew demo`.
type demoProc struct {
	cmd    *exec.Cmd
	out    *lineReader
	stderr lockedBuffer  // read while the demo writes it
	done   chan struct{} // closed once the process has exited; err is then what Wait returned
	err    error
}

// lockedBuffer is a bytes.Buffer a child writes while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startDemo runs `sinew demo` with args from the binaries in bin. At the end of the test, a demo still running is
// stopped with Ctrl-C, and killed if it has not exited 30s later.
func startDemo(t *testing.T, bin string, args ...string) *demoProc {
	t.Helper()
	return startDemoEnv(t, bin, nil, args...)
}

// startDemoEnv is startDemo with env added to the demo's environment.
func startDemoEnv(t *testing.T, bin string, env []string, args ...string) *demoProc {
	t.Helper()
	d := &demoProc{cmd: exec.Command(filepath.Join(bin, "sinew"), append([]string{"demo"}, args...)...), done: make(chan struct{})}
	if env != nil {
		d.cmd.Env = append(os.Environ(), env...)
	}
	stdout, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	d.cmd.Stderr = &d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d.out = lines(stdout)
	d.out.stderr = d.stderr.String
	go func() { d.err = d.cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		select {
		case <-d.done:
			return
		default:
		}
		_ = d.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-d.done:
		case <-time.After(30 * time.Second):
			_ = d.cmd.Process.Kill()
			<-d.done
		}
	})
	return d
}

// appProcesses keeps the emojivoto processes of a list from processesMarked (the demo may also run Prometheus).
func appProcesses(procs []string) []string {
	var apps []string
	for _, p := range procs {
		if strings.Contains(p, "emojivoto ") {
			apps = append(apps, p)
		}
	}
	return apps
}

// processesMarked lists live processes whose environment has SINEW_RUN_DIR=dir.
func processesMarked(dir string) []string {
	var found []string
	marker := []byte("SINEW_RUN_DIR=" + dir + "\x00")
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil || !bytes.Contains(env, marker) {
			continue
		}
		cmd, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		found = append(found, e.Name()+" "+strings.ReplaceAll(string(cmd), "\x00", " "))
	}
	return found
}

// TestSinewDemo runs `sinew demo` as a user would: the real binaries, child processes, then Ctrl-C.
func TestSinewDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the sinew and emojivoto binaries")
	}
	bin := buildBinaries(t, "sinew", "emojivoto")
	base := freePortBase(t, 50)
	demo := startDemo(t, bin, "--no-traffic", "--port-base", fmt.Sprint(base))
	out := demo.out
	dataDir := out.waitLine(t, regexp.MustCompile(`logs in (\S+)/logs\)`), 90*time.Second)[1]
	url := out.waitLine(t, regexp.MustCompile(`Open the app .*(http://\S+/)$`), 5*time.Second)[1]
	out.waitLine(t, regexp.MustCompile(`Ctrl-C stops everything`), 5*time.Second)
	if url != fmt.Sprintf("http://127.0.0.1:%d/", base+31) {
		t.Fatalf("app URL %s", url)
	}

	// A second demo on the same ports fails at once and names the port.
	second, err := exec.Command(filepath.Join(bin, "sinew"), "demo", "--no-traffic", "--port-base", fmt.Sprint(base)).CombinedOutput()
	wantMsg := fmt.Sprintf("cannot listen on 127.0.0.1:%d (control plane identity): address already in use", base)
	if err == nil || !strings.Contains(string(second), wantMsg) {
		t.Fatalf("second demo: err=%v, want a message with %q:\n%s", err, wantMsg, second)
	}

	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	leader := func() map[string]int {
		code, body := get("api/leaderboard")
		if code != 200 {
			t.Fatalf("leaderboard: %d %s", code, body)
		}
		var rows []struct {
			Shortcode string `json:"shortcode"`
			Votes     int    `json:"votes"`
		}
		if err := json.Unmarshal([]byte(body), &rows); err != nil {
			t.Fatalf("leaderboard %q: %v", body, err)
		}
		m := map[string]int{}
		for _, r := range rows {
			m[r.Shortcode] = r.Votes
		}
		return m
	}
	before := leader()[":joy:"]
	for range 3 {
		if code, body := get("api/vote?choice=:joy:"); code != 200 {
			t.Fatalf("vote for :joy:: %d %s", code, body)
		}
	}
	if code, _ := get("api/vote?choice=:doughnut:"); code != 500 {
		t.Fatalf("vote for the doughnut: status %d, want 500", code)
	}
	if after := leader()[":joy:"]; after != before+3 {
		t.Fatalf(":joy: votes went from %d to %d, want +3", before, after)
	}

	metrics := func(adminPort int) string {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", adminPort))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	web, voting := metrics(base+32), metrics(base+22)
	const webID, votingID = `"spiffe://cluster.local/ns/emojivoto/sa/web"`, `"spiffe://cluster.local/ns/emojivoto/sa/voting"`
	if n := metricValue(web, "response_total", `direction="outbound"`, `tls="true"`, `server_id=`+votingID, `grpc_status_code="0"`); n < 3 {
		t.Errorf("web's proxy counted %v successful mTLS calls to voting, want ≥3", n)
	}
	if n := metricValue(web, "response_total", `direction="outbound"`, `tls="true"`, `server_id=`+votingID, `grpc_status_code="2"`); n != 1 {
		t.Errorf("web's proxy counted %v failed doughnut votes, want 1", n)
	}
	if n := metricValue(voting, "request_total", `direction="inbound"`, `tls="true"`, `client_id=`+webID); n < 4 {
		t.Errorf("voting's proxy counted %v mTLS requests from web, want ≥4", n)
	}
	if t.Failed() {
		t.Logf("web proxy metrics:\n%s", web)
	}

	// Ctrl-C: everything stops and no child survives.
	if marked := appProcesses(processesMarked(dataDir)); len(marked) != 3 {
		t.Fatalf("want 3 running app processes (emoji, voting, web), found %v", marked)
	}
	if err := demo.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-demo.done:
		if demo.err != nil {
			t.Fatalf("sinew demo exited with %v after Ctrl-C:\n%s", demo.err, demo.stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("sinew demo did not stop within 30s of Ctrl-C")
	}
	if left := processesMarked(dataDir); len(left) > 0 {
		t.Fatalf("processes survived the demo: %v", left)
	}
	if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
		t.Errorf("temporary data directory %s was not removed (%v)", dataDir, err)
	}
}

// TestSinewDemoKilledLeavesNothing: even when sinew is killed outright (no chance to clean up), the kernel takes
// its children with it. Only sinew is built, as `go install …/cmd/sinew` leaves it: the app runs as
// `sinew __emojivoto`.
func TestSinewDemoKilledLeavesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the sinew binary")
	}
	bin := buildBinaries(t, "sinew")
	base := freePortBase(t, 50)
	demo := startDemo(t, bin, "--port-base", fmt.Sprint(base))
	out := demo.out
	dataDir := out.waitLine(t, regexp.MustCompile(`logs in (\S+)/logs\)`), 90*time.Second)[1]
	out.waitLine(t, regexp.MustCompile(`Ctrl-C stops everything`), 5*time.Second)
	marked := appProcesses(processesMarked(dataDir))
	if len(marked) != 4 {
		t.Fatalf("want 4 app processes (emoji, voting, web, vote-bot), found %v", marked)
	}
	for _, p := range marked {
		if !strings.Contains(p, filepath.Join(bin, "sinew")+" __emojivoto ") {
			t.Errorf("without an emojivoto program the app should run as sinew __emojivoto: %s", p)
		}
	}
	_ = demo.cmd.Process.Kill()
	<-demo.done
	eventually(t, 10*time.Second, "children gone", func() error {
		if left := processesMarked(dataDir); len(left) > 0 {
			return fmt.Errorf("still running: %v", left)
		}
		return nil
	})
	_ = os.RemoveAll(dataDir) // sinew had no chance to remove it
}
