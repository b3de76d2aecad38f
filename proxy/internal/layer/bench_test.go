package layer

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sinewmesh/sinew/proxy/internal/budget"
	"github.com/sinewmesh/sinew/proxy/internal/pipeline"
	"github.com/sinewmesh/sinew/proxy/internal/policy"
)

// BenchmarkOutboundLayers is the cost of the outbound layers above the balancer (route, filters, timeout,
// retry, split) for a target with the default policy and nothing to retry: what every request pays.
func BenchmarkOutboundLayers(b *testing.B) {
	pols, err := policy.NewClient(nil, "test/bench", nil, prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	resp := &http.Response{StatusCode: 200, Header: http.Header{}, Body: http.NoBody}
	end := pipeline.HandlerFunc(func(*pipeline.Request) (*http.Response, error) { return resp, nil })
	h := pipeline.Chain(end, Route(pols, time.Second), Filters(nil), Timeout(), Retry(budget.New(0.2, 10, 10*time.Second)), Split(nil))
	r := httptest.NewRequest("GET", "http://web.emojivoto.svc.cluster.local:80/api/list", nil)
	out := &pipeline.OutboundConn{Target: "web.emojivoto.svc.cluster.local:80"}
	b.ReportAllocs()
	for b.Loop() {
		req := pipeline.Request{Client: r, HTTP: r, Out: out}
		if _, err := h.Handle(&req); err != nil {
			b.Fatal(err)
		}
	}
}
