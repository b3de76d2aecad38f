package integration

import (
	"context"
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
	// The first backend is removed from the service; it must stop receiving new requests.
	m.write("srv.yaml", serviceYAML("test", "srv", "srv", 80, 8080))
	eventually(t, 10*time.Second, "removed endpoint drained", func() error {
		for range 20 {
			if who, err := servedBy(c, url); err != nil || who != "b" {
				return fmt.Errorf("served by %q, %v", who, err)
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
