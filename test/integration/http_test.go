package integration

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sinewmesh/sinew/proxy"
)

// app is a test HTTP server that reports who served the request and what it saw.
func httpApp(t testing.TB, name string, h2c bool) string {
	t.Helper()
	ln := listen(t)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("x-served-by", name)
		w.Header().Set("x-seen-proto", r.Proto)
		w.Header().Set("x-seen-client-id", r.Header.Get("Sinew-Client-Id"))
		w.Header().Set("x-seen-host", r.Host)
		if r.URL.Path == "/fail" {
			w.WriteHeader(http.StatusInternalServerError)
		}
		fmt.Fprintf(w, "%s %s %s", name, r.URL.Path, body)
	})}
	if h2c {
		srv.Protocols = new(http.Protocols)
		srv.Protocols.SetHTTP1(true)
		srv.Protocols.SetUnencryptedHTTP2(true)
	}
	go srv.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// pair starts a server workload (app behind a proxy) and a client proxy whose first outbound port leads to the
// server's service. It returns the client's outbound address.
type pairT struct {
	m              *mesh
	client, server *sidecar
	outbound       string
}

const svcAuthority = "srv.test.svc.cluster.local:80"

func startPair(t testing.TB, m *mesh, appAddr string) *pairT {
	t.Helper()
	server := m.sidecar(sidecarOpts{ns: "test", name: "srv", sa: "srv-sa", inbound: []proxy.InboundPort{{Port: 8080, App: appAddr}}})
	m.write("srv.yaml", workloadYAML("test", "srv", "srv-sa", "srv", server.inboundPort(), 8080)+"---\n"+serviceYAML("test", "srv", "srv", 80, 8080))
	client := m.sidecar(sidecarOpts{ns: "test", name: "cli", sa: "cli-sa", outbound: []string{svcAuthority}})
	m.write("cli.yaml", workloadYAML("test", "cli", "cli-sa", "cli", 0, 9))
	server.waitReady(t)
	client.waitReady(t)
	return &pairT{m: m, client: client, server: server, outbound: client.p.OutboundAddrs()[0]}
}

func TestHTTP1ThroughMesh(t *testing.T) {
	t.Parallel()
	m := startMesh(t, meshOpts{})
	pair := startPair(t, m, httpApp(t, "srv", false))

	c := &http.Client{}
	for i := range 5 {
		resp, err := c.Post("http://"+pair.outbound+"/hello", "text/plain", strings.NewReader(fmt.Sprint("body", i)))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != fmt.Sprintf("srv /hello body%d", i) {
			t.Fatalf("got %d %q", resp.StatusCode, b)
		}
		// HTTP/1.1 is restored for the application after crossing the mesh as HTTP/2.
		if got := resp.Header.Get("x-seen-proto"); got != "HTTP/1.1" {
			t.Fatalf("app saw %s", got)
		}
		if got := resp.Header.Get("x-seen-client-id"); got != spiffeID("test", "cli-sa") {
			t.Fatalf("app saw client id %q", got)
		}
		if got := resp.Header.Get("x-seen-host"); got != pair.outbound {
			t.Fatalf("app saw host %q", got)
		}
	}
	// A failing route is counted as a failure on both sides.
	resp, err := c.Get("http://" + pair.outbound + "/fail")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	srvID, cliID := spiffeID("test", "srv-sa"), spiffeID("test", "cli-sa")
	eventually(t, 5*time.Second, "client metrics", func() error {
		text := pair.client.metrics(t)
		if v := metricValue(text, "request_total", `direction="outbound"`, `tls="true"`, `server_id="`+srvID+`"`, `dst_namespace="test"`, `dst_service="srv"`); v != 6 {
			return fmt.Errorf("outbound request_total = %v, want 6", v)
		}
		if v := metricValue(text, "response_total", `direction="outbound"`, `tls="true"`, `classification="failure"`, `status_code="500"`); v != 1 {
			return fmt.Errorf("outbound failures = %v, want 1", v)
		}
		if v := metricValue(text, "response_latency_ms_count", `direction="outbound"`, `status_code="200"`); v != 5 {
			return fmt.Errorf("latency count = %v, want 5", v)
		}
		return nil
	})
	eventually(t, 5*time.Second, "server metrics", func() error {
		text := pair.server.metrics(t)
		if v := metricValue(text, "response_total", `direction="inbound"`, `tls="true"`, `client_id="`+cliID+`"`, `classification="success"`); v != 5 {
			return fmt.Errorf("inbound successes = %v, want 5", v)
		}
		if v := metricValue(text, "tcp_open_total", `direction="inbound"`, `tls="true"`, `client_id="`+cliID+`"`); v < 1 {
			return fmt.Errorf("inbound tcp_open_total = %v", v)
		}
		return nil
	})
}
