// Package integration runs the control plane and real sinew proxies in one process on loopback, with real
// applications (HTTP/1, h2c, gRPC, TCP) behind them, the local-mode YAML source, and real mTLS between proxies.
package integration

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sinewmesh/sinew/controlplane"
	"github.com/sinewmesh/sinew/proxy"
)

const trustDomain = "cluster.local"

func spiffeID(ns, sa string) string { return "spiffe://" + trustDomain + "/ns/" + ns + "/sa/" + sa }

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("SINEW_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: still failing after %v: %v", what, timeout, err)
}

// mesh is a running control plane plus the resources it reads.
type mesh struct {
	t       testing.TB
	cp      *controlplane.ControlPlane
	dataDir string
	resDir  string
	stop    context.CancelFunc
	done    chan error
}

type meshOpts struct {
	certLifetime time.Duration
	jwksRefresh  time.Duration // how often JWKS URLs are fetched again; 0: the default
	jwksRefetch  time.Duration // the least time between on-demand fetches (unknown kid); 0: the default
}

func startMesh(t testing.TB, o meshOpts) *mesh {
	t.Helper()
	m := &mesh{t: t, dataDir: t.TempDir(), resDir: t.TempDir()}
	m.startControlPlane(o)
	t.Cleanup(m.stopControlPlane)
	return m
}

func (m *mesh) startControlPlane(o meshOpts) {
	m.t.Helper()
	cp, err := controlplane.New(controlplane.Config{
		DataDir: m.dataDir, ResourceDir: m.resDir,
		IdentityAddr: "127.0.0.1:0", DestinationAddr: "127.0.0.1:0", PolicyAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
		CertLifetime: o.certLifetime, JWKSRefreshInterval: o.jwksRefresh, JWKSRefetchEvery: o.jwksRefetch,
		Logger: testLogger(m.t).With("component", "controlplane"),
	})
	if err != nil {
		m.t.Fatalf("control plane: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.cp, m.stop, m.done = cp, cancel, make(chan error, 1)
	go func() { m.done <- cp.Run(ctx) }()
}

func (m *mesh) stopControlPlane() {
	if m.stop == nil {
		return
	}
	m.stop()
	select {
	case <-m.done:
	case <-time.After(20 * time.Second):
		m.t.Errorf("control plane did not stop")
	}
	m.stop = nil
}

// write puts a resource file into the watched directory (atomically, as editors do).
func (m *mesh) write(name, content string) {
	m.t.Helper()
	tmp := filepath.Join(m.resDir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		m.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(m.resDir, name)); err != nil {
		m.t.Fatal(err)
	}
}

func (m *mesh) remove(name string) {
	m.t.Helper()
	if err := os.Remove(filepath.Join(m.resDir, name)); err != nil {
		m.t.Fatal(err)
	}
}

func workloadYAML(ns, name, sa, app string, meshPort int, port int) string {
	return fmt.Sprintf(`apiVersion: sinew.dev/v1alpha1
kind: Workload
metadata: {name: %s, namespace: %s, labels: {app: %s}}
spec:
  serviceAccount: %s
  address: 127.0.0.1
  meshPort: %d
  ports: [{name: p, port: %d}]
`, name, ns, app, sa, meshPort, port)
}

func serviceYAML(ns, name, app string, port, targetPort int) string {
	return annotatedServiceYAML(ns, name, app, port, targetPort, nil)
}

// annotatedServiceYAML is serviceYAML with metadata.annotations, such as the outbound defaults of
// docs/networking/retries-and-timeouts.md.
func annotatedServiceYAML(ns, name, app string, port, targetPort int, annotations map[string]string) string {
	var ann strings.Builder
	for i, k := range slices.Sorted(maps.Keys(annotations)) {
		if i == 0 {
			ann.WriteString(", annotations: {")
		} else {
			ann.WriteString(", ")
		}
		fmt.Fprintf(&ann, "%q: %q", k, annotations[k])
	}
	if ann.Len() > 0 {
		ann.WriteString("}")
	}
	return fmt.Sprintf(`apiVersion: sinew.dev/v1alpha1
kind: Service
metadata: {name: %s, namespace: %s%s}
spec:
  selector: {app: %s}
  ports: [{name: p, port: %d, targetPort: %d}]
`, name, ns, ann.String(), app, port, targetPort)
}

// sidecar is a running in-process proxy.
type sidecar struct {
	p      *proxy.Proxy
	cancel context.CancelFunc
	done   chan error
	ns, sa string
}

type sidecarOpts struct {
	ns, name, sa string
	inbound      []proxy.InboundPort
	outbound     []string // targets; each gets a local listener
	opaquePorts  []uint16
	token        string // override the issued token
	localName    string // override the identity asked for
	policyAddr   string // override the policy service's address
	// serverPorts are the ports a Server covers, as the injector tells a proxy (nil: not told).
	serverPorts   []uint16
	defaultPolicy string // the workload's default inbound policy ("": the proxy's default)
}

func (m *mesh) sidecar(o sidecarOpts) *sidecar {
	m.t.Helper()
	cfg := proxy.Defaults()
	cfg.Mode = proxy.ModeExplicit
	cfg.Workload = o.ns + "/" + o.name
	cfg.InboundAddr = "127.0.0.1:0"
	cfg.AdminAddr = "127.0.0.1:0"
	cfg.TapAddr = "127.0.0.1:0"
	cfg.InboundPorts = o.inbound
	for _, target := range o.outbound {
		cfg.OutboundPorts = append(cfg.OutboundPorts, proxy.OutboundPort{Listen: "127.0.0.1:0", Target: target})
	}
	if o.opaquePorts != nil {
		cfg.OpaquePorts = o.opaquePorts
	}
	cfg.IdentityAddr = m.cp.IdentityAddr()
	cfg.DestinationAddr = m.cp.DestinationAddr()
	cfg.PolicyAddr = m.cp.PolicyAddr()
	if o.policyAddr != "" {
		cfg.PolicyAddr = o.policyAddr
	}
	cfg.InboundServerPorts = o.serverPorts
	if o.defaultPolicy != "" {
		cfg.DefaultInboundPolicy = o.defaultPolicy
	}
	cfg.LocalName = spiffeID(o.ns, o.sa)
	if o.localName != "" {
		cfg.LocalName = o.localName
	}
	cfg.TrustAnchorsPEM = string(m.cp.TrustAnchorsPEM())
	cfg.Token = o.token
	if cfg.Token == "" {
		tok, err := m.cp.IssueJoinToken(o.ns, o.name)
		if err != nil {
			m.t.Fatal(err)
		}
		cfg.Token = tok
	}
	cfg.ShutdownGrace = 10 * time.Second
	cfg.DiscoveryTimeout = 3 * time.Second
	p, err := proxy.New(cfg, testLogger(m.t).With("proxy", o.name), nil)
	if err != nil {
		m.t.Fatalf("proxy %s: %v", o.name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &sidecar{p: p, cancel: cancel, done: make(chan error, 1), ns: o.ns, sa: o.sa}
	go func() { s.done <- p.Run(ctx) }()
	m.t.Cleanup(func() { s.stop(m.t) })
	return s
}

func (s *sidecar) stop(t testing.TB) {
	if s.cancel == nil {
		return
	}
	s.cancel()
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("proxy Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Errorf("proxy did not stop")
	}
	s.cancel = nil
}

func (s *sidecar) inboundPort() int { return portOf(s.p.InboundAddr()) }

func portOf(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}

func (s *sidecar) waitReady(t testing.TB) {
	t.Helper()
	eventually(t, 15*time.Second, "proxy ready", func() error {
		resp, err := http.Get("http://" + s.p.AdminAddr() + "/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
}

// metrics returns the proxy's /metrics text.
func (s *sidecar) metrics(t testing.TB) string {
	t.Helper()
	resp, err := http.Get("http://" + s.p.AdminAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// metricValue sums the samples of name whose labels include every label in want (k="v" pairs).
func metricValue(text, name string, want ...string) float64 {
	var sum float64
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, w := range want {
			if !strings.Contains(line, w) {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		var v float64
		fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v)
		sum += v
	}
	return sum
}

// listen opens a loopback listener for a test application.
func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// certFor obtains a real workload certificate from the control plane, for tests that play a peer proxy.
func (m *mesh) certFor(t testing.TB, ns, name, sa string) tls.Certificate {
	t.Helper()
	s := m.sidecar(sidecarOpts{ns: ns, name: name, sa: sa, inbound: []proxy.InboundPort{{Port: 1, App: "127.0.0.1:1"}}})
	m.write(name+".yaml", workloadYAML(ns, name, sa, name, 0, 9))
	s.waitReady(t)
	return *s.p.Certificate()
}
