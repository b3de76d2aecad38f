package tap

import (
	"testing"

	tapv1 "github.com/sinewmesh/sinew/api/tap/v1"
)

// The data path's hook is `if hub.Active() { req = hub.Start(meta) }`. These measure it alone; the forward
// package's BenchmarkInboundTap measures it inside a proxied request.

var sink *Request

func BenchmarkHookAbsent(b *testing.B) {
	for b.Loop() {
		sink = nil
	}
}

func BenchmarkHookNoTappers(b *testing.B) {
	h := newHub(b)
	m := meta("/")
	for b.Loop() {
		if h.Active() {
			sink = h.Start(m)
		}
	}
}

func BenchmarkHookNonMatchingTapper(b *testing.B) {
	h := newHub(b)
	h.Subscribe(&tapv1.ObserveRequest{Match: prefix("/nothing-here")})
	pre := meta("/")() // built once: this measures the hub and the filter, not building the description
	m := func() *Meta { return pre }
	for b.Loop() {
		if h.Active() {
			sink = h.Start(m)
		}
	}
}

// BenchmarkHookSlowTapper is a tapped request whose tapper does not read: its queue is full, so each of the
// request's events is dropped and counted on the data path.
func BenchmarkHookSlowTapper(b *testing.B) {
	h := newHub(b)
	sub := h.Subscribe(&tapv1.ObserveRequest{})
	defer sub.Close()
	for len(sub.t.events) < queueSize {
		sub.t.events <- nil
	}
	pre := meta("/")()
	m := func() *Meta { return pre }
	b.ReportAllocs()
	for b.Loop() {
		if h.Active() {
			r := h.Start(m)
			r.Response(200, nil)
			r.End(-1, 0, "")
		}
	}
}
