package cmd

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	tapv1 "github.com/sinewmesh/sinew/api/tap/v1"
	"github.com/sinewmesh/sinew/viz/server"
)

// request is the three events of one tapped request through proxy index idx.
func request(idx int, id uint64, src, dst, path string, latency time.Duration, status uint32, grpc *uint32, reset string) []server.TapEvent {
	flow := func(ev *tapv1.TapEvent) server.TapEvent {
		ev.Direction = tapv1.TapEvent_DIRECTION_OUTBOUND
		ev.SourceLabels = map[string]string{"deployment": src}
		ev.DestinationLabels = map[string]string{"deployment": dst}
		return server.TapEvent{Proxy: "ns/" + src, Index: idx, Event: ev}
	}
	return []server.TapEvent{
		flow(&tapv1.TapEvent{Event: &tapv1.TapEvent_RequestInit_{RequestInit: &tapv1.TapEvent_RequestInit{Id: id, Method: "POST", Path: path}}}),
		flow(&tapv1.TapEvent{Event: &tapv1.TapEvent_ResponseInit_{ResponseInit: &tapv1.TapEvent_ResponseInit{Id: id, HttpStatus: status, SinceRequestInit: durationpb.New(latency)}}}),
		flow(&tapv1.TapEvent{Event: &tapv1.TapEvent_ResponseEnd_{ResponseEnd: &tapv1.TapEvent_ResponseEnd{Id: id, GrpcStatus: grpc, ResetError: reset}}}),
	}
}

func TestTopAggregatesAndSortsBusiestFirst(t *testing.T) {
	ok, unknown := uint32(0), uint32(2)
	var evs []server.TapEvent
	evs = append(evs, request(0, 1, "web", "voting", "/Vote", 2*time.Millisecond, 200, &ok, "")...)
	evs = append(evs, request(0, 2, "web", "voting", "/Vote", 500*time.Microsecond, 200, &unknown, "")...)
	evs = append(evs, request(0, 3, "web", "voting", "/Vote", 3*time.Millisecond, 200, &ok, "")...)
	// Same request id from another proxy: a different request.
	evs = append(evs, request(1, 1, "web", "emoji", "/List", time.Millisecond, 503, nil, "")...)
	evs = append(evs, request(1, 2, "web", "emoji", "/List", time.Millisecond, 200, nil, "")...)
	evs = append(evs, request(1, 3, "web", "emoji", "/List", time.Millisecond, 200, nil, "stream reset")...)
	evs = append(evs, request(1, 4, "web", "emoji", "/Other", time.Millisecond, 200, nil, "")...)
	tb := newTopTable()
	for _, ev := range evs {
		tb.add(ev)
	}
	// A request still in flight does not count.
	tb.add(request(0, 9, "web", "voting", "/Vote", 0, 0, nil, "")[0])
	var b strings.Builder
	tb.write(&b, false)
	want := `SOURCE  DESTINATION  METHOD  PATH    COUNT  BEST   WORST  LAST  SUCCESS RATE
web     emoji        POST    /List   3      1ms    1ms    1ms   33.33%
web     voting       POST    /Vote   3      500µs  3ms    3ms   66.67%
web     emoji        POST    /Other  1      1ms    1ms    1ms   100.00%
`
	if b.String() != want {
		t.Errorf("top:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	tb.write(&b, true)
	if first := strings.SplitN(b.String(), "\n", 2)[0]; strings.Contains(first, "SOURCE") || !strings.HasPrefix(first, "DESTINATION") {
		t.Errorf("--hide-sources header %q", first)
	}
}

// TestTopGroupsUnmeshedSourcesByAddress: kubelet probes come from the node's address with a new ephemeral port each
// time; they are one row, not one per port. Destinations keep their port (it says which service port).
func TestTopGroupsUnmeshedSourcesByAddress(t *testing.T) {
	tb := newTopTable()
	probe := func(id uint64, src string) []server.TapEvent {
		evs := request(0, id, "", "web", "/ready", time.Millisecond, 200, nil, "")
		for _, ev := range evs {
			ev.Event.Source, ev.Event.SourceLabels = src, nil
			ev.Event.Destination, ev.Event.DestinationLabels = "10.244.0.7:8080", nil
		}
		return evs
	}
	for i, src := range []string{"10.244.0.1:51234", "10.244.0.1:51240", "10.244.0.1:51302", "[fd00::1]:40000", "[fd00::1]:40002"} {
		for _, ev := range probe(uint64(i+1), src) {
			tb.add(ev)
		}
	}
	var b strings.Builder
	tb.write(&b, false)
	want := `SOURCE      DESTINATION      METHOD  PATH    COUNT  BEST  WORST  LAST  SUCCESS RATE
10.244.0.1  10.244.0.7:8080  POST    /ready  3      1ms   1ms    1ms   100.00%
fd00::1     10.244.0.7:8080  POST    /ready  2      1ms   1ms    1ms   100.00%
`
	if b.String() != want {
		t.Errorf("top:\n%s\nwant:\n%s", b.String(), want)
	}
}
