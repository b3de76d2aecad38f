package integration

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sinewmesh/sinew/internal/testutil"
	"github.com/sinewmesh/sinew/proxy"
)

func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// A proxy in transparent mode inside its own network namespace: the application dials a workload's ip:port,
// an nftables rule redirects it to the proxy's outbound listener, the proxy reads the original destination,
// resolves it through the destination service, and carries it over mTLS to the server's proxy.
func TestTransparentOutbound(t *testing.T) {
	ns := netnsForTest(t)
	m := startMesh(t, meshOpts{})
	app := httpApp(t, "srv", false)
	server := m.sidecar(sidecarOpts{ns: "test", name: "srv", sa: "srv-sa", inbound: []proxy.InboundPort{{Port: 8080, App: app}}})
	// The workload is known by 127.0.0.1:8080 (its address and port); its proxy listens on another port.
	m.write("srv.yaml", workloadYAML("test", "srv", "srv-sa", "srv", server.inboundPort(), 8080))
	m.write("cli.yaml", workloadYAML("test", "cli", "cli-sa", "cli", 0, 9))
	server.waitReady(t)

	p := startTransparent(t, m, ns, "cli", "cli-sa", func(*proxy.Config) {})
	// Capture: everything the namespace sends to port 8080 goes to the proxy's outbound listener.
	capturePort(t, ns, p, 8080)
	nsClient := netnsClient(ns)
	for i := range 5 {
		resp, err := nsClient.Get("http://127.0.0.1:8080/transparent")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("x-seen-client-id") != spiffeID("test", "cli-sa") {
			t.Fatalf("request %d: %d %q client-id %q", i, resp.StatusCode, b, resp.Header.Get("x-seen-client-id"))
		}
	}
	// The proxy knew the destination by its original address and sent it over mTLS to the right identity.
	resp, err := nsClient.Get("http://" + p.AdminAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if v := metricValue(string(text), "request_total", `direction="outbound"`, `tls="true"`, `server_id="`+spiffeID("test", "srv-sa")+`"`, `dst_pod="srv"`); v != 5 {
		t.Fatalf("transparent outbound request_total = %v\n%s", v, grep(string(text), "request_total"))
	}
}

// netnsForTest creates a network namespace with loopback up, removed at the end of the test; it skips the test
// when not root.
func netnsForTest(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces and nftables (CI runs as root)")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: install iproute2 and nftables (.ci/run does)", tool)
		}
	}
	ns := fmt.Sprintf("sinew-it-%d-%d", os.Getpid(), netnsSeq.Add(1))
	run(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	return ns
}

var netnsSeq atomic.Int64

// startTransparent runs a proxy in transparent mode for workload test/name inside the network namespace ns (its
// listeners are there; it dials endpoints from the test's namespace), after configure adjusts its settings.
func startTransparent(t *testing.T, m *mesh, ns, name, sa string, configure func(*proxy.Config)) *proxy.Proxy {
	t.Helper()
	return startProxy(t, m, ns, name, sa, func(cfg *proxy.Config) {
		cfg.Mode = proxy.ModeTransparent
		configure(cfg)
	})
}

// startProxy runs the proxy of workload test/name with service account sa's identity, inside the network
// namespace netns unless it is "", with the settings configure makes, and waits until it is ready.
func startProxy(t *testing.T, m *mesh, netns, name, sa string, configure func(*proxy.Config)) *proxy.Proxy {
	t.Helper()
	cfg := proxy.Defaults()
	cfg.Workload = "test/" + name
	cfg.InboundAddr, cfg.OutboundAddr, cfg.AdminAddr, cfg.TapAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.IdentityAddr, cfg.DestinationAddr = m.cp.IdentityAddr(), m.cp.DestinationAddr()
	cfg.LocalName = spiffeID("test", sa)
	cfg.TrustAnchorsPEM = string(m.cp.TrustAnchorsPEM())
	tok, err := m.cp.IssueJoinToken("test", name)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Token = tok
	configure(&cfg)
	var p *proxy.Proxy
	start := func() (err error) {
		p, err = proxy.New(cfg, testLogger(t).With("proxy", name), nil)
		return err
	}
	if netns != "" {
		err = testutil.InNetns(netns, start)
	} else {
		err = start()
	}
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	eventually(t, 15*time.Second, name+" ready", func() error {
		if !p.Ready() {
			return fmt.Errorf("not ready")
		}
		return nil
	})
	return p
}

// capturePort redirects what the namespace ns sends to port to p's outbound listener, as sinew-init does.
func capturePort(t *testing.T, ns string, p *proxy.Proxy, port int) {
	t.Helper()
	outPort := portOf(p.OutboundAddrs()[0])
	run(t, "ip", "netns", "exec", ns, "nft", "add table ip sinew")
	run(t, "ip", "netns", "exec", ns, "nft", "add chain ip sinew output { type nat hook output priority -100; }")
	run(t, "ip", "netns", "exec", ns, "nft", fmt.Sprintf("add rule ip sinew output tcp dport %d redirect to :%d", port, outPort))
}

// netnsClient is an HTTP client whose connections start inside the network namespace ns.
func netnsClient(ns string) *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (c net.Conn, err error) {
		err = testutil.InNetns(ns, func() error {
			c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}}}
}
