// Package tap lets authorized clients watch live requests through this proxy. The data path calls Hub.Start for
// every HTTP request; with nobody tapping that is one atomic load. Each tapper has its own filter, request limit,
// rate limit and bounded queue: a tapper that reads slowly loses events (counted), it never slows traffic.
package tap

import (
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	tapv1 "github.com/sinewmesh/sinew/api/tap/v1"
	"google.golang.org/protobuf/types/known/durationpb"
)

// queueSize bounds the events waiting for one tapper.
const queueSize = 512

// Hub connects the data path to the tappers.
type Hub struct {
	tappers atomic.Pointer[[]*tapper] // nil when nobody taps
	mu      sync.Mutex                // serializes changes to tappers
	nextID  atomic.Uint64
	dropped *prometheus.CounterVec
	// dropped's two series, resolved once: drops are counted on the data path.
	slowClient, rateLimited prometheus.Counter
	local                   Local
}

// Local describes this proxy's workload, for the events' source (outbound) or destination (inbound) side.
type Local struct {
	ID     string            // this proxy's SPIFFE identity
	Labels map[string]string // e.g. namespace, workload
}

// NewHub registers the tap counters on reg.
func NewHub(reg prometheus.Registerer, local Local) (*Hub, error) {
	h := &Hub{local: local, dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tap_dropped_total",
		Help: "Tap events or requests not delivered to a tapper: reason=slow_client (queue full) or rate_limited (max_rps).",
	}, []string{"reason"})}
	if err := reg.Register(h.dropped); err != nil {
		return nil, err
	}
	h.slowClient, h.rateLimited = h.dropped.WithLabelValues("slow_client"), h.dropped.WithLabelValues("rate_limited")
	return h, nil
}

// Local is what NewHub was given.
func (h *Hub) Local() Local { return h.local }

// Active reports whether anyone taps. It is the only cost on the data path when nobody does.
func (h *Hub) Active() bool { return h != nil && h.tappers.Load() != nil }

// Meta is what the data path knows of a request when it starts.
type Meta struct {
	Inbound           bool
	Source            string
	SourceLabels      map[string]string
	Destination       string
	DestinationLabels map[string]string
	TLS               string
	ClientID          string
	ServerID          string
	Scheme            string
	Method            string
	Authority         string
	Path              string // without the query: what path_prefix matches
	RawQuery          string // without the '?'; the events' :path carries it
	Header            http.Header
}

// pathAndQuery is the request's :path as the client sent it, query included.
func (m *Meta) pathAndQuery() string {
	if m.RawQuery == "" {
		return m.Path
	}
	return m.Path + "?" + m.RawQuery
}

// Request is one tapped request; nil (no tapper wanted it) is valid and does nothing.
type Request struct {
	h       *Hub
	id      uint64
	start   time.Time
	rspAt   time.Time
	meta    *Meta // the peer fields of every event come from it
	tappers []*tapper
}

// Start offers a request to the tappers. It returns nil when none takes it. meta is called only when someone
// taps, so building it costs nothing otherwise.
func (h *Hub) Start(meta func() *Meta) *Request {
	if h == nil {
		return nil
	}
	ts := h.tappers.Load()
	if ts == nil {
		return nil
	}
	m := meta()
	var taken []*tapper
	for _, t := range *ts {
		if t.match(m) && t.take(h) {
			taken = append(taken, t)
		}
	}
	if len(taken) == 0 {
		return nil
	}
	r := &Request{h: h, id: h.nextID.Add(1), start: time.Now(), meta: m, tappers: taken}
	ev := r.event()
	ev.Event = &tapv1.TapEvent_RequestInit_{RequestInit: &tapv1.TapEvent_RequestInit{
		Id: r.id, Method: m.Method, Scheme: m.Scheme, Authority: m.Authority, Path: m.pathAndQuery(), Headers: headers(m.Header),
	}}
	r.send(ev)
	return r
}

// event is a new event of the request with its peer fields set.
func (r *Request) event() *tapv1.TapEvent {
	m := r.meta
	dir := tapv1.TapEvent_DIRECTION_OUTBOUND
	if m.Inbound {
		dir = tapv1.TapEvent_DIRECTION_INBOUND
	}
	return &tapv1.TapEvent{
		Source: m.Source, SourceLabels: m.SourceLabels, Destination: m.Destination, DestinationLabels: m.DestinationLabels,
		Direction: dir, Tls: m.TLS, ClientId: m.ClientID, ServerId: m.ServerID,
	}
}

func (r *Request) send(ev *tapv1.TapEvent) {
	for _, t := range r.tappers {
		select {
		case t.events <- ev:
		default:
			r.h.slowClient.Inc()
		}
	}
}

// Response reports the response headers. Call at most once, before End.
func (r *Request) Response(status int, hdr http.Header) {
	if r == nil {
		return
	}
	r.rspAt = time.Now()
	ev := r.event()
	ev.Event = &tapv1.TapEvent_ResponseInit_{ResponseInit: &tapv1.TapEvent_ResponseInit{
		Id: r.id, SinceRequestInit: durationpb.New(r.rspAt.Sub(r.start)), HttpStatus: uint32(status), Headers: headers(hdr),
	}}
	r.send(ev)
}

// End reports the end of the response stream: grpcStatus < 0 when there was none, resetErr non-empty when the
// stream failed. Call exactly once.
func (r *Request) End(grpcStatus int, bytes uint64, resetErr string) {
	if r == nil {
		return
	}
	now := time.Now()
	end := &tapv1.TapEvent_ResponseEnd{Id: r.id, SinceRequestInit: durationpb.New(now.Sub(r.start)), ResponseBytes: bytes, ResetError: resetErr}
	if !r.rspAt.IsZero() {
		end.SinceResponseInit = durationpb.New(now.Sub(r.rspAt))
	}
	if grpcStatus >= 0 {
		g := uint32(grpcStatus)
		end.GrpcStatus = &g
	}
	ev := r.event()
	ev.Event = &tapv1.TapEvent_ResponseEnd_{ResponseEnd: end}
	r.send(ev)
	for _, t := range r.tappers {
		t.finished()
	}
}

// sensitive headers are reported by name only.
var sensitive = map[string]bool{"Authorization": true, "Proxy-Authorization": true, "Cookie": true, "Set-Cookie": true}

func headers(h http.Header) []*tapv1.TapEvent_Header {
	out := make([]*tapv1.TapEvent_Header, 0, len(h))
	for k, vs := range h {
		for _, v := range vs {
			if sensitive[http.CanonicalHeaderKey(k)] {
				v = "<redacted>"
			}
			out = append(out, &tapv1.TapEvent_Header{Name: strings.ToLower(k), Value: v})
		}
	}
	return out
}

// Subscription is one tapper's view of the hub.
type Subscription struct {
	h *Hub
	t *tapper
}

// Subscribe adds a tapper for req (whose match must be valid; see the server) until Close.
func (h *Hub) Subscribe(req *tapv1.ObserveRequest) *Subscription {
	t := newTapper(req)
	h.add(t)
	return &Subscription{h: h, t: t}
}

// Events delivers the tapper's events.
func (s *Subscription) Events() <-chan *tapv1.TapEvent { return s.t.events }

// Done is closed once the limit is reached and every request taken has ended.
func (s *Subscription) Done() <-chan struct{} { return s.t.done }

// Close removes the tapper.
func (s *Subscription) Close() { s.h.remove(s.t) }

// add and remove change the tapper list copy-on-write; the data path never locks.
func (h *Hub) add(t *tapper) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var next []*tapper
	if cur := h.tappers.Load(); cur != nil {
		next = append(next, *cur...)
	}
	next = append(next, t)
	h.tappers.Store(&next)
}

func (h *Hub) remove(t *tapper) {
	h.mu.Lock()
	defer h.mu.Unlock()
	cur := h.tappers.Load()
	if cur == nil {
		return
	}
	var next []*tapper
	for _, x := range *cur {
		if x != t {
			next = append(next, x)
		}
	}
	if len(next) == 0 {
		h.tappers.Store(nil)
	} else {
		h.tappers.Store(&next)
	}
}

// tapper is one Observe stream.
type tapper struct {
	m      *tapv1.Match
	events chan *tapv1.TapEvent
	done   chan struct{} // closed when the limit is reached and every taken request has ended

	mu       sync.Mutex
	limit    uint32 // 0: none
	taken    uint32
	inflight int
	closed   bool
	rps      float64 // 0: unlimited
	tokens   float64
	last     time.Time
}

func newTapper(req *tapv1.ObserveRequest) *tapper {
	burst := max(1, req.GetMaxRps())
	return &tapper{
		m: req.GetMatch(), events: make(chan *tapv1.TapEvent, queueSize), done: make(chan struct{}),
		limit: req.GetLimit(), rps: req.GetMaxRps(), tokens: burst, last: time.Now(),
	}
}

// take decides whether this tapper observes one more request: under its limit and within its rate.
func (t *tapper) take(h *Hub) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed || (t.limit > 0 && t.taken >= t.limit) {
		return false
	}
	if t.rps > 0 {
		now := time.Now()
		t.tokens = min(max(1, t.rps), t.tokens+now.Sub(t.last).Seconds()*t.rps)
		t.last = now
		if t.tokens < 1 {
			h.rateLimited.Inc()
			return false
		}
		t.tokens--
	}
	t.taken++
	t.inflight++
	return true
}

func (t *tapper) finished() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.inflight--
	if t.limit > 0 && t.taken >= t.limit && t.inflight == 0 && !t.closed {
		t.closed = true
		close(t.done)
	}
}
