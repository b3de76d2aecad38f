package layer

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"testing"

	"github.com/sinewmesh/sinew/proxy/internal/pipeline"
)

func TestIngressTarget(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		authority, ns string
		want          string // "" = not a name to ask about
	}{
		{"web-svc.emojivoto.svc.cluster.local:80", "x", "web-svc.emojivoto.svc.cluster.local:80"},
		{"Web-Svc.Emojivoto.svc.cluster.local.", "x", "web-svc.emojivoto.svc.cluster.local:80"}, // no port: HTTP's
		{"web-svc.emojivoto:8080", "x", "web-svc.emojivoto:8080"},
		{"web-svc.emojivoto.svc", "x", "web-svc.emojivoto.svc:80"},
		{"web-svc", "emojivoto", "web-svc.emojivoto:80"}, // qualified, as DNS search would
		{"web-svc:8080", "emojivoto", "web-svc.emojivoto:8080"},
		{"web-svc", "", ""},
		{"10.1.2.3:8080", "x", "10.1.2.3:8080"},
		{"10.1.2.3", "x", "10.1.2.3:80"},
		{"[fd00::1]:8080", "x", "[fd00::1]:8080"},
		{"[fd00::1]", "x", "[fd00::1]:80"},
		{"www.example.com", "x", ""},                       // three labels, not a Service's name
		{"api.example.co.uk:443", "x", ""},                 // nor four
		{"emojivoto.example", "x", "emojivoto.example:80"}, // could be Service emojivoto in namespace example
		{"", "x", ""},
		{"web_svc.ns", "x", ""},
		{"-web.ns", "x", ""},
		{"web..ns", "x", ""},
		{"web.ns:0", "x", ""},
		{"web.ns:65536", "x", ""},
		{"web.ns:08", "x", ""},
		{"web.ns:http", "x", ""},
	} {
		got, ok := IngressTarget(tc.authority, tc.ns)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("IngressTarget(%q, %q) = %q, %v; want %q", tc.authority, tc.ns, got, ok, tc.want)
		}
	}
}

// knownNames is a fake discovery: the names it knows, and every name it was asked about.
type knownNames struct {
	known []string
	mu    sync.Mutex
	asked []string
}

func (k *knownNames) Known(_ context.Context, name string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.asked = append(k.asked, name)
	return slices.Contains(k.known, name)
}

func TestIngressChoosesTheTargetByAuthority(t *testing.T) {
	t.Parallel()
	names := &knownNames{known: []string{"web-svc.emojivoto:80", "api.prod:8080"}}
	var got *pipeline.Request
	h := Ingress(names, "emojivoto")(pipeline.HandlerFunc(func(req *pipeline.Request) (*http.Response, error) {
		got = req
		return respond(200), nil
	}))
	const origDst = "10.0.0.7:8080"
	for _, tc := range []struct {
		name, host, override string
		want                 string
	}{
		{"a Service by Host", "web-svc", "", "web-svc.emojivoto:80"},
		{"the override wins over Host", "emojivoto.example.com", "api.prod:8080", "api.prod:8080"},
		{"an unknown Service falls back", "nothing.here", "", origDst},
		{"an unknown override falls back", "web-svc", "nothing.here:80", origDst},
		{"a public name falls back unasked", "www.example.com", "", origDst},
	} {
		req := newReq("GET", "http://"+tc.host+"/", nil)
		conn := &pipeline.OutboundConn{Target: origDst, OrigDst: origDst}
		req.Out = conn
		if tc.override != "" {
			req.HTTP.Header.Set(OverrideHeader, tc.override)
		}
		if _, err := h.Handle(req); err != nil {
			t.Fatal(err)
		}
		if got.Out.Target != tc.want || got.Out.OrigDst != origDst {
			t.Errorf("%s: target %q (original destination %q), want %q", tc.name, got.Out.Target, got.Out.OrigDst, tc.want)
		}
		if conn.Target != origDst {
			t.Errorf("%s: the connection's state changed: %+v", tc.name, conn)
		}
		if v := got.HTTP.Header.Get(OverrideHeader); v != "" {
			t.Errorf("%s: %s reached the next layer: %q", tc.name, OverrideHeader, v)
		}
		if got.HTTP.Host != tc.host {
			t.Errorf("%s: Host changed to %q", tc.name, got.HTTP.Host)
		}
	}
	if want := []string{"web-svc.emojivoto:80", "api.prod:8080", "nothing.here:80", "nothing.here:80"}; !slices.Equal(names.asked, want) {
		t.Errorf("discovery asked about %q, want %q", names.asked, want)
	}
}
