package forward

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sinewmesh/sinew/proxy/internal/discovery"
	"github.com/sinewmesh/sinew/proxy/internal/metrics"
)

type noResolver struct{}

func (noResolver) Get(string) *discovery.Target { panic("not used") }

func TestSweepForgetsIdlePassthroughEndpoints(t *testing.T) {
	t.Parallel()
	m, err := metrics.New(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	o := NewOutbound(Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: m, Resolver: noResolver{}},
		Timeouts{Detect: time.Second, Connect: time.Second, Discovery: time.Second, Handshake: time.Second}, nil)
	old := o.passthroughEndpoint("192.0.2.1:443")
	o.passthroughEndpoint("192.0.2.2:443")
	old.lastUsed.Store(time.Now().Add(-time.Hour).UnixNano())

	o.Sweep(10 * time.Minute)
	if _, ok := o.passthrough.Load("192.0.2.1:443"); ok {
		t.Fatal("idle pass-through endpoint kept")
	}
	if _, ok := o.passthrough.Load("192.0.2.2:443"); !ok {
		t.Fatal("recently used pass-through endpoint dropped")
	}
	// Used again after the sweep: recreated on demand.
	if e := o.passthroughEndpoint("192.0.2.1:443"); e == old || e.info.Addr != "192.0.2.1:443" {
		t.Fatal("pass-through endpoint not recreated")
	}
}
