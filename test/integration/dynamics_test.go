package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sinewmesh/sinew/proxy"
)

// get sends one request through c and returns which backend served it.
func servedBy(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body) //nolint:errcheck
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("status %d (%s)", resp.StatusCode, resp.Header.Get("sinew-proxy-error"))
	}
	return resp.Header.Get("x-served-by"), nil
}

func TestEndpointsFollowTheResourceDirectory(t *testing.T) {
	t.Parallel()
	m := startMesh(t, meshOpts{})
	pair := startPair(t, m, httpApp(t, "a", false))
	// A second backend of the same service appears.
	b := m.sidecar(sidecarOpts{ns: "test", name: "srv-b", sa: "srv-sa", inbound: []proxy.InboundPort{{Port: 8080, App: httpApp(t, "b", false)}}})
	url := "http://" + pair.outbound + "/"
	c := &http.Client{}
	if who, err := servedBy(c, url); err != nil || who != "a" {
		t.Fatalf("before: %q %v", who, err)
	}
	m.write("srv-b.yaml", workloadYAML("test", "srv-b", "srv-sa", "srv", b.inboundPort(), 8080))
	b.waitReady(t)
	eventually(t, 10*time.Second, "new endpoint receives traffic", func() error {
		if who, err := servedBy(c, url); err != nil || who != "b" {
			return fmt.Errorf("served by %q, %v", who, err)
		}
		return nil
	})
	// The first backend is removed from the service; once the client's proxy knows (its /debug/config lists only
	// b), it must not send it new requests. (Traffic alone cannot tell: a balancer may prefer b while a is still
	// listed.)
	m.write("srv.yaml", serviceYAML("test", "srv", "srv", 80, 8080))
	bAddr := fmt.Sprintf("127.0.0.1:%d", b.inboundPort())
	eventually(t, 10*time.Second, "the client's proxy lists only the new endpoint", func() error {
		resp, err := http.Get("http://" + pair.client.p.AdminAddr() + "/debug/config")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var state struct {
			Destinations []struct {
				Name      string
				Endpoints []struct{ Addr string }
			}
		}
		if err := json.NewDecoder(resp.Body).Decode(&state); err != nil {
			return err
		}
		for _, d := range state.Destinations {
			if len(d.Endpoints) != 1 || d.Endpoints[0].Addr != bAddr {
				return fmt.Errorf("%s: endpoints %v, want only %s", d.Name, d.Endpoints, bAddr)
			}
		}
		return nil
	})
	for i := range 50 {
		if who, err := servedBy(c, url); err != nil || who != "b" {
			t.Fatalf("request %d after removal: %q %v", i, who, err)
		}
	}
	// No endpoints at all: 503 from the proxy, naming the failure.
	m.remove("srv-b.yaml")
	eventually(t, 10*time.Second, "no endpoints", func() error {
		resp, err := c.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 503 || resp.Header.Get("sinew-proxy-error") != "no_endpoints" || resp.Header.Get("sinew-error-id") == "" {
			return fmt.Errorf("status %d %q", resp.StatusCode, resp.Header.Get("sinew-proxy-error"))
		}
		return nil
	})
}

func TestTrafficSurvivesControlPlaneOutage(t *testing.T) {
	t.Parallel()
	m := startMesh(t, meshOpts{})
	pair := startPair(t, m, httpApp(t, "srv", false))
	url := "http://" + pair.outbound + "/"
	if _, err := servedBy(&http.Client{}, url); err != nil {
		t.Fatal(err)
	}
	m.stopControlPlane()
	// New clients (new connections, new mesh connections once idle ones are gone) keep working on the
	// last-known endpoints and certificates.
	for i := range 30 {
		c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		if who, err := servedBy(c, url); err != nil || who != "srv" {
			t.Fatalf("request %d with control plane down: %q %v", i, who, err)
		}
	}
	if text := pair.client.metrics(t); metricValue(text, "control_destination_stream_failures_total") < 1 {
		t.Fatalf("proxy did not notice the outage")
	}
}

func TestCertificateRenewalUnderLoad(t *testing.T) {
	t.Parallel()
	// Short-lived certificates: each proxy renews every ~2 s (70% of 3 s).
	m := startMesh(t, meshOpts{certLifetime: 3 * time.Second})
	pair := startPair(t, m, httpApp(t, "srv", false))
	url := "http://" + pair.outbound + "/"
	renewals := func(s *sidecar) float64 { return metricValue(s.metrics(t), "identity_cert_refresh_count") }

	ctx, cancel := context.WithCancel(context.Background())
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// New connections now and then so new mesh handshakes happen with renewed certificates too.
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1, IdleConnTimeout: 200 * time.Millisecond}}
			for ctx.Err() == nil {
				if _, err := servedBy(c, url); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	// Run until both proxies renewed at least twice more, then stop the load.
	eventually(t, 30*time.Second, "certificates renewed under load", func() error {
		if r1, r2 := renewals(pair.client), renewals(pair.server); r1 < 3 || r2 < 3 {
			return fmt.Errorf("renewals client=%v server=%v", r1, r2)
		}
		return nil
	})
	cancel()
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed during renewal; first: %v", failed.Load(), ok.Load()+failed.Load(), firstErr.Load())
	}
	if ok.Load() < 100 {
		t.Fatalf("only %d requests ran", ok.Load())
	}
}

func TestGracefulDrain(t *testing.T) {
	t.Parallel()
	m := startMesh(t, meshOpts{})
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	ln := listen(t)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			started <- struct{}{}
			<-release
		}
		io.WriteString(w, "done "+r.URL.Path)
	})}
	go srv.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { srv.Close() })
	pair := startPair(t, m, ln.Addr().String())

	result := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + pair.outbound + "/slow")
		if err != nil {
			result <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		result <- fmt.Sprint(resp.StatusCode, " ", string(b))
	}()
	<-started
	// POST /shutdown, as a preStop hook would (the admin server only takes it from localhost).
	resp, err := http.Post("http://"+pair.client.p.AdminAddr()+"/shutdown", "", nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("shutdown: %v %v", resp, err)
	}
	resp.Body.Close()
	eventually(t, 5*time.Second, "not ready while draining", func() error {
		if pair.client.p.Ready() {
			return fmt.Errorf("still ready")
		}
		return nil
	})
	// New connections are refused while the in-flight request is still being served.
	eventually(t, 5*time.Second, "listener closed", func() error {
		c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		if _, err := c.Get("http://" + pair.outbound + "/new"); err == nil {
			return fmt.Errorf("new request still accepted")
		}
		return nil
	})
	close(release)
	if got := <-result; got != "200 done /slow" {
		t.Fatalf("in-flight request: %s", got)
	}
	select {
	case err := <-pair.client.done:
		if err != nil {
			t.Fatal(err)
		}
		pair.client.cancel = nil
	case <-time.After(15 * time.Second):
		t.Fatal("proxy did not finish draining")
	}
}

// TestDrainDelay is a pod's termination in small: the endpoint leaves discovery while its proxy is told to stop.
// The proxy reports not ready at once but keeps accepting for its drain delay, so clients that have not heard of
// the removal yet are still served; once they have, it stops accepting and exits. A client under steady load sees
// no failure (this does not rely on retries).
func TestDrainDelay(t *testing.T) {
	t.Parallel()
	const delay = 2 * time.Second
	m := startMesh(t, meshOpts{})
	a := serverWithDrainDelay(t, m, "srv-a", httpApp(t, "a", false), delay)
	b := m.sidecar(sidecarOpts{ns: "test", name: "srv-b", sa: "srv-sa", inbound: []proxy.InboundPort{{Port: 8080, App: httpApp(t, "b", false)}}})
	m.write("srv-a.yaml", workloadYAML("test", "srv-a", "srv-sa", "srv", a.inboundPort(), 8080))
	m.write("srv-b.yaml", workloadYAML("test", "srv-b", "srv-sa", "srv", b.inboundPort(), 8080)+"---\n"+serviceYAML("test", "srv", "srv", 80, 8080))
	client := m.sidecar(sidecarOpts{ns: "test", name: "cli", sa: "cli-sa", outbound: []string{svcAuthority}})
	m.write("cli.yaml", workloadYAML("test", "cli", "cli-sa", "cli", 0, 9))
	a.waitReady(t)
	b.waitReady(t)
	client.waitReady(t)
	url := "http://" + client.p.OutboundAddrs()[0] + "/"
	c := &http.Client{}
	eventually(t, 10*time.Second, "both endpoints serving", func() error {
		seen := map[string]bool{}
		for range 20 {
			who, err := servedBy(c, url)
			if err != nil {
				return err
			}
			seen[who] = true
		}
		if !seen["a"] || !seen["b"] {
			return fmt.Errorf("served by %v", seen)
		}
		return nil
	})

	ctx, stopLoad := context.WithCancel(context.Background())
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		for ctx.Err() == nil {
			if _, err := servedBy(c, url); err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
			} else {
				ok.Add(1)
			}
		}
	}()
	defer func() { stopLoad(); <-loadDone }()

	// Terminate srv-a: SIGTERM to its proxy, and the endpoint leaves the service.
	stopped := time.Now()
	a.cancel()
	m.remove("srv-a.yaml")
	eventually(t, time.Second, "not ready after the shutdown signal", func() error {
		if a.p.Ready() {
			return errors.New("still ready")
		}
		return nil
	})
	// Not ready, yet a new connection is still accepted and served (plaintext to the inbound port reaches the
	// default application port).
	direct := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	if who, err := servedBy(direct, "http://"+a.p.InboundAddr()+"/"); err != nil || who != "a" {
		t.Errorf("new connection during the drain delay: %q %v", who, err)
	}
	select {
	case err := <-a.done:
		if err != nil {
			t.Fatal(err)
		}
		a.cancel = nil
	case <-time.After(delay + 15*time.Second):
		t.Fatal("proxy did not stop after its drain delay")
	}
	if took := time.Since(stopped); took < delay {
		t.Errorf("proxy stopped %v after the signal, before its drain delay of %v", took, delay)
	}
	if _, err := direct.Get("http://" + a.p.InboundAddr() + "/"); err == nil {
		t.Error("a new connection was accepted after the drain")
	}
	n := ok.Load() + 20
	eventually(t, 10*time.Second, "more requests served after the drain", func() error {
		if got := ok.Load(); got < n && failed.Load() == 0 {
			return fmt.Errorf("%d of %d", got, n)
		}
		return nil
	})
	stopLoad()
	<-loadDone
	if failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed while srv-a shut down; first: %v", failed.Load(), ok.Load()+failed.Load(), firstErr.Load())
	}
	t.Logf("%d requests, none failed", ok.Load())
}

// serverWithDrainDelay is m.sidecar for a server workload in namespace test (service account srv-sa) whose proxy
// keeps accepting for delay after it is told to stop.
func serverWithDrainDelay(t *testing.T, m *mesh, name, app string, delay time.Duration) *sidecar {
	t.Helper()
	cfg := proxy.Defaults()
	cfg.Mode = proxy.ModeExplicit
	cfg.Workload = "test/" + name
	cfg.InboundAddr, cfg.AdminAddr, cfg.TapAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.InboundPorts = []proxy.InboundPort{{Port: 8080, App: app}}
	cfg.IdentityAddr, cfg.DestinationAddr, cfg.PolicyAddr = m.cp.IdentityAddr(), m.cp.DestinationAddr(), m.cp.PolicyAddr()
	cfg.LocalName = spiffeID("test", "srv-sa")
	cfg.TrustAnchorsPEM = string(m.cp.TrustAnchorsPEM())
	tok, err := m.cp.IssueJoinToken("test", name)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Token = tok
	cfg.ShutdownGrace = 10 * time.Second
	cfg.ShutdownDrainDelay = delay
	p, err := proxy.New(cfg, testLogger(t).With("proxy", name), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &sidecar{p: p, cancel: cancel, done: make(chan error, 1), ns: "test", sa: "srv-sa"}
	go func() { s.done <- p.Run(ctx) }()
	t.Cleanup(func() { s.stop(t) })
	return s
}

func TestUnknownDestinationPassesThrough(t *testing.T) {
	t.Parallel()
	m := startMesh(t, meshOpts{})
	app := httpApp(t, "outside", false)
	// The target is an ip:port the mesh knows nothing about: the proxy sends it to the original address.
	client := m.sidecar(sidecarOpts{ns: "test", name: "cli", sa: "cli-sa", outbound: []string{app}})
	m.write("cli.yaml", workloadYAML("test", "cli", "cli-sa", "cli", 0, 9))
	client.waitReady(t)
	if who, err := servedBy(&http.Client{}, "http://"+client.p.OutboundAddrs()[0]+"/x"); err != nil || who != "outside" {
		t.Fatalf("pass-through: %q %v", who, err)
	}
	text := client.metrics(t)
	if v := metricValue(text, "response_total", `direction="outbound"`, `tls="no_identity"`, `target_addr="`+app+`"`); v != 1 {
		t.Fatalf("pass-through not metered: %v\n%s", v, grep(text, "response_total"))
	}
}

func grep(text, prefix string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
