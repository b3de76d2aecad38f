package forward

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	tapv1 "github.com/sinewmesh/sinew/api/tap/v1"
	"github.com/sinewmesh/sinew/internal/meshtls"
	"github.com/sinewmesh/sinew/proxy/internal/metrics"
	"github.com/sinewmesh/sinew/proxy/internal/tap"
	"github.com/sinewmesh/sinew/proxy/internal/transport"
)

// testCA issues mesh certificates for one test.
type testCA struct {
	anchors *x509.CertPool
	root    *x509.Certificate
	key     *ecdsa.PrivateKey
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	root, key, err := meshtls.NewCA("test root", 0, nil, nil, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	anchors := x509.NewCertPool()
	anchors.AddCert(root)
	return &testCA{anchors: anchors, root: root, key: key}
}

func (ca *testCA) leaf(t *testing.T, id string) *tls.Certificate {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(id)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: meshtls.Serial(), NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		URIs: []*url.URL{u}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.root, &k.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}
}

type fixedCert struct{ c *tls.Certificate }

func (f fixedCert) Certificate() *tls.Certificate { return f.c }

// TestInboundTapEvent sends requests through Inbound.Handle, from a peer proxy over mesh mTLS and from a plaintext
// client, and reads the tap events: the destination is where the client sent the request (this pod's address and
// the port asked for), not the application's loopback address, and :path keeps the query, which the route metrics
// deliberately drop.
func TestInboundTapEvent(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	serverID, clientID := meshtls.ID("td", "emojivoto", "voting"), meshtls.ID("td", "emojivoto", "web")
	serverCert, clientCert := ca.leaf(t, serverID), ca.leaf(t, clientID)

	gotURI := make(chan string, 2)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotURI <- r.RequestURI
		io.WriteString(w, "ok")
	}))
	t.Cleanup(app.Close)
	appAddr := app.Listener.Addr().String()

	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	hub, err := tap.NewHub(reg, tap.Local{ID: serverID})
	if err != nil {
		t.Fatal(err)
	}
	sub := hub.Subscribe(&tapv1.ObserveRequest{})
	t.Cleanup(sub.Close)
	deps := Deps{Log: slog.New(slog.DiscardHandler), Metrics: m, Certs: fixedCert{serverCert}, Anchors: ca.anchors, Tap: hub}
	const targetPort = 9090 // the workload port peers ask for; the application listens elsewhere
	in := NewInbound(deps, Timeouts{Detect: 10 * time.Second, Connect: 10 * time.Second, Handshake: 10 * time.Second}, nil,
		InboundPorts{Apps: map[uint16]string{targetPort: appAddr}, Default: appAddr})

	// Another loopback address than the application's, so that the two cannot be mistaken for each other.
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Logf("127.0.0.2 unavailable (%v); using 127.0.0.1", err)
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go in.Handle(c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		in.Shutdown(ctx)
	})
	host, _, _ := net.SplitHostPort(ln.Addr().String())

	const target = "/api/vote?choice=:doughnut:"
	for _, c := range []struct {
		name    string
		dial    func(t *testing.T) net.Conn
		wantDst string
		wantTLS string
	}{
		{"mesh", func(t *testing.T) net.Conn {
			tc, err := tls.Dial("tcp", ln.Addr().String(), meshtls.ClientConfig(ca.anchors, serverID, func() *tls.Certificate { return clientCert }, meshtls.ALPN))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tc.Write(transport.Header{Proto: transport.ProtoHTTP1, Port: targetPort}.Append(nil)); err != nil {
				t.Fatal(err)
			}
			return tc
		}, net.JoinHostPort(host, "9090"), "true"},
		// Explicit mode: a plaintext client dials the inbound listener itself.
		{"plaintext", func(t *testing.T) net.Conn {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			return c
		}, ln.Addr().String(), "no_identity"},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn := c.dial(t)
			defer conn.Close()
			req, _ := http.NewRequest("GET", "http://voting-svc:9090"+target, nil)
			if err := req.Write(conn); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(conn), req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if got := <-gotURI; got != target {
				t.Errorf("the application got %q, want %q", got, target)
			}

			// The request's init event was queued before the request went on to the application.
			var ev *tapv1.TapEvent
			select {
			case ev = <-sub.Events():
			case <-time.After(10 * time.Second):
				t.Fatal("no tap event")
			}
			ri := ev.GetRequestInit()
			if ri == nil {
				t.Fatalf("first event %v, want a request init", ev)
			}
			if ev.GetDestination() != c.wantDst || ev.GetDestination() == appAddr {
				t.Errorf("destination %q, want %q (where the client sent it; the application is at %s)", ev.GetDestination(), c.wantDst, appAddr)
			}
			if ri.GetPath() != target {
				t.Errorf(":path %q, want %q", ri.GetPath(), target)
			}
			if ev.GetDirection() != tapv1.TapEvent_DIRECTION_INBOUND || ev.GetTls() != c.wantTLS {
				t.Errorf("direction %v, tls %q; want inbound, %q", ev.GetDirection(), ev.GetTls(), c.wantTLS)
			}
			for range 2 { // response init and end
				select {
				case <-sub.Events():
				case <-time.After(10 * time.Second):
					t.Fatal("tap events of the response missing")
				}
			}
		})
	}

	// The route metrics' path stays without the query.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var routes []string
	for _, mf := range mfs {
		if mf.GetName() != "route_request_total" {
			continue
		}
		for _, s := range mf.GetMetric() {
			for _, lp := range s.GetLabel() {
				if lp.GetName() == "rt_route" {
					routes = append(routes, lp.GetValue())
				}
			}
		}
	}
	if len(routes) != 2 || routes[0] != "/api/vote" || routes[1] != "/api/vote" {
		t.Errorf("rt_route of the two requests %q, want the path without its query", routes)
	}
}
