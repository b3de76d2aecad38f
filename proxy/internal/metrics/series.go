package metrics

import (
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Series is the resolved request_total, response_total and response_latency_ms series of one HTTP label set (a
// Labels value), and the per-path route_* series under it (Path).
type Series struct {
	labelSet
	m *Metrics

	table  *pathTable
	paths  sync.Map // pathKey -> *PathStats; admitted pairs only, so at most MaxRoutes entries
	otherO sync.Once
	other  *PathStats
}

// labelSet is the request counter of one label set (a Series', or one of its paths') and its response metrics,
// resolved once per response class.
type labelSet struct {
	requests prometheus.Counter
	total    *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	base     []string
	byClass  sync.Map // respKey -> *Response; read on every response, written once per class
}

type respKey struct {
	status int
	grpc   int // -1 when absent
	failed bool
}

// Response is the resolved metrics of one response class.
type Response struct {
	total   prometheus.Counter
	latency prometheus.Observer
}

// Series resolves an HTTP label set. Cache the result.
func (m *Metrics) Series(l Labels) *Series {
	base := l.values()
	return &Series{
		labelSet: labelSet{requests: m.requests.WithLabelValues(base...), total: m.responses, latency: m.latency, base: base},
		m:        m,
		table:    m.pathTables[l.Direction],
	}
}

// Request counts a request.
func (s *labelSet) Request() { s.requests.Inc() }

// Response returns the counters for a response; grpcStatus is -1 when the response carried none.
func (s *labelSet) Response(status, grpcStatus int, failed bool) *Response {
	k := respKey{status, grpcStatus, failed}
	if resp, ok := s.byClass.Load(k); ok {
		return resp.(*Response)
	}
	code := strconv.Itoa(status)
	class := "success"
	if failed {
		class = "failure"
	}
	grpc := ""
	if grpcStatus >= 0 {
		grpc = strconv.Itoa(grpcStatus)
	}
	resp := &Response{
		total:   s.total.WithLabelValues(append(append([]string{}, s.base...), code, class, grpc)...),
		latency: s.latency.WithLabelValues(append(append([]string{}, s.base...), code)...),
	}
	v, _ := s.byClass.LoadOrStore(k, resp)
	return v.(*Response)
}

// ObserveLatency records time to first byte in milliseconds.
func (r *Response) ObserveLatency(ms float64) { r.latency.Observe(ms) }

// End counts the response once its stream ended.
func (r *Response) End() { r.total.Inc() }
