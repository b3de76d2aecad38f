package localmesh

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sinewmesh/sinew/controlplane"
	"github.com/sinewmesh/sinew/proxy"
	"github.com/sinewmesh/sinew/viz/metricsapi"
)

// RunMarkerEnv is set in every process the mesh starts, to the mesh's data directory, so that its processes can be
// told apart from everything else on the machine.
const RunMarkerEnv = "SINEW_RUN_DIR"

// Options tune a run.
type Options struct {
	// DataDir keeps the control plane's CA, the resources and the logs. Empty: a temporary directory that is
	// removed when the run ends.
	DataDir string
	// Progress receives one line per step as the mesh comes up (nil: discarded).
	Progress io.Writer
	// Ready is called once, when every proxy is ready and every process listens on its ports.
	Ready func(*Running)
	// StartTimeout bounds each step of the start (default 60s).
	StartTimeout time.Duration
	// Prometheus, when its Binary is set, is started once the proxies are ready, scraping every proxy with the
	// labels viz queries by (docs/observability/viz.md), listening on Listen.
	Prometheus PrometheusOptions
	// Viz, when its Listen is set, serves the viz API and dashboard once the proxies (and Prometheus) are up.
	Viz VizOptions
	// ResourceFiles are the user's own control-plane resources (ResourceFiles expands -f into them): copied into
	// the resource directory, checked by the control plane before any proxy starts, and copied again whenever
	// their content changes (polled every ResourcePoll, default 1s), with the control plane's verdict on Progress.
	ResourceFiles []string
	ResourcePoll  time.Duration
	// StateDir, when set, is where the running mesh says where its proxies are, for the commands that reach them
	// by workload name (StateDir).
	StateDir string
}

// PrometheusOptions says which Prometheus to run beside the mesh.
type PrometheusOptions struct {
	Binary, Listen string
	ScrapeInterval time.Duration // default 2s
}

// Running describes a mesh that is up.
type Running struct {
	DataDir      string
	ControlPlane ControlPlane
	// PrometheusURL is set when a Prometheus runs beside the mesh.
	PrometheusURL string
	// VizURL is the viz API and dashboard, when served.
	VizURL    string
	Workloads []RunningWorkload
	// Gateways are the gateway proxies of the -f files' Gateways (GatewayClass sinew).
	Gateways []Gateway
}

// RunningWorkload is a started workload.
type RunningWorkload struct {
	Name       string
	PID        int
	ProxyAdmin string
	Log        string // the process's stdout and stderr
	ProxyLog   string
}

// Run starts the mesh and keeps it running until ctx ends (nil error) or a part of it fails (an error saying which
// and why). Either way everything it started is stopped before it returns.
func Run(ctx context.Context, m *Mesh, opts Options) (err error) {
	if opts.Progress == nil {
		opts.Progress = io.Discard
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 60 * time.Second
	}
	if opts.ResourcePoll <= 0 {
		opts.ResourcePoll = time.Second
	}
	if err := m.Validate(); err != nil {
		return err
	}
	bindings := m.Bindings()
	if opts.Prometheus.Binary != "" {
		bindings = append(bindings, Binding{opts.Prometheus.Listen, "prometheus"})
	}
	if opts.Viz.Listen != "" {
		bindings = append(bindings, Binding{opts.Viz.Listen, "viz dashboard and API"})
	}
	gws, hasClass, err := FindGateways(opts.ResourceFiles, m.Spec.Namespace)
	if err != nil {
		return err
	}
	bindings = append(bindings, gatewayBindings(gws)...)
	if err := checkFree(bindings); err != nil {
		return err
	}
	dataDir := opts.DataDir
	if dataDir == "" {
		if dataDir, err = os.MkdirTemp("", "sinew-run-"); err != nil {
			return err
		}
		defer func() { _ = os.RemoveAll(dataDir) }() // a temporary directory: nothing to do if it stays
	}
	logDir := filepath.Join(dataDir, "logs")
	resDir := filepath.Join(dataDir, "resources")
	for _, d := range []string{logDir, resDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(resDir, "mesh.yaml"), m.Resources(), 0o600); err != nil {
		return err
	}
	if len(gws) > 0 {
		if err := os.WriteFile(filepath.Join(resDir, "gateways.yaml"), gatewayResources(gws, hasClass), 0o600); err != nil {
			return err
		}
	}

	r := &runner{m: m, opts: opts, dataDir: dataDir, logDir: logDir, failed: make(chan error, 1), gateways: gws}
	if len(opts.ResourceFiles) > 0 {
		r.res = newResourceWatcher(resDir, opts.ResourceFiles, opts.Progress, r.fetchModel)
		if err := r.res.copyAll(); err != nil {
			return err
		}
	}
	defer r.stop()
	if err := r.start(ctx, resDir); err != nil {
		return err
	}
	if r.res != nil {
		wctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); r.res.run(wctx, opts.ResourcePoll) }()
		r.resStop = func() { cancel(); <-done }
	}
	select {
	case <-ctx.Done():
		fmt.Fprintln(opts.Progress, "stopping...")
		return nil
	case err := <-r.failed:
		fmt.Fprintln(opts.Progress, "stopping the rest...")
		return err
	}
}

// checkFree makes sure every address can be bound before anything starts, so a taken port is reported by name.
func checkFree(bindings []Binding) error {
	for _, b := range bindings {
		ln, err := net.Listen("tcp", b.Addr)
		if err != nil {
			why := err
			if errors.Is(err, syscall.EADDRINUSE) {
				why = errors.New("address already in use")
			}
			return fmt.Errorf("cannot listen on %s (%s): %v", b.Addr, b.Role, why)
		}
		_ = ln.Close()
	}
	return nil
}

type runner struct {
	m       *Mesh
	opts    Options
	dataDir string
	logDir  string

	// failOnce lets the first failure through to failed; stop uses it up, so that what stopping ends is no failure.
	failOnce sync.Once
	failed   chan error

	cpCancel context.CancelFunc
	cpDone   chan struct{} // closed when the control plane has stopped (its goroutine reports why)
	cpLog    *os.File

	// proxies are the workloads' proxies, in the file's order, then the gateways'.
	proxies  []*runningProxy
	gateways []Gateway
	procs    []*process
	prom     *process

	vizAddr string
	vizLog  *os.File
	// vizStop stops viz, when it runs, and waits for it.
	vizStop func()

	cpAdmin string
	// res copies the -f files into the resource directory; resStop stops it and waits.
	res     *resourceWatcher
	resStop func()
	// unannounce removes the mesh's file from the state directory.
	unannounce func()
}

func (r *runner) fetchModel(ctx context.Context) (modelView, error) {
	return fetchModel(ctx, r.cpAdmin)
}

type runningProxy struct {
	name   string
	p      *proxy.Proxy
	cancel context.CancelFunc
	done   chan struct{} // closed when the proxy has stopped (its goroutine reports why)
	log    *os.File
}

type process struct {
	name, logPath string
	cmd           *exec.Cmd
	done          chan struct{}
	err           error
}

func (r *runner) fail(err error) { r.failOnce.Do(func() { r.failed <- err }) }

// allProcs is the workloads' processes and Prometheus, if it runs.
func (r *runner) allProcs() []*process {
	if r.prom == nil {
		return r.procs
	}
	return append(r.procs[:len(r.procs):len(r.procs)], r.prom)
}

func (r *runner) start(ctx context.Context, resDir string) error {
	m, out := r.m, r.opts.Progress
	ns := m.Spec.Namespace
	cpLogPath := filepath.Join(r.logDir, "control-plane.log")
	var err error
	if r.cpLog, err = os.Create(cpLogPath); err != nil {
		return err
	}
	cp, err := controlplane.New(controlplane.Config{
		DataDir: filepath.Join(r.dataDir, "control-plane"), ResourceDir: resDir, TrustDomain: m.Spec.TrustDomain,
		IdentityAddr: m.Spec.ControlPlane.Identity, DestinationAddr: m.Spec.ControlPlane.Destination,
		PolicyAddr: m.Spec.ControlPlane.Policy, AdminAddr: m.Spec.ControlPlane.Admin,
		Logger: slog.New(slog.NewTextHandler(r.cpLog, nil)),
	})
	if err != nil {
		return fmt.Errorf("control plane: %w", err)
	}
	cpCtx, cancel := context.WithCancel(context.Background())
	r.cpCancel, r.cpDone = cancel, make(chan struct{})
	go func() {
		err := cp.Run(cpCtx)
		close(r.cpDone)
		if err != nil {
			r.fail(fmt.Errorf("control plane stopped: %w (log: %s)", err, cpLogPath))
		}
	}()
	fmt.Fprintf(out, "✔ control plane: identity %s, destination %s, policy %s, admin http://%s\n",
		cp.IdentityAddr(), cp.DestinationAddr(), cp.PolicyAddr(), cp.AdminAddr())
	r.cpAdmin = cp.AdminAddr()
	if r.res != nil {
		// The control plane read the copies in New; its admin server answers once Run serves (the listener is
		// bound, so the request waits for it).
		if err := r.res.check(ctx); err != nil {
			return err
		}
		for _, f := range r.res.files {
			fmt.Fprintf(out, "✔ %s accepted by the control plane; watching it for changes\n", f.path)
		}
	}

	for _, w := range m.Spec.Workloads {
		rp, err := r.startProxy(cp, ns, w)
		if err != nil {
			return fmt.Errorf("%s proxy: %w", w.Name, err)
		}
		r.proxies = append(r.proxies, rp)
	}
	for _, g := range r.gateways {
		rp, err := r.startGateway(cp, g)
		if err != nil {
			return fmt.Errorf("gateway %s/%s: %w", g.Namespace, g.Name, err)
		}
		r.proxies = append(r.proxies, rp)
	}
	for _, rp := range r.proxies {
		if err := r.waitFor(ctx, rp.name+" proxy ready (log: "+rp.log.Name()+")", nil, func() bool { return rp.p.Ready() }); err != nil {
			return err
		}
		fmt.Fprintf(out, "✔ %s proxy ready: admin http://%s\n", rp.name, rp.p.AdminAddr())
	}
	for _, g := range r.gateways {
		for _, p := range g.Ports {
			fmt.Fprintf(out, "✔ gateway %s/%s listener port %d: %s\n", g.Namespace, g.Name, p, g.URL(p))
		}
	}

	if r.opts.Prometheus.Binary != "" {
		if err := r.startPrometheus(ctx); err != nil {
			return err
		}
		fmt.Fprintf(out, "✔ prometheus scraping every proxy: http://%s\n", r.opts.Prometheus.Listen)
	}
	if r.opts.Viz.Listen != "" {
		if err := r.startViz(cp); err != nil {
			return err
		}
		fmt.Fprintf(out, "✔ viz dashboard and API: http://%s\n", r.vizAddr)
	}

	for i, w := range m.Spec.Workloads {
		pr, err := r.startProcess(w)
		if err != nil {
			return err
		}
		r.procs = append(r.procs, pr)
		for _, p := range w.Ports {
			what := fmt.Sprintf("%s listening on %s (log: %s)", w.Name, p.App, pr.logPath)
			err := r.waitFor(ctx, what, pr, func() bool {
				c, err := net.DialTimeout("tcp", p.App, time.Second)
				if err == nil {
					c.Close()
				}
				return err == nil
			})
			if err != nil {
				return err
			}
		}
		line := fmt.Sprintf("✔ %s started (pid %d)", w.Name, pr.cmd.Process.Pid)
		if len(w.Ports) > 0 {
			line += ", meshed at " + r.proxies[i].p.InboundAddr()
		}
		fmt.Fprintln(out, line)
	}
	// From here on, a process or proxy that stops is a failure of the run.
	for _, pr := range r.allProcs() {
		go func() {
			<-pr.done
			r.fail(fmt.Errorf("%s exited: %s%s", pr.name, describeExit(pr.err), tail(pr.logPath)))
		}()
	}
	if r.opts.StateDir != "" {
		a := Announced{PID: os.Getpid(), Name: m.Metadata.Name, Namespace: ns, ControlPlaneAdmin: cp.AdminAddr()}
		for _, rp := range r.proxies {
			a.Workloads = append(a.Workloads, AnnouncedWorkload{Name: rp.name, ProxyAdmin: rp.p.AdminAddr()})
		}
		if r.unannounce, err = announce(r.opts.StateDir, a); err != nil {
			fmt.Fprintf(out, "‼ cannot leave the proxies' addresses in %s for sinew diagnostics: %v\n", r.opts.StateDir, err)
		}
	}
	if r.opts.Ready != nil {
		run := &Running{DataDir: r.dataDir, ControlPlane: ControlPlane{
			Identity: cp.IdentityAddr(), Destination: cp.DestinationAddr(), Policy: cp.PolicyAddr(), Admin: cp.AdminAddr()}}
		if r.prom != nil {
			run.PrometheusURL = "http://" + r.opts.Prometheus.Listen
		}
		if r.vizStop != nil {
			run.VizURL = "http://" + r.vizAddr
		}
		run.Gateways = r.gateways
		for i, pr := range r.procs {
			run.Workloads = append(run.Workloads, RunningWorkload{Name: pr.name, PID: pr.cmd.Process.Pid,
				ProxyAdmin: r.proxies[i].p.AdminAddr(), Log: pr.logPath, ProxyLog: r.proxies[i].log.Name()})
		}
		r.opts.Ready(run)
	}
	return nil
}

// waitFor polls cond until it holds, the step's deadline passes, ctx ends, the run fails or proc exits.
func (r *runner) waitFor(ctx context.Context, what string, proc *process, cond func() bool) error {
	deadline := time.NewTimer(r.opts.StartTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var exited <-chan struct{}
	if proc != nil {
		exited = proc.done
	}
	for !cond() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("interrupted while waiting for %s", what)
		case <-deadline.C:
			return fmt.Errorf("gave up after %s waiting for %s", r.opts.StartTimeout, what)
		case err := <-r.failed:
			return err
		case <-exited:
			return fmt.Errorf("%s exited before it was ready: %s%s", proc.name, describeExit(proc.err), tail(proc.logPath))
		case <-tick.C:
		}
	}
	return nil
}

func (r *runner) startProxy(cp *controlplane.ControlPlane, ns string, w Workload) (*runningProxy, error) {
	cfg := proxy.Defaults()
	cfg.Mode = proxy.ModeExplicit
	cfg.InboundAddr = w.Proxy.Inbound
	cfg.AdminAddr = w.Proxy.Admin
	for _, p := range w.Ports {
		cfg.InboundPorts = append(cfg.InboundPorts, proxy.InboundPort{Port: uint16(p.Port), App: p.App})
	}
	for _, u := range w.Upstreams {
		cfg.OutboundPorts = append(cfg.OutboundPorts, proxy.OutboundPort{Listen: u.Listen, Target: r.m.Authority(u.Service)})
	}
	return r.runProxy(cp, ns, w.Name, w.ServiceAccount, w.Proxy.LogLevel, cfg)
}

// runProxy starts the proxy of workload ns/name with the identity of service account sa, on cfg completed with
// the control plane's addresses, a join token and a log file of its own.
func (r *runner) runProxy(cp *controlplane.ControlPlane, ns, name, sa, logLevel string, cfg proxy.Config) (*runningProxy, error) {
	cfg.Workload = ns + "/" + name
	if cfg.Mode == proxy.ModeGateway {
		cfg.AdminAddr = "127.0.0.1:0"
	}
	cfg.TapAddr = "127.0.0.1:0"
	cfg.IdentityAddr, cfg.DestinationAddr, cfg.PolicyAddr = cp.IdentityAddr(), cp.DestinationAddr(), cp.PolicyAddr()
	cfg.LocalName = "spiffe://" + r.m.Spec.TrustDomain + "/ns/" + ns + "/sa/" + sa
	cfg.TrustAnchorsPEM = string(cp.TrustAnchorsPEM())
	tok, err := cp.IssueJoinToken(ns, name)
	if err != nil {
		return nil, err
	}
	cfg.Token = tok
	if err := cfg.LogLevel.UnmarshalText([]byte(logLevel)); err != nil {
		return nil, err
	}
	cfg.ShutdownGrace = 5 * time.Second
	logFile, err := os.Create(filepath.Join(r.logDir, name+".proxy.log"))
	if err != nil {
		return nil, err
	}
	level := new(slog.LevelVar)
	level.Set(cfg.LogLevel)
	p, err := proxy.New(cfg, slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: level})), level)
	if err != nil {
		logFile.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	rp := &runningProxy{name: name, p: p, cancel: cancel, done: make(chan struct{}), log: logFile}
	go func() {
		err := p.Run(ctx)
		close(rp.done)
		if err == nil {
			err = errors.New("stopped")
		}
		r.fail(fmt.Errorf("%s proxy: %w (log: %s)", name, err, logFile.Name()))
	}()
	return rp, nil
}

func (r *runner) startProcess(w Workload) (*process, error) {
	logPath := filepath.Join(r.logDir, w.Name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child holds its own descriptor
	cmd := exec.Command(w.Command[0], w.Command[1:]...)
	cmd.Dir = w.Dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), RunMarkerEnv+"="+r.dataDir)
	for k, v := range w.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	// Own process group: a terminal's Ctrl-C reaches only us, and we stop the children in order. Pdeathsig: if we
	// are killed outright, the kernel kills them too, so nothing is left behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: cannot start %q: %w", w.Name, strings.Join(w.Command, " "), err)
	}
	pr := &process{name: w.Name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		pr.err = cmd.Wait()
		close(pr.done)
	}()
	return pr, nil
}

// stop ends everything in reverse order of dependence: processes (SIGTERM, then SIGKILL after a grace period),
// then proxies (drain), then the control plane.
func (r *runner) stop() {
	r.failOnce.Do(func() {})
	if r.unannounce != nil {
		r.unannounce()
	}
	if r.resStop != nil {
		r.resStop()
	}
	const grace = 5 * time.Second
	procs := r.allProcs()
	for _, pr := range procs {
		_ = syscall.Kill(-pr.cmd.Process.Pid, syscall.SIGTERM)
	}
	for _, pr := range procs {
		select {
		case <-pr.done:
		case <-time.After(grace):
			_ = syscall.Kill(-pr.cmd.Process.Pid, syscall.SIGKILL)
			<-pr.done
		}
		// Anything the process left in its group goes too.
		_ = syscall.Kill(-pr.cmd.Process.Pid, syscall.SIGKILL)
	}
	if r.vizStop != nil {
		// It holds no state; stopping it ends the taps in flight, which the proxies then see end.
		r.vizStop()
	}
	if r.vizLog != nil {
		r.vizLog.Close()
	}
	for _, rp := range r.proxies {
		rp.cancel()
	}
	for _, rp := range r.proxies {
		<-rp.done
		rp.log.Close()
	}
	if r.cpCancel != nil {
		r.cpCancel()
		<-r.cpDone
	}
	if r.cpLog != nil {
		r.cpLog.Close()
	}
}

func describeExit(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// tail returns the last lines of a log, indented, for error messages.
func tail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > 8 {
			lines = lines[1:]
		}
	}
	if len(lines) == 0 {
		return " (its log " + path + " is empty)"
	}
	return "; last lines of " + path + ":\n    " + strings.Join(lines, "\n    ")
}

// scrapeTargets are the proxies' admin servers with the labels of the contract (docs/observability/viz.md).
func (r *runner) scrapeTargets() []metricsapi.ScrapeTarget {
	var targets []metricsapi.ScrapeTarget
	for _, mp := range r.meshed() {
		targets = append(targets, metricsapi.ScrapeTarget{Address: mp.p.AdminAddr(), Namespace: mp.namespace, Deployment: mp.deployment, Pod: mp.pod})
	}
	return targets
}

// meshedProxy is a proxy of the run, named as viz names it.
type meshedProxy struct {
	namespace, deployment, pod, account string
	p                                   *proxy.Proxy
}

// meshed lists every proxy of the run: the workloads', then the gateways'.
func (r *runner) meshed() []meshedProxy {
	var out []meshedProxy
	for i, w := range r.m.Spec.Workloads {
		out = append(out, meshedProxy{namespace: r.m.Spec.Namespace, deployment: metricsapi.LocalDeployment(w.Name, w.Labels), pod: w.Name,
			account: w.ServiceAccount, p: r.proxies[i].p})
	}
	for i, g := range r.gateways {
		n := g.ResourceName()
		out = append(out, meshedProxy{namespace: g.Namespace, deployment: n, pod: n, account: n, p: r.proxies[len(r.m.Spec.Workloads)+i].p})
	}
	return out
}

// startPrometheus writes a scrape configuration for every proxy and runs Prometheus until the mesh stops.
func (r *runner) startPrometheus(ctx context.Context) error {
	po := r.opts.Prometheus
	interval := po.ScrapeInterval
	if interval == 0 {
		interval = 2 * time.Second
	}
	cfg, err := metricsapi.PrometheusConfig(r.scrapeTargets(), interval)
	if err != nil {
		return fmt.Errorf("prometheus: %w", err)
	}
	dir := filepath.Join(r.dataDir, "prometheus")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		return err
	}
	pr, err := r.startProcess(Workload{Name: "prometheus", Command: []string{po.Binary,
		"--config.file=" + cfgPath, "--storage.tsdb.path=" + filepath.Join(dir, "data"),
		"--storage.tsdb.retention.time=6h", "--web.listen-address=" + po.Listen}})
	if err != nil {
		return err
	}
	r.prom = pr
	return r.waitFor(ctx, "prometheus ready at http://"+po.Listen+" (log: "+pr.logPath+")", pr, func() bool {
		resp, err := http.Get("http://" + po.Listen + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}
