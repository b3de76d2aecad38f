package tapsvc

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"math/big"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	tapv1 "github.com/sinewmesh/sinew/api/tap/v1"
	"github.com/sinewmesh/sinew/controlplane"
	"github.com/sinewmesh/sinew/internal/meshtls"
	"github.com/sinewmesh/sinew/viz/metricsapi"
)

const td = "cluster.local"

var tapID = meshtls.ID(td, "sinew-viz", "tap")

// testCA issues mesh certificates for the test's proxies and tapper.
type testCA struct {
	anchors *x509.CertPool
	issuer  *x509.Certificate
	key     any
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	anchorsPEM, issuerPEM, keyPEM, err := controlplane.GenerateCA(td)
	if err != nil {
		t.Fatal(err)
	}
	anchors, err := meshtls.ParseAnchors(anchorsPEM)
	if err != nil {
		t.Fatal(err)
	}
	issuer, err := meshtls.ParseCertificates(issuerPEM)
	if err != nil {
		t.Fatal(err)
	}
	key, err := meshtls.ParseKey(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{anchors: anchors, issuer: issuer[0], key: key}
}

func (ca *testCA) leaf(t *testing.T, id string) *tls.Certificate {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(id)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), NotBefore: time.Now().Add(-time.Minute),
		NotAfter: time.Now().Add(time.Hour), URIs: []*url.URL{u}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.issuer, &k.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der, ca.issuer.Raw}, PrivateKey: k}
}

// fakeProxy serves tap.v1 over mesh mTLS like a proxy: it lets only the tap identity in and, once start is closed
// (nil: at once), streams `requests` complete requests (up to the asked limit), then waits for the client to leave.
type fakeProxy struct {
	tapv1.UnimplementedTapServer
	requests int
	start    <-chan struct{}
	mu       sync.Mutex
	got      *tapv1.ObserveRequest
}

func (p *fakeProxy) Observe(req *tapv1.ObserveRequest, stream grpc.ServerStreamingServer[tapv1.TapEvent]) error {
	pr, _ := peer.FromContext(stream.Context())
	ti := pr.AuthInfo.(credentials.TLSInfo)
	if id := meshtls.PeerID(ti.State.PeerCertificates[0]); id != tapID {
		return status.Errorf(codes.PermissionDenied, "identity %q may not tap this proxy", id)
	}
	p.mu.Lock()
	p.got = req
	p.mu.Unlock()
	if p.start != nil {
		select {
		case <-p.start:
		case <-stream.Context().Done():
			return stream.Context().Err()
		}
	}
	n := p.requests
	if req.GetLimit() > 0 && int(req.GetLimit()) < n {
		n = int(req.GetLimit())
	}
	for id := uint64(1); id <= uint64(n); id++ {
		for _, ev := range []*tapv1.TapEvent{
			{Direction: tapv1.TapEvent_DIRECTION_INBOUND, Tls: "true", DestinationLabels: map[string]string{"workload": "x"},
				Event: &tapv1.TapEvent_RequestInit_{RequestInit: &tapv1.TapEvent_RequestInit{Id: id, Method: "GET", Path: "/"}}},
			{Direction: tapv1.TapEvent_DIRECTION_INBOUND, Tls: "true", Event: &tapv1.TapEvent_ResponseInit_{ResponseInit: &tapv1.TapEvent_ResponseInit{Id: id, HttpStatus: 200}}},
			{Direction: tapv1.TapEvent_DIRECTION_INBOUND, Tls: "true", Event: &tapv1.TapEvent_ResponseEnd_{ResponseEnd: &tapv1.TapEvent_ResponseEnd{Id: id}}},
		} {
			if err := stream.Send(ev); err != nil {
				return err
			}
		}
	}
	if req.GetLimit() > 0 {
		return nil
	}
	<-stream.Context().Done()
	return nil
}

func (p *fakeProxy) request() *tapv1.ObserveRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.got
}

func serveProxy(t *testing.T, ca *testCA, id string, p *fakeProxy) string {
	t.Helper()
	cert := ca.leaf(t, id)
	g := grpc.NewServer(grpc.Creds(credentials.NewTLS(meshtls.ServerConfig(ca.anchors, func() *tls.Certificate { return cert }, true, "h2"))))
	tapv1.RegisterTapServer(g, p)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(ln) }()
	t.Cleanup(g.Stop)
	return ln.Addr().String()
}

func TestTapMergesProxiesAndReportsTheOnesThatFail(t *testing.T) {
	ca := newTestCA(t)
	// The tap ends as soon as the limit is reached, and a proxy's failure that comes later is not reported (nor
	// waited for). So the healthy proxies hold their requests back until the failing one has been reported.
	webCFailed := make(chan struct{})
	a, b := &fakeProxy{requests: 5, start: webCFailed}, &fakeProxy{requests: 5, start: webCFailed}
	webA := Target{Namespace: "emojivoto", Deployment: "web", Pod: "web-a", Identity: meshtls.ID(td, "emojivoto", "web")}
	webB, liar, refuser := webA, webA, webA
	webB.Pod, liar.Pod, refuser.Pod = "web-b", "web-c", "web-d"
	webA.Addr = serveProxy(t, ca, webA.Identity, a)
	webB.Addr = serveProxy(t, ca, webB.Identity, b)
	// web-c answers with another workload's certificate: the tap service must not trust it.
	liar.Addr = serveProxy(t, ca, meshtls.ID(td, "emojivoto", "voting"), &fakeProxy{requests: 5})
	// web-d refuses the tapper, as a proxy configured with other authorized identities does.
	refuser.Addr = serveProxy(t, ca, refuser.Identity, &fakeProxy{requests: 5})
	other := Target{Namespace: "emojivoto", Deployment: "voting", Pod: "voting-a", Addr: "127.0.0.1:1", Identity: "x"}

	tapCert := ca.leaf(t, tapID)
	svc := New(Static{webA, webB, liar, other}, ca.anchors, func() *tls.Certificate { return tapCert }, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req := Request{Resource: metricsapi.Resource{Kind: metricsapi.KindDeployment, Namespace: "emojivoto", Name: "web"},
		To: &metricsapi.Resource{Kind: metricsapi.KindDeployment, Namespace: "emojivoto", Name: "voting"}, Path: "/api", MaxRPS: 30, Limit: 4}
	var lines []Line
	err := svc.Tap(ctx, req, func(l Line) error {
		lines = append(lines, l)
		if l.Err != nil && l.Proxy == "emojivoto/web-c" {
			close(webCFailed)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	requests, ends, failures := 0, 0, map[string]string{}
	for _, l := range lines {
		if l.Err != nil {
			failures[l.Proxy] = l.Err.Error()
			continue
		}
		switch l.Event.GetEvent().(type) {
		case *tapv1.TapEvent_RequestInit_:
			requests++
			if got := l.Event.GetDestinationLabels(); got["deployment"] != "web" || got["pod"] != l.Proxy[len("emojivoto/"):] || got["workload"] != "" {
				t.Errorf("inbound event of %s: destination labels %v, want the tapped pod's deployment and pod", l.Proxy, got)
			}
		case *tapv1.TapEvent_ResponseEnd_:
			ends++
		}
	}
	if requests != 4 || ends != 4 {
		t.Errorf("limit 4 across proxies: %d requests started and %d ended, want 4 and 4", requests, ends)
	}
	if msg := failures["emojivoto/web-c"]; !strings.Contains(msg, "cannot reach") && !strings.Contains(msg, "identity") {
		t.Errorf("the proxy with the wrong identity: %q, want a TLS identity failure", msg)
	}
	if _, ok := failures["emojivoto/voting-a"]; ok {
		t.Errorf("voting was tapped, but only deploy/web was asked for")
	}
	asked := 0
	for _, p := range []*fakeProxy{a, b} {
		got := p.request()
		if got == nil {
			continue // the limit may have been reached before this proxy's stream started
		}
		asked++
		if got.GetMaxRps() != 10 || got.GetLimit() != 4 {
			t.Errorf("observe request %v: want max_rps 30/3 proxies = 10 and limit 4", got)
		}
		all := got.GetMatch().GetAll().GetMatches()
		if len(all) != 2 || all[0].GetDestination().GetLabels()["deployment"] != "voting" || all[1].GetHttp().GetPathPrefix() != "/api" {
			t.Errorf("match %v: want destination deployment voting and path prefix /api", got.GetMatch())
		}
	}

	if asked == 0 {
		t.Error("neither web proxy was asked to tap")
	}

	// A proxy that refuses the tapper says so.
	svc = New(Static{refuser}, ca.anchors, func() *tls.Certificate { return ca.leaf(t, meshtls.ID(td, "default", "nosy")) }, nil)
	lines = nil
	err = svc.Tap(ctx, Request{Resource: metricsapi.Resource{Kind: metricsapi.KindPod, Namespace: "emojivoto", Name: "web-d"}},
		func(l Line) error { lines = append(lines, l); return nil })
	if err == nil || len(lines) != 1 || lines[0].Err == nil || !strings.Contains(lines[0].Err.Error(), "refused the tap identity") {
		t.Errorf("tap with a foreign identity: err %v, lines %+v; want one refusal line and an error", err, lines)
	}
}

func TestRequestValidation(t *testing.T) {
	web := metricsapi.Resource{Kind: metricsapi.KindDeployment, Namespace: "ns", Name: "web"}
	for _, c := range []struct {
		req  Request
		want string
	}{
		{Request{}, "required"},
		{Request{Resource: metricsapi.Resource{Kind: metricsapi.KindNamespace}}, "ns/NAME"},
		{Request{Resource: web, MaxRPS: 101}, "maximum of 100"},
		{Request{Resource: web, MaxRPS: -1}, ">= 0"},
		{Request{Resource: web, To: &metricsapi.Resource{Kind: metricsapi.KindNamespace}}, "--to"},
	} {
		if err := c.req.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error mentioning %q", c.req, err, c.want)
		}
	}
	if err := (Request{Resource: web, MaxRPS: 100}).Validate(); err != nil {
		t.Error(err)
	}
}

func TestStaticSelectsByKind(t *testing.T) {
	s := Static{
		{Namespace: "a", Deployment: "web", Pod: "web-1"}, {Namespace: "a", Deployment: "web", Pod: "web-0"},
		{Namespace: "a", Deployment: "db", Pod: "db-0"}, {Namespace: "b", Deployment: "web", Pod: "web-0"},
	}
	for _, c := range []struct {
		r    metricsapi.Resource
		want string
	}{
		{metricsapi.Resource{Kind: metricsapi.KindDeployment, Namespace: "a", Name: "web"}, "a/web-0 a/web-1"},
		{metricsapi.Resource{Kind: metricsapi.KindDeployment, Namespace: "a"}, "a/db-0 a/web-0 a/web-1"},
		{metricsapi.Resource{Kind: metricsapi.KindPod, Namespace: "b", Name: "web-0"}, "b/web-0"},
		{metricsapi.Resource{Kind: metricsapi.KindNamespace, Namespace: "b", Name: "b"}, "b/web-0"},
		{metricsapi.Resource{Kind: metricsapi.KindDeployment, Namespace: "c", Name: "web"}, ""},
	} {
		ts, _ := s.Targets(context.Background(), c.r)
		var names []string
		for _, t := range ts {
			names = append(names, t.Name())
		}
		if got := strings.Join(names, " "); got != c.want {
			t.Errorf("%+v: %q, want %q", c.r, got, c.want)
		}
	}
}

func TestPeerIndexNamesCallers(t *testing.T) {
	id := func(sa string) string { return meshtls.ID(td, "emojivoto", sa) }
	pi := NewPeerIndex([]Target{
		{Namespace: "emojivoto", Deployment: "web", Pod: "web-0", Addr: "10.0.0.1:4190", Identity: id("web")},
		{Namespace: "emojivoto", Deployment: "vote-bot", Pod: "vote-bot-0", Addr: "10.0.0.2:4190", Identity: id("vote-bot")},
		// Two workloads sharing the default service account: the identity alone names neither.
		{Namespace: "emojivoto", Deployment: "a", Pod: "a-0", Addr: "10.0.0.3:4190", Identity: id("default")},
		{Namespace: "emojivoto", Deployment: "b", Pod: "b-0", Addr: "10.0.0.4:4190", Identity: id("default")},
		// Local mode: every proxy on loopback, so the address names nobody.
		{Namespace: "emojivoto", Deployment: "emoji", Pod: "emoji", Addr: "127.0.0.1:17013", Identity: id("emoji")},
		{Namespace: "emojivoto", Deployment: "voting", Pod: "voting", Addr: "127.0.0.1:17023", Identity: id("voting")},
	})
	for _, c := range []struct {
		src, clientID string
		want          map[string]string
	}{
		{"10.0.0.2:51234", id("vote-bot"), map[string]string{"namespace": "emojivoto", "deployment": "vote-bot", "pod": "vote-bot-0"}},
		{"10.0.0.4:40000", id("default"), map[string]string{"namespace": "emojivoto", "deployment": "b", "pod": "b-0"}},
		{"10.9.9.9:40000", id("default"), map[string]string{"serviceaccount": "default"}},
		{"127.0.0.1:40000", id("voting"), map[string]string{"namespace": "emojivoto", "deployment": "voting", "serviceaccount": "voting"}},
		{"127.0.0.1:40000", "", map[string]string{}},
	} {
		ev := &tapv1.TapEvent{Direction: tapv1.TapEvent_DIRECTION_INBOUND, Source: c.src, ClientId: c.clientID}
		if c.clientID != "" {
			_, _, sa, _ := meshtls.ParseID(c.clientID)
			ev.SourceLabels = map[string]string{"serviceaccount": sa}
			if c.want["serviceaccount"] == "" && len(c.want) > 0 {
				c.want["serviceaccount"] = sa
			}
		}
		pi.name(ev)
		got := ev.GetSourceLabels()
		if len(got) != len(c.want) {
			t.Errorf("%s %s: %v, want %v", c.src, c.clientID, got, c.want)
			continue
		}
		for k, v := range c.want {
			if got[k] != v {
				t.Errorf("%s %s: %v, want %v", c.src, c.clientID, got, c.want)
			}
		}
	}
}
