package forward

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	tapv1 "github.com/sinewmesh/sinew/api/tap/v1"
	"github.com/sinewmesh/sinew/proxy/internal/metrics"
	"github.com/sinewmesh/sinew/proxy/internal/pipeline"
	"github.com/sinewmesh/sinew/proxy/internal/tap"
)

type noCerts struct{}

func (noCerts) Certificate() *tls.Certificate { return nil }

// newPlainInbound is an Inbound in front of app (closed with the test), with hub for tap (nil: tapping disabled),
// and the context of a plaintext connection to it: requests served with that context go through
// Inbound.ServeHTTP as if they had arrived on the connection. reg holds the proxy's metrics.
func newPlainInbound(tb testing.TB, hub *tap.Hub, app http.Handler) (in *Inbound, ctx context.Context, reg *prometheus.Registry) {
	tb.Helper()
	srv := httptest.NewServer(app)
	tb.Cleanup(srv.Close)
	reg = prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		tb.Fatal(err)
	}
	addr := srv.Listener.Addr().String()
	deps := Deps{Log: slog.New(slog.DiscardHandler), Metrics: m, Certs: noCerts{}, Anchors: x509.NewCertPool(), Tap: hub}
	in = NewInbound(deps, Timeouts{Connect: time.Second}, nil, InboundPorts{Apps: map[uint16]string{1: addr}, Default: addr})
	tb.Cleanup(in.plain.CloseIdle)
	ic := &pipeline.InboundConn{AppAddr: addr, TLS: "no_identity", Series: m.Series(metrics.Labels{Direction: "inbound", TargetAddr: addr, TLS: "no_identity"})}
	return in, context.WithValue(context.Background(), ctxKey{}, ic), reg
}

// benchInbound proxies b.N plaintext HTTP/1 requests to a loopback application through Inbound.ServeHTTP, with
// the given tap hub (nil: tapping disabled, the data path as it was before the hook).
func benchInbound(b *testing.B, hub *tap.Hub) {
	in, ctx, _ := newPlainInbound(b, hub, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }))
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequestWithContext(ctx, "GET", "http://app/api/vote", nil)
		w := httptest.NewRecorder()
		in.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatalf("status %d", w.Code)
		}
	}
}

func BenchmarkInboundTapDisabled(b *testing.B) { benchInbound(b, nil) }

func BenchmarkInboundTapNoTappers(b *testing.B) {
	hub, err := tap.NewHub(prometheus.NewRegistry(), tap.Local{})
	if err != nil {
		b.Fatal(err)
	}
	benchInbound(b, hub)
}

func BenchmarkInboundTapNonMatching(b *testing.B) {
	hub, err := tap.NewHub(prometheus.NewRegistry(), tap.Local{})
	if err != nil {
		b.Fatal(err)
	}
	sub := hub.Subscribe(&tapv1.ObserveRequest{Match: &tapv1.Match{Match: &tapv1.Match_Http_{Http: &tapv1.Match_Http{
		Match: &tapv1.Match_Http_PathPrefix{PathPrefix: "/nothing-here"}}}}})
	defer sub.Close()
	benchInbound(b, hub)
}
