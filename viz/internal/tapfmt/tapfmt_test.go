package tapfmt

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	tapv1 "github.com/sinewmesh/sinew/api/tap/v1"
	"github.com/sinewmesh/sinew/internal/golden"
	"google.golang.org/protobuf/types/known/durationpb"
)

func flowEv(dir tapv1.TapEvent_Direction, tls string) *tapv1.TapEvent {
	return &tapv1.TapEvent{
		Source: "127.0.0.1:50412", SourceLabels: map[string]string{"namespace": "emojivoto", "workload": "web"},
		Destination: "10.42.0.7:4143", DestinationLabels: map[string]string{"namespace": "emojivoto", "serviceaccount": "voting", "deployment": "voting"},
		Direction: dir, Tls: tls,
		ClientId: "spiffe://cluster.local/ns/emojivoto/sa/web", ServerId: "spiffe://cluster.local/ns/emojivoto/sa/voting",
	}
}

func events() []*tapv1.TapEvent {
	g := func(n uint32) *uint32 { return &n }
	req := flowEv(tapv1.TapEvent_DIRECTION_OUTBOUND, "true")
	req.Event = &tapv1.TapEvent_RequestInit_{RequestInit: &tapv1.TapEvent_RequestInit{Id: 7, Method: "POST", Scheme: "http",
		Authority: "voting-svc.emojivoto:8080", Path: "/emojivoto.v1.VotingService/VoteDoughnut"}}
	rsp := flowEv(tapv1.TapEvent_DIRECTION_OUTBOUND, "true")
	rsp.Event = &tapv1.TapEvent_ResponseInit_{ResponseInit: &tapv1.TapEvent_ResponseInit{Id: 7, HttpStatus: 200,
		SinceRequestInit: durationpb.New(1234567 * time.Nanosecond)}}
	end := flowEv(tapv1.TapEvent_DIRECTION_OUTBOUND, "true")
	end.Event = &tapv1.TapEvent_ResponseEnd_{ResponseEnd: &tapv1.TapEvent_ResponseEnd{Id: 7, GrpcStatus: g(2), ResponseBytes: 5,
		SinceRequestInit: durationpb.New(1300 * time.Microsecond), SinceResponseInit: durationpb.New(56 * time.Microsecond)}}
	inReq := flowEv(tapv1.TapEvent_DIRECTION_INBOUND, "no_identity")
	inReq.Event = &tapv1.TapEvent_RequestInit_{RequestInit: &tapv1.TapEvent_RequestInit{Id: 8, Method: "GET", Authority: "web",
		Path: "/a path"}}
	inEnd := flowEv(tapv1.TapEvent_DIRECTION_INBOUND, "no_identity")
	inEnd.Event = &tapv1.TapEvent_ResponseEnd_{ResponseEnd: &tapv1.TapEvent_ResponseEnd{Id: 8, ResponseBytes: 1024,
		SinceResponseInit: durationpb.New(3 * time.Millisecond)}}
	reset := flowEv(tapv1.TapEvent_DIRECTION_INBOUND, "true")
	reset.Event = &tapv1.TapEvent_ResponseEnd_{ResponseEnd: &tapv1.TapEvent_ResponseEnd{Id: 9, GrpcStatus: g(0),
		ResetError: "stream error: CANCEL", SinceResponseInit: durationpb.New(10 * time.Microsecond)}}
	empty := &tapv1.TapEvent{}
	return []*tapv1.TapEvent{req, rsp, end, inReq, inEnd, reset, empty}
}

func TestGolden(t *testing.T) {
	for _, c := range []struct {
		file string
		o    Options
	}{{"tap.golden", Options{}}, {"tap-wide.golden", Options{Wide: true}}, {"tap-stream.golden", Options{Stream: "2"}}} {
		var b strings.Builder
		for _, ev := range events() {
			b.WriteString(Line(ev, c.o) + "\n")
		}
		golden.Check(t, filepath.Join("testdata", c.file), []byte(b.String()))
	}
}
