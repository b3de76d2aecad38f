package layer

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sinewmesh/sinew/proxy/internal/endpoint"
	"github.com/sinewmesh/sinew/proxy/internal/metrics"
)

func TestSweepForgetsIdlePassthroughEndpoints(t *testing.T) {
	t.Parallel()
	m, err := metrics.New(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	d := endpoint.NewDialer(nil, nil, time.Second)
	eps := &Endpoints{Metrics: m, Dialer: d, Plain: endpoint.NewPlain(d), Discovery: time.Second}
	old := eps.Passthrough("192.0.2.1:443")
	eps.Passthrough("192.0.2.2:443")

	eps.Sweep(0) // everything used before now is idle
	if _, ok := eps.passthrough.Load("192.0.2.1:443"); ok {
		t.Fatal("idle pass-through endpoint kept")
	}
	recent := eps.Passthrough("192.0.2.2:443")
	eps.Sweep(time.Hour)
	if _, ok := eps.passthrough.Load("192.0.2.2:443"); !ok {
		t.Fatal("recently used pass-through endpoint dropped")
	}
	// Used again after the sweep: recreated on demand.
	if e := eps.Passthrough("192.0.2.1:443"); e == old || e.Info.Addr != "192.0.2.1:443" || recent.Info.Addr != "192.0.2.2:443" {
		t.Fatal("pass-through endpoint not recreated")
	}
}
