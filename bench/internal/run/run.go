// Package run is sinew-bench's composition root: flags, CPU pinning, the shared app, TLS material, the
// scenario runner and the output files. It keeps main thin.
package run

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/sinewmesh/sinew/bench/internal/peers"
	"github.com/sinewmesh/sinew/bench/internal/procstat"
	"github.com/sinewmesh/sinew/bench/internal/report"
	"github.com/sinewmesh/sinew/bench/internal/scenario"
)

const pinnedEnv = "SINEW_BENCH_PINNED"

// Main runs the benchmark with command-line args (without the program name).
func Main(ctx context.Context, args []string, log io.Writer) error {
	fs := flag.NewFlagSet("sinew-bench", flag.ContinueOnError)
	quick := fs.Bool("quick", false, "fast subset (S1–S8, S10 and S12, about 15 min on 2 cores): fewer cells, 2 rounds, short steps")
	out := fs.String("out", "bench/RESULTS.md", "Markdown output; JSON goes to <out>.json")
	peerList := fs.String("peers", "direct,go-revproxy,nginx,haproxy,sinew,sinew-authz,sinew-routes", "peers to run (comma-separated; sinew-authz is sinew with ten authorizations and a JWT check on the server's port, sinew-routes sinew with a ten-rule HTTPRoute splitting 90/10; both meshed HTTP only)")
	scList := fs.String("scenarios", "", "scenarios to run, comma-separated (default: the plan's: S1–S8, S10 and S12 quick, S1–S10 and S12 full)")
	rounds := fs.Int("rounds", 0, "rounds for S1/S2/S5–S8 (default: 2 quick, 3 full)")
	measure := fs.Duration("measure", 0, "measured duration per S1/S2/S5/S7/S8/S12 cell (default: S1/S2/S12 2.5s quick, 10s full; S5/S7/S8 1.5s quick, 5s full)")
	soak := fs.Duration("soak", 0, "S9 soak duration per peer (default: 1m quick, 10m full); S9 samples every min(window, soak)")
	noPin := fs.Bool("no-pin", false, "do not pin with taskset")
	keep := fs.Bool("keep", false, "keep the scratch directory (configs and logs)")
	sinewBin := fs.String("sinew-bin", "", "use sinew-proxy and sinew-controller from this directory instead of building them")
	if err := fs.Parse(args); err != nil {
		return err
	}
	// After the re-exec the process sees one CPU, so the decision is carried in the environment.
	pin := os.Getenv(pinnedEnv) != ""
	if !pin && !*noPin && runtime.NumCPU() >= 2 {
		if _, err := exec.LookPath("taskset"); err == nil {
			return reexecPinned()
		}
	}
	nofile := raiseNoFile(log)

	plan := scenario.FullPlan()
	mode := "full"
	if *quick {
		plan, mode = scenario.QuickPlan(), "quick"
	}
	if *scList != "" {
		plan.Scenarios = set(*scList)
		known := scenario.FullPlan().Scenarios
		for id := range plan.Scenarios {
			if !known[id] {
				return fmt.Errorf("-scenarios: %s is not a scenario of this harness (S1–S10, S12; PERFORMANCE.md's S11 is not implemented yet)", id)
			}
		}
	}
	if *rounds > 0 {
		plan.Rounds = *rounds
	}
	if *measure > 0 {
		plan.Measure, plan.ExtraMeasure = *measure, *measure
	}
	if *soak > 0 {
		plan.SoakDuration = *soak
		plan.SoakWindow = min(plan.SoakWindow, *soak)
	}
	var capNote string
	if c := plan.CapMemSteps(nofile); c > 0 {
		capNote = fmt.Sprintf("S4 stops at %d connections, not 10,000: the open-file hard limit here is %d and cannot be raised (no CAP_SYS_RESOURCE); HAProxy reserves two descriptors per connection.", c, nofile)
	}
	wanted := set(*peerList)
	ps := peers.ByName(wanted)
	if len(ps) == 0 {
		return fmt.Errorf("no known peer in %q", *peerList)
	}

	start := time.Now()
	root, err := repoRoot()
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "sinew-bench-")
	if err != nil {
		return err
	}
	if *keep {
		fmt.Fprintf(log, "scratch directory kept: %s\n", dir)
	} else {
		defer func() { _ = os.RemoveAll(dir) }() // best effort: a scratch directory under the system temp dir
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	tlsFiles, err := peers.GenerateTLS(dir)
	if err != nil {
		return fmt.Errorf("generate TLS material: %w", err)
	}
	env := &peers.Env{Dir: dir, Self: self, TLS: tlsFiles, Pin: pin, RepoRoot: root}
	wantSinew := wanted["sinew"] || wanted["sinew-authz"] || wanted["sinew-routes"]
	switch {
	case wantSinew && *sinewBin != "":
		env.SinewBin, err = filepath.Abs(*sinewBin)
		if err != nil {
			return err
		}
	case wantSinew:
		fmt.Fprintln(log, "building sinew-proxy and sinew-controller into bench/out/ …")
		bin, err := peers.BuildSinew(ctx, root, filepath.Join(root, "bench", "out"))
		if err != nil {
			peers.SinewSkip = err.Error()
			fmt.Fprintf(log, "sinew peer skipped: %v\n", err)
		} else {
			env.SinewBin = bin
		}
	}

	// The app lives for the whole run on the harness core.
	core := -1
	if pin {
		core = peers.HarnessCore
	}
	app, addrs, err := startApp(ctx, dir, core, self, plan.BodySize, tlsFiles, log)
	if err != nil {
		return err
	}
	defer app.Stop()
	appAddr := addrs.http
	env.EchoAddr, env.AppTLS = addrs.echo, addrs.tls
	env.AppAddr = appAddr

	m := procstat.ReadMachine()
	rep := &report.Report{
		Mode: mode, Date: start.UTC().Format(time.RFC3339),
		Command:   "go run ./bench/cmd/sinew-bench " + strings.Join(args, " "),
		Machine:   report.Machine{CPUModel: m.CPUModel, Cores: m.Cores, Kernel: m.Kernel, MemTotal: m.MemTotal},
		GoVersion: runtime.Version(), Commit: gitDescribe(root), Versions: versions(env, ps),
		Rounds: plan.Rounds,
		Method: method(plan, pin),
	}
	r := &scenario.Runner{Env: env, Peers: ps, Plan: plan, Log: log, Rep: rep}
	r.Run(ctx)
	if ctx.Err() != nil {
		return errors.New("interrupted; no report written")
	}
	rep.Duration = time.Since(start).Round(time.Second).String()
	rep.Notes = notes(rep)
	if capNote != "" && plan.Scenarios["S4"] {
		rep.Notes = append(rep.Notes, capNote)
	}
	if err := writeOutputs(*out, rep); err != nil {
		return err
	}
	fmt.Fprintf(log, "wrote %s and %s.json in %s\n", *out, *out, rep.Duration)
	return nil
}

type appAddrs struct{ http, echo, tls string }

// startApp runs the backend app with its TCP echo and TLS listeners on free ports, again on fresh ports if
// another process took one first.
func startApp(ctx context.Context, dir string, core int, self string, size int, t peers.TLSFiles, log io.Writer) (*peers.Proc, appAddrs, error) {
	type started struct {
		p *peers.Proc
		a appAddrs
	}
	s, err := peers.RetryAddrInUse(ctx, func() (started, error) {
		var a appAddrs
		for _, p := range []*string{&a.http, &a.echo, &a.tls} {
			var err error
			if *p, err = peers.FreeAddr(); err != nil {
				return started{}, err
			}
		}
		p, err := peers.Launch(dir, "app", core, nil, self, "app", "-addr", a.http, "-echo", a.echo, "-size", fmt.Sprint(size),
			"-tls-addr", a.tls, "-ca", t.CA, "-cert", t.ServerCert, "-key", t.ServerKey)
		if err != nil {
			return started{}, err
		}
		if err := peers.WaitHTTP(ctx, a.http, "", "/", 10*time.Second, p); err != nil {
			p.Stop()
			return started{}, fmt.Errorf("app: %w", err)
		}
		if err := peers.WaitEcho(ctx, a.echo, 10*time.Second, p); err != nil {
			p.Stop()
			return started{}, fmt.Errorf("app echo: %w", err)
		}
		return started{p, a}, nil
	}, func(attempt int, err error) {
		fmt.Fprintf(log, "app start attempt %d lost a port; retrying on fresh ones\n", attempt)
	})
	return s.p, s.a, err
}

// reexecPinned replaces this process with itself under `taskset -c 1`, so the load generator (and the
// Go runtime's GOMAXPROCS) see one core.
func reexecPinned() error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	ts, err := exec.LookPath("taskset")
	if err != nil {
		return err
	}
	argv := append([]string{ts, "-c", fmt.Sprint(peers.HarnessCore), self}, os.Args[1:]...)
	return syscall.Exec(ts, argv, append(os.Environ(), pinnedEnv+"=1"))
}

// raiseNoFile lifts the soft open-file limit to the hard one (S4 holds 10,000 connections); children
// inherit it.
func raiseNoFile(log io.Writer) uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 1024
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			fmt.Fprintf(log, "warning: raise RLIMIT_NOFILE: %v\n", err)
		}
	}
	if lim.Cur < 25000 && os.Geteuid() == 0 {
		want := syscall.Rlimit{Cur: 65536, Max: 65536}
		if lim.Max > want.Max {
			want.Max = lim.Max
		}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err == nil {
			lim = want
		}
	}
	if lim.Cur < 21000 {
		fmt.Fprintf(log, "note: open-file limit is %d; S4 is capped below 10,000 connections\n", lim.Cur)
	}
	return lim.Cur
}

func set(list string) map[string]bool {
	m := map[string]bool{}
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s != "" {
			m[s] = true
		}
	}
	return m
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && bytes.Contains(b, []byte("module github.com/sinewmesh/sinew")) {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("run from inside the sinew module (no go.mod above %s)", dir)
		}
	}
}

func gitDescribe(root string) string {
	out, err := exec.Command("git", "-C", root, "describe", "--always", "--dirty").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

func versions(env *peers.Env, ps []peers.Peer) map[string]string {
	v := map[string]string{}
	for _, p := range ps {
		switch p.Name() {
		case "nginx":
			out, _ := exec.Command(peers.NginxBinary, "-v").CombinedOutput()
			v["nginx"] = strings.TrimSpace(strings.TrimPrefix(string(out), "nginx version: "))
		case "haproxy":
			out, _ := exec.Command(peers.HAProxyBinary, "-v").Output()
			line, _, _ := strings.Cut(string(out), "\n")
			v["haproxy"] = strings.TrimSpace(line)
		case "go-revproxy":
			v["go-revproxy"] = "net/http/httputil.ReverseProxy, " + runtime.Version()
		case "sinew":
			if env.SinewBin != "" {
				v["sinew"] = "built from the working tree (" + gitDescribe(env.RepoRoot) + "), static, as the images build it"
			}
		}
	}
	return v
}

func method(p scenario.Plan, pin bool) []string {
	pinning := "not pinned (-no-pin or no taskset)"
	if pin {
		pinning = "proxies pinned to core 0 (`taskset -c 0`), load generator + app to core 1"
	}
	m := []string{
		pinning,
		fmt.Sprintf("open loop, latency from intended send time (HDR histogram, µs); %d KiB request and response bodies; HTTP/1.1 keep-alive", p.BodySize/1024),
		fmt.Sprintf("S1/S2: %d rounds interleaved across peers (peer order rotates), %s warm-up + %s measured per cell; medians of rounds; added = median over rounds of (peer − direct in the same round)", p.Rounds, p.Warmup, p.Measure),
		"TLS between proxy pairs: TLS 1.3, ECDSA P-256 certificates, client certificates required, TLS_AES_128_GCM_SHA256 for OpenSSL peers",
		"CPU-s/1k req/proxy = proxy CPU time (utime+stime of the process tree) during the measured window ÷ proxies ÷ thousands of requests; numerically equal to vCPU per 1,000 rps",
		"Peak RSS = VmHWM of the proxy process tree (largest proxy of a pair), since the instance started for that scenario",
	}
	if p.Scenarios["S5"] || p.Scenarios["S7"] || p.Scenarios["S8"] {
		m = append(m, fmt.Sprintf("S5/S7/S8: %s warm-up + %s measured per cell", p.Warmup, p.ExtraMeasure))
	}
	if p.Scenarios["S5"] || p.Scenarios["S7"] {
		m = append(m, "S5/S7: meshed hop, same interleaving and rounds as S2; S5 GETs a sized response (or POSTs 1 MiB for the upload); S7 sends `Connection: close` and dials a new connection per request, plaintext or TLS 1.3 with a client certificate and no resumption (the client-side proxy terminates it; sinew's outbound port is plaintext by design)")
	}
	if p.Scenarios["S6"] {
		m = append(m, fmt.Sprintf("S6: opaque TCP to an echo server (in the app's process), one plaintext proxy and a pair with mTLS between; per instance %s of bulk echo on one connection, then %s of 1-byte ping-pong; nginx in stream mode, HAProxy in TCP mode, sinew on an opaque port (5432); go-revproxy is HTTP only", p.TCPMeasure, p.TCPMeasure))
	}
	if p.Scenarios["S8"] {
		m = append(m, "S8: meshed hop speaking HTTP/2 end to end; same interleaving and rounds as S2; h2c GETs, gRPC unary and server-streaming calls paced open loop like HTTP/1.1 requests (latency from intended send time)")
	}
	if p.Scenarios["S10"] {
		m = append(m, fmt.Sprintf("S10: sinew only, meshed hop with a standby server proxy and a ten-rule HTTPRoute (as sinew-routes); %d connections at %.0f rps, %s warm-up + %s measured; every %s the standby moves in or out of the target Services' endpoints, every %s the route's split weights change (90/10, 10/90, 50/50); the resource files are rewritten atomically (temp file + rename) in the control plane's resource directory; passes with zero errors", p.S10.Conns, p.S10.Rate, p.Warmup, p.ChurnMeasure, p.EndpointEvery, p.RouteEvery))
	}
	if p.Scenarios["S12"] {
		m = append(m, fmt.Sprintf("S12: edge hop — HTTPS in (TLS 1.3, ECDSA P-256 server certificate from the harness's CA, no client certificate, keep-alive: handshakes before the measured window) → edge proxy → mTLS → server-side proxy → app; sinew's edge is its ingress gateway (sinew-proxy in gateway mode, a Gateway of GatewayClass sinew with an HTTPS listener and an HTTPRoute to the server's Service), nginx's and HAProxy's the client-side instance of their pair with a TLS front; direct is HTTPS to the app's TLS port; same rounds, warm-up and window as S2; CPU per request of the edge and the server-side proxy apart; then S3's knee search through the edge hop (%d connections, TLS), rps per proxy core counting both proxies (they share core 0) and per edge core", p.KneeConns))
	}
	if p.Scenarios["S9"] {
		m = append(m, fmt.Sprintf("S9: %s per proxy (one hop) at half its knee (S3's, else measured first), %d connections, sampled every %s", p.SoakDuration, p.KneeConns, p.SoakWindow))
	}
	return m
}

func notes(rep *report.Report) []string {
	var n []string
	for _, k := range rep.Knee {
		if k.Peer == "direct" && k.KneeRPS > 0 {
			n = append(n, fmt.Sprintf("S3: the harness (load generator + app on one core) reaches %.0f rps direct; a proxy knee near that figure is limited by the harness, not the proxy — compare rps per proxy core instead.", k.KneeRPS))
		}
	}
	return n
}

func writeOutputs(out string, rep *report.Report) error {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	var md bytes.Buffer
	if err := report.WriteMarkdown(&md, rep); err != nil {
		return err
	}
	if err := os.WriteFile(out, md.Bytes(), 0o644); err != nil {
		return err
	}
	var js bytes.Buffer
	if err := report.WriteJSON(&js, rep); err != nil {
		return err
	}
	return os.WriteFile(out+".json", js.Bytes(), 0o644)
}
