// Package tapfmt renders tap events as the one-line text `sinew viz tap` prints, in Linkerd's tap format:
//
//	req id=7 proxy=out src=10.0.0.1:5000 dst=10.0.0.2:4143 tls=true :method=GET :authority=web:80 :path=/api
//	rsp id=7 proxy=out src=… dst=… tls=true :status=200 latency=1234µs
//	end id=7 proxy=out src=… dst=… tls=true grpc-status=OK duration=56µs response-length=42B
package tapfmt

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	tapv1 "github.com/sinewmesh/sinew/api/tap/v1"
	"google.golang.org/grpc/codes"
)

// Options change what a line shows.
type Options struct {
	// Wide appends the source's and destination's labels as src_<name>=… and dst_<name>=… (sorted by name).
	Wide bool
	// Stream, when not empty, prefixes request ids as Linkerd does for merged streams: id=<Stream>:<id>.
	Stream string
}

// Line renders one event without a trailing newline. An event with no payload renders as an "unknown" line
// rather than failing, so a newer proxy's events still show.
func Line(ev *tapv1.TapEvent, o Options) string {
	var b strings.Builder
	switch e := ev.GetEvent().(type) {
	case *tapv1.TapEvent_RequestInit_:
		r := e.RequestInit
		flow(&b, "req", r.GetId(), ev, o)
		fmt.Fprintf(&b, " :method=%s :authority=%s :path=%s", value(r.GetMethod()), value(r.GetAuthority()), value(r.GetPath()))
	case *tapv1.TapEvent_ResponseInit_:
		r := e.ResponseInit
		flow(&b, "rsp", r.GetId(), ev, o)
		fmt.Fprintf(&b, " :status=%d latency=%dµs", r.GetHttpStatus(), r.GetSinceRequestInit().AsDuration().Microseconds())
	case *tapv1.TapEvent_ResponseEnd_:
		r := e.ResponseEnd
		flow(&b, "end", r.GetId(), ev, o)
		switch {
		case r.GetResetError() != "":
			fmt.Fprintf(&b, " reset-error=%s", value(r.GetResetError()))
		case r.GrpcStatus != nil:
			fmt.Fprintf(&b, " grpc-status=%s", codes.Code(r.GetGrpcStatus()))
		}
		fmt.Fprintf(&b, " duration=%dµs response-length=%dB", r.GetSinceResponseInit().AsDuration().Microseconds(), r.GetResponseBytes())
	default:
		flow(&b, "unknown", 0, ev, o)
	}
	if o.Wide {
		labels(&b, "src_", ev.GetSourceLabels())
		labels(&b, "dst_", ev.GetDestinationLabels())
	}
	return b.String()
}

func flow(b *strings.Builder, kind string, id uint64, ev *tapv1.TapEvent, o Options) {
	proxy := "?"
	switch ev.GetDirection() {
	case tapv1.TapEvent_DIRECTION_INBOUND:
		proxy = "in"
	case tapv1.TapEvent_DIRECTION_OUTBOUND:
		proxy = "out"
	}
	tls := ev.GetTls()
	if tls == "" {
		tls = "unknown"
	}
	sid := strconv.FormatUint(id, 10)
	if o.Stream != "" {
		sid = o.Stream + ":" + sid
	}
	fmt.Fprintf(b, "%s id=%s proxy=%s src=%s dst=%s tls=%s", kind, sid, proxy, value(ev.GetSource()), value(ev.GetDestination()), value(tls))
}

func labels(b *strings.Builder, prefix string, l map[string]string) {
	for _, k := range slices.Sorted(maps.Keys(l)) {
		fmt.Fprintf(b, " %s%s=%s", prefix, k, value(l[k]))
	}
}

// value keeps a line splittable on spaces: empty values show as "", and values with spaces, quotes or control
// characters are quoted.
func value(s string) string {
	if s == "" {
		return `""`
	}
	if strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == '"' || r == 0x7f }) {
		return strconv.Quote(s)
	}
	return s
}
