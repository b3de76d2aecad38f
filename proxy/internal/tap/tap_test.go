package tap

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	tapv1 "github.com/sinewmesh/sinew/api/tap/v1"
)

func newHub(t testing.TB) *Hub {
	t.Helper()
	h, err := NewHub(prometheus.NewRegistry(), Local{ID: "spiffe://td/ns/a/sa/b", Labels: map[string]string{"namespace": "a"}})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// meta is a request for target (path, and query after a '?') as the data path describes it.
func meta(target string) func() *Meta {
	path, query, _ := strings.Cut(target, "?")
	return func() *Meta {
		return &Meta{
			Source: "10.0.0.1:5000", SourceLabels: map[string]string{"namespace": "emojivoto", "serviceaccount": "web"},
			Destination: "127.0.0.1:8080", DestinationLabels: map[string]string{"namespace": "emojivoto", "workload": "voting"},
			TLS: "true", Scheme: "http", Method: "GET", Authority: "voting.emojivoto:8080", Path: path, RawQuery: query,
			Header: http.Header{"Authorization": {"secret"}, "X-Req": {"1"}},
		}
	}
}

func httpMatch(h *tapv1.Match_Http) *tapv1.Match {
	return &tapv1.Match{Match: &tapv1.Match_Http_{Http: h}}
}
func prefix(p string) *tapv1.Match {
	return httpMatch(&tapv1.Match_Http{Match: &tapv1.Match_Http_PathPrefix{PathPrefix: p}})
}
func method(m string) *tapv1.Match {
	return httpMatch(&tapv1.Match_Http{Match: &tapv1.Match_Http_Method{Method: m}})
}
func all(ms ...*tapv1.Match) *tapv1.Match {
	return &tapv1.Match{Match: &tapv1.Match_All_{All: &tapv1.Match_All{Matches: ms}}}
}
func anyOf(ms ...*tapv1.Match) *tapv1.Match {
	return &tapv1.Match{Match: &tapv1.Match_Any_{Any: &tapv1.Match_Any{Matches: ms}}}
}
func not(m *tapv1.Match) *tapv1.Match { return &tapv1.Match{Match: &tapv1.Match_Not{Not: m}} }
func src(l map[string]string) *tapv1.Match {
	return &tapv1.Match{Match: &tapv1.Match_Source{Source: &tapv1.Match_Labels{Labels: l}}}
}
func dst(l map[string]string) *tapv1.Match {
	return &tapv1.Match{Match: &tapv1.Match_Destination{Destination: &tapv1.Match_Labels{Labels: l}}}
}

func TestMatch(t *testing.T) {
	r := meta("/api/vote?x=1")()
	cases := []struct {
		name string
		m    *tapv1.Match
		want bool
	}{
		{"nil matches all", nil, true},
		{"prefix", prefix("/api"), true},
		{"other prefix", prefix("/web"), false},
		{"prefix matches the path only", prefix("/api/vote?x"), false},
		{"method case-insensitive", method("get"), true},
		{"method other", method("POST"), false},
		{"scheme", httpMatch(&tapv1.Match_Http{Match: &tapv1.Match_Http_Scheme{Scheme: "HTTP"}}), true},
		{"authority", httpMatch(&tapv1.Match_Http{Match: &tapv1.Match_Http_Authority{Authority: "voting.emojivoto:8080"}}), true},
		{"authority other", httpMatch(&tapv1.Match_Http{Match: &tapv1.Match_Http_Authority{Authority: "voting.emojivoto"}}), false},
		{"all", all(prefix("/api"), method("GET")), true},
		{"all one fails", all(prefix("/api"), method("POST")), false},
		{"empty all", all(), true},
		{"any", anyOf(prefix("/web"), method("GET")), true},
		{"any none", anyOf(prefix("/web"), method("POST")), false},
		{"empty any", anyOf(), false},
		{"not", not(prefix("/web")), true},
		{"src labels", src(map[string]string{"namespace": "emojivoto", "serviceaccount": "web"}), true},
		{"src label differs", src(map[string]string{"serviceaccount": "vote-bot"}), false},
		{"src label missing", src(map[string]string{"pod": "x"}), false},
		{"dst labels", dst(map[string]string{"workload": "voting"}), true},
		{"empty labels", dst(nil), true},
	}
	for _, c := range cases {
		if got := matches(c.m, r); got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
}

func TestValidate(t *testing.T) {
	bad := []*tapv1.Match{
		{},
		httpMatch(&tapv1.Match_Http{}),
		all(prefix("/"), &tapv1.Match{}),
		not(nil),
	}
	for i, m := range bad {
		if err := validate(m, 0); err == nil {
			t.Errorf("%d: %v accepted", i, m)
		}
	}
	deep := prefix("/")
	for range maxMatchDepth + 1 {
		deep = not(deep)
	}
	if err := validate(deep, 0); err == nil {
		t.Error("deep nesting accepted")
	}
	if err := validate(all(prefix("/"), not(method("GET")), src(nil)), 0); err != nil {
		t.Error(err)
	}
}

func recv(t *testing.T, tp *tapper) *tapv1.TapEvent {
	t.Helper()
	select {
	case ev := <-tp.events:
		return ev
	default:
		t.Fatal("no event queued")
		return nil
	}
}

func TestEventsPairAndLimit(t *testing.T) {
	h := newHub(t)
	if h.Active() || h.Start(meta("/")) != nil {
		t.Fatal("idle hub took a request")
	}
	tp := newTapper(&tapv1.ObserveRequest{Limit: 2, Match: prefix("/api")})
	h.add(tp)
	if !h.Active() {
		t.Fatal("hub with a tapper not active")
	}
	if h.Start(meta("/web")) != nil {
		t.Fatal("non-matching request taken")
	}
	r1, r2 := h.Start(meta("/api/1")), h.Start(meta("/api/2"))
	if r1 == nil || r2 == nil || r1.id == r2.id {
		t.Fatalf("requests not taken with distinct ids: %v %v", r1, r2)
	}
	if h.Start(meta("/api/3")) != nil {
		t.Fatal("request over the limit taken")
	}
	ev := recv(t, tp)
	ri := ev.GetRequestInit()
	if ri.GetId() != r1.id || ri.GetPath() != "/api/1" || ev.GetTls() != "true" || ev.GetDirection() != tapv1.TapEvent_DIRECTION_OUTBOUND {
		t.Fatalf("request init: %v", ev)
	}
	for _, hd := range ri.GetHeaders() {
		if hd.Name == "authorization" && hd.Value != "<redacted>" {
			t.Fatalf("authorization header leaked: %v", hd)
		}
	}
	recv(t, tp) // r2's init
	r1.Response(200, http.Header{})
	r1.End(-1, 42, "")
	select {
	case <-tp.done:
		t.Fatal("stream done while a taken request is in flight")
	default:
	}
	r2.Response(200, nil)
	g := 7
	r2.End(g, 3, "")
	select {
	case <-tp.done: // End closes it before returning
	default:
		t.Fatal("stream not done after the limit's last request ended")
	}
	if e := recv(t, tp).GetResponseInit(); e.GetId() != r1.id || e.GetHttpStatus() != 200 {
		t.Fatalf("response init: %v", e)
	}
	if e := recv(t, tp).GetResponseEnd(); e.GetId() != r1.id || e.GetResponseBytes() != 42 || e.GrpcStatus != nil {
		t.Fatalf("response end: %v", e)
	}
	recv(t, tp)
	if e := recv(t, tp).GetResponseEnd(); e.GetId() != r2.id || e.GetGrpcStatus() != 7 || e.GrpcStatus == nil {
		t.Fatalf("response end with grpc status: %v", e)
	}
	h.remove(tp)
	if h.Active() {
		t.Fatal("hub active after its last tapper left")
	}
}

// TestRequestInitPathKeepsTheQuery: the event's :path is what the client sent, query included, while path_prefix
// matches the path alone.
func TestRequestInitPathKeepsTheQuery(t *testing.T) {
	h := newHub(t)
	tp := newTapper(&tapv1.ObserveRequest{Match: prefix("/api/vote")})
	h.add(tp)
	for _, target := range []string{"/api/vote?choice=:doughnut:&x=1", "/api/vote"} {
		r := h.Start(meta(target))
		if r == nil {
			t.Fatalf("%s not taken by a path prefix of its path", target)
		}
		if got := recv(t, tp).GetRequestInit().GetPath(); got != target {
			t.Errorf("request init path %q, want %q", got, target)
		}
		r.End(-1, 0, "")
		recv(t, tp)
	}
}

func TestSeveralTappersEachTheirOwn(t *testing.T) {
	h := newHub(t)
	a := newTapper(&tapv1.ObserveRequest{Match: prefix("/a")})
	b := newTapper(&tapv1.ObserveRequest{Limit: 1})
	h.add(a)
	h.add(b)
	h.Start(meta("/a")).End(-1, 0, "")
	h.Start(meta("/b")) // only b would match, but b's limit is used up
	if len(a.events) != 2 || len(b.events) != 2 {
		t.Fatalf("a got %d events, b %d; want 2 and 2", len(a.events), len(b.events))
	}
	h.remove(b)
	if r := h.Start(meta("/a")); r == nil || len(r.tappers) != 1 || r.tappers[0] != a {
		t.Fatal("remaining tapper not served")
	}
}

func TestSlowTapperDropsNeverBlocks(t *testing.T) {
	h := newHub(t)
	tp := newTapper(&tapv1.ObserveRequest{})
	h.add(tp)
	done := make(chan struct{})
	go func() {
		for range queueSize + 100 {
			h.Start(meta("/")).End(-1, 0, "")
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("data path blocked on a tapper that does not read")
	}
	if got := counter(t, h, "slow_client"); got != float64(2*(queueSize+100)-queueSize) {
		t.Fatalf("dropped %v", got)
	}
}

func TestRateLimit(t *testing.T) {
	h := newHub(t)
	tp := newTapper(&tapv1.ObserveRequest{MaxRps: 2})
	h.add(tp)
	taken := 0
	for range 10 {
		if h.Start(meta("/")) != nil {
			taken++
		}
	}
	// The bucket holds max(1, max_rps) tokens; ten back-to-back requests refill well under one more.
	if taken != 2 {
		t.Fatalf("took %d of 10 back-to-back requests at max_rps=2, want 2", taken)
	}
	if got := counter(t, h, "rate_limited"); got != 8 {
		t.Fatalf("rate_limited %v, want 8", got)
	}
	tp.mu.Lock()
	tp.last = tp.last.Add(-time.Second) // as if a second passed
	tp.mu.Unlock()
	if h.Start(meta("/")) == nil {
		t.Fatal("bucket did not refill")
	}
}

func counter(t *testing.T, h *Hub, reason string) float64 {
	t.Helper()
	var m dto.Metric
	if err := h.dropped.WithLabelValues(reason).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
