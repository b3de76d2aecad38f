// Package peers builds and tears down the systems under test: direct (no proxy), Go's ReverseProxy,
// nginx, HAProxy and sinew, each either as one plaintext hop in front of the app or as a client-side and
// server-side pair with mutual TLS 1.3 (ECDSA P-256) between them, mirroring a meshed hop.
//
// Proxies are pinned to core 0 and the harness (load generator and app) to core 1. Every listener binds
// loopback on a port that was free a moment before; a start that loses a port to another process is
// retried whole on fresh ports (StartRetry). Nothing here measures latency.
package peers

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// Topology is what a peer is asked to build.
type Topology int

const (
	// Hop is one proxy, plaintext, in front of the app (scenario S1, S3, S4).
	Hop Topology = iota
	// Mesh is a client-side proxy → mTLS → server-side proxy → app (scenario S2).
	Mesh
	// TCPHop is one proxy carrying opaque TCP, plaintext, in front of the echo server (S6).
	TCPHop
	// TCPMesh is opaque TCP through a client-side proxy → mTLS → server-side proxy → echo server (S6).
	TCPMesh
	// H2Mesh is HTTP/2 (h2c from the client, HTTP/2 over mTLS between the pair, h2c to the app) through a
	// client-side and a server-side proxy (S8: h2c requests and gRPC).
	H2Mesh
	// TLSMesh is Mesh with TLS 1.3 (client certificate required) from the client to the first hop: the
	// client-side proxy terminates it (S7 with TLS; direct: the app's TLS port). sinew's outbound port is
	// plaintext by design (the app talks to its own sidecar), so sinew does not build it.
	TLSMesh
	// ChurnMesh is Mesh with a standby server proxy (the same app behind a second proxy) and an HTTPRoute on the
	// target Service, whose resources Instance.Churn rewrites under load (S10). Only the sinew peer builds it
	// (ChurnSkip).
	ChurnMesh
	// Edge is an edge proxy terminating HTTPS from the client (TLS 1.3, the client trusts the harness's CA and
	// presents no certificate) → mTLS → a server-side proxy → app (S12). sinew's edge proxy is its ingress
	// gateway (a Gateway of GatewayClass sinew with an HTTPS listener); nginx's and HAProxy's is the client-side
	// instance of their pair with a TLS front; direct is HTTPS to the app's TLS port (keep-alive, so only the
	// first request of a connection pays for the handshake, before the measured window).
	Edge
)

func (t Topology) String() string {
	switch t {
	case Mesh:
		return "mesh"
	case TCPHop:
		return "tcphop"
	case TCPMesh:
		return "tcpmesh"
	case H2Mesh:
		return "h2mesh"
	case TLSMesh:
		return "tlsmesh"
	case ChurnMesh:
		return "churnmesh"
	case Edge:
		return "edge"
	}
	return "hop"
}

// TCP reports whether the topology carries opaque TCP to the echo server rather than HTTP to the app.
func (t Topology) TCP() bool { return t == TCPHop || t == TCPMesh }

// Paired reports whether the topology is a client-side and server-side pair with mTLS between.
func (t Topology) Paired() bool {
	return t == Mesh || t == TCPMesh || t == H2Mesh || t == TLSMesh || t == ChurnMesh || t == Edge
}

// ChurnSkip is why p cannot build ChurnMesh ("" when it can): S10 changes endpoints and routes through sinew's
// control plane, which the other peers do not have; the sinew variants measure something else.
func ChurnSkip(p Peer) string {
	switch s, ok := p.(Sinew); {
	case !ok:
		return "S10 changes endpoints and routes through sinew's control plane; this peer has none"
	case s.Policy || s.Routes:
		return "S10 runs on the sinew peer, which carries its own HTTPRoute there"
	}
	return ""
}

// ErrUnsupported is returned by Start when a peer cannot build a topology at all (e.g. an HTTP-only
// proxy asked for opaque TCP); the runner reports the peer as skipped for that scenario.
var ErrUnsupported = errors.New("topology not supported by this peer")

// Cores used for pinning.
const (
	ProxyCore   = 0
	HarnessCore = 1
)

// Env is what every peer needs to build itself.
type Env struct {
	Dir      string   // scratch directory for configs and logs (removed by the caller)
	Self     string   // this executable, for the app and revproxy subcommands
	AppAddr  string   // host:port of the running app
	AppTLS   string   // host:port of the app's TLS listener (server certificate, client certificate required)
	EchoAddr string   // host:port of the TCP echo server (S6)
	TLS      TLSFiles // material for the non-sinew peers
	Pin      bool     // pin proxies with taskset
	RepoRoot string   // module root, for building sinew
	SinewBin string   // directory holding sinew-proxy and sinew-controller ("" if not built)
}

func (e *Env) core() int {
	if e.Pin {
		return ProxyCore
	}
	return -1
}

// Instance is one built peer.
type Instance struct {
	Addr    string  // where the load generator connects
	Host    string  // Host header to send ("" = Addr)
	Proxies []*Proc // the proxy processes that CPU and memory are read from
	// ClientTLS is set when the load generator must speak TLS to Addr (TLSMesh).
	ClientTLS *tls.Config
	// Authorization, when set, is the Authorization header of every request (sinew-authz's bearer token).
	Authorization string
	// Churn changes the instance's endpoints and routes (ChurnMesh only).
	Churn  *Churn
	others []*Proc // helpers stopped with the instance but not measured (control plane)
	dir    string
	tcp    bool // readiness is an echo, not an HTTP 200
	h2     bool // readiness is an h2c 200
}

// Stop ends every process of the instance, proxies first.
func (in *Instance) Stop() {
	if in == nil {
		return
	}
	for _, p := range in.Proxies {
		p.Stop()
	}
	for _, p := range in.others {
		p.Stop()
	}
}

// Peer is one system under test.
type Peer interface {
	Name() string
	// Available returns a reason when the peer cannot run on this machine ("" when it can).
	Available(env *Env) string
	Start(ctx context.Context, env *Env, topo Topology) (*Instance, error)
}

// All returns the peers in report order.
func All() []Peer {
	return []Peer{Direct{}, GoRevProxy{}, Nginx{}, HAProxy{}, Sinew{}, Sinew{Policy: true}, Sinew{Routes: true}}
}

// ByName picks peers by name, in the order of All.
func ByName(names map[string]bool) []Peer {
	var out []Peer
	for _, p := range All() {
		if names[p.Name()] {
			out = append(out, p)
		}
	}
	return out
}

func instanceDir(env *Env, name string, topo Topology) (string, error) {
	d, err := os.MkdirTemp(env.Dir, fmt.Sprintf("%s-%s-", name, topo))
	if err != nil {
		return "", err
	}
	return d, os.Chmod(d, 0o755)
}

// ready waits for a 200 (an echo for TCP topologies) through the instance, and stops it on failure.
func ready(ctx context.Context, in *Instance, procs ...*Proc) (*Instance, error) {
	wait := func(ctx context.Context, addr, host, path string, timeout time.Duration, procs ...*Proc) error {
		return waitHTTP(ctx, addr, host, path, in.Authorization, in.ClientTLS, timeout, procs...)
	}
	if in.h2 {
		wait = func(ctx context.Context, addr, host, _ string, timeout time.Duration, procs ...*Proc) error {
			return WaitH2(ctx, addr, host, in.Authorization, timeout, procs...)
		}
	}
	if in.tcp {
		wait = func(ctx context.Context, addr, _, _ string, timeout time.Duration, procs ...*Proc) error {
			return WaitEcho(ctx, addr, timeout, procs...)
		}
	}
	if err := wait(ctx, in.Addr, in.Host, "/", 20*time.Second, procs...); err != nil {
		in.Stop()
		return nil, err
	}
	return in, nil
}

// Direct sends load straight to the app: the baseline that "added latency" is measured against.
type Direct struct{}

func (Direct) Name() string          { return "direct" }
func (Direct) Available(*Env) string { return "" }
func (Direct) Start(_ context.Context, env *Env, topo Topology) (*Instance, error) {
	if topo == TLSMesh || topo == Edge {
		// The app's TLS port requires a client certificate (S7); on S12's keep-alive connections it is presented
		// once, at the handshake before the measured window, and changes nothing per request.
		cfg, err := ClientTLS(env.TLS)
		if err != nil {
			return nil, err
		}
		in := &Instance{Addr: env.AppTLS, ClientTLS: cfg}
		if topo == Edge {
			in.Host = ServerName
		}
		return in, nil
	}
	if topo.TCP() {
		return &Instance{Addr: env.EchoAddr, tcp: true}, nil
	}
	return &Instance{Addr: env.AppAddr}, nil
}

// GoRevProxy is net/http/httputil.ReverseProxy with default settings except for bigger idle pools:
// the naive-Go baseline. It runs as a subcommand of this binary so that it can be pinned and measured.
type GoRevProxy struct{}

func (GoRevProxy) Name() string          { return "go-revproxy" }
func (GoRevProxy) Available(*Env) string { return "" }
func (GoRevProxy) Start(ctx context.Context, env *Env, topo Topology) (*Instance, error) {
	if topo.TCP() {
		return nil, fmt.Errorf("go-revproxy is HTTP only: %w", ErrUnsupported)
	}
	in, err := newInstance(env, "revproxy", topo)
	if err != nil {
		return nil, err
	}
	dir, front := in.dir, in.Addr
	if topo == Hop {
		p, err := Launch(dir, "revproxy", env.core(), nil, env.Self, "revproxy", "-listen", front, "-upstream", env.AppAddr)
		if err != nil {
			return nil, err
		}
		in.Proxies = []*Proc{p}
		return ready(ctx, in, p)
	}
	back, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	h2 := fmt.Sprintf("-h2=%t", topo == H2Mesh)
	srv, err := Launch(dir, "revproxy-server", env.core(), nil, env.Self, "revproxy", "-listen", back, h2,
		"-upstream", env.AppAddr, "-tls-server", "-ca", env.TLS.CA, "-cert", env.TLS.ServerCert, "-key", env.TLS.ServerKey)
	if err != nil {
		return nil, err
	}
	in.Proxies = []*Proc{srv}
	args := []string{env.Self, "revproxy", "-listen", front, h2,
		"-upstream", back, "-tls-client", "-ca", env.TLS.CA, "-cert", env.TLS.ClientCert, "-key", env.TLS.ClientKey}
	switch topo {
	case TLSMesh:
		args = append(args, "-front-cert", env.TLS.ServerCert, "-front-key", env.TLS.ServerKey)
	case Edge:
		args = append(args, "-front-cert", env.TLS.ServerCert, "-front-key", env.TLS.ServerKey, "-front-client-cert=false")
	}
	cli, err := Launch(dir, "revproxy-client", env.core(), nil, args...)
	if err != nil {
		in.Stop()
		return nil, err
	}
	in.Proxies = []*Proc{cli, srv}
	return ready(ctx, in, cli, srv)
}

func port(addr string) string {
	_, p, _ := splitHostPort(addr)
	return p
}

func splitHostPort(addr string) (string, string, error) {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			return addr[:i], addr[i+1:], nil
		}
	}
	return "", "", fmt.Errorf("no port in %q", addr)
}

func writeFile(dir, name, content string) (string, error) {
	p := filepath.Join(dir, name)
	return p, os.WriteFile(p, []byte(content), 0o644)
}

// newInstance makes the working directory and picks the front address of one peer instance.
func newInstance(env *Env, name string, topo Topology) (*Instance, error) {
	dir, err := instanceDir(env, name, topo)
	if err != nil {
		return nil, err
	}
	front, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	in := &Instance{Addr: front, dir: dir, tcp: topo.TCP(), h2: topo == H2Mesh}
	switch topo {
	case TLSMesh:
		if in.ClientTLS, err = ClientTLS(env.TLS); err != nil {
			return nil, err
		}
	case Edge:
		if in.ClientTLS, err = EdgeClientTLS(env.TLS); err != nil {
			return nil, err
		}
		in.Host = ServerName
	}
	return in, nil
}

// upstream is what the server side (or the only proxy) forwards to: the app, or the echo server.
func (e *Env) upstream(topo Topology) string {
	if topo.TCP() {
		return e.EchoAddr
	}
	return e.AppAddr
}

// binaryMissing is a peer's Available answer for one required program: "" when it is installed.
func binaryMissing(name, path string) string {
	if _, err := exec.LookPath(path); err != nil {
		return name + " not installed (" + path + ")"
	}
	return ""
}
