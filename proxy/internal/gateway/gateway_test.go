package gateway

import (
	"net/http/httptest"
	"strings"
	"testing"

	policyv1 "github.com/sinewmesh/sinew/api/policy/v1"
	"github.com/sinewmesh/sinew/internal/testutil"
)

// selfSigned is a certificate for names and its key, in PEM.
func selfSigned(t *testing.T, names ...string) *policyv1.Certificate {
	t.Helper()
	c, k, _ := testutil.SelfSigned(t, names[0], names...)
	return &policyv1.Certificate{Name: "ns/" + names[0], ChainPem: c, KeyPem: k}
}

// route is a route named name that sends everything to backend, serving hostnames.
func route(name, backend string, hostnames ...string) *policyv1.HttpRoute {
	return &policyv1.HttpRoute{Labels: map[string]string{"kind": "HTTPRoute", "name": name}, Hostnames: hostnames,
		Rules: []*policyv1.RouteRule{{Backends: []*policyv1.WeightedBackend{{Authority: backend, Weight: 1}}}}}
}

const (
	http  = policyv1.ListenerProtocol_LISTENER_PROTOCOL_HTTP
	https = policyv1.ListenerProtocol_LISTENER_PROTOCOL_HTTPS
)

func TestListenersAndHostsByHostname(t *testing.T) {
	t.Parallel()
	cfg, problems := Translate(&policyv1.GatewayConfig{Exists: true, Listeners: []*policyv1.GatewayListener{
		{Name: "any", Port: 80, Protocol: http, Routes: []*policyv1.HttpRoute{
			route("catch-all", "web:80"),
			route("wild", "wild:80", "*.example.com"),
			route("exact", "exact:80", "a.example.com"),
		}},
		{Name: "shop", Port: 80, Protocol: http, Hostname: "shop.example.com", Routes: []*policyv1.HttpRoute{route("shop", "shop:80")}},
	}})
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	p := cfg.Ports[80]
	if p == nil || p.TLS || len(p.Listeners) != 2 || p.Listeners[0].Name != "shop" {
		t.Fatalf("port 80: %+v", p)
	}
	for host, want := range map[string]string{
		"a.example.com":     "exact",
		"b.example.com":     "wild",
		"x.b.example.com":   "wild", // a wildcard covers one or more labels
		"example.com":       "catch-all",
		"shop.example.com":  "shop", // the more specific listener wins over the wildcard route of the other
		"other.test":        "catch-all",
		"A.Example.COM.":    "exact",
		"a.example.com:80":  "exact",
		"ashop.example.com": "wild",
	} {
		h := RequestHost(host)
		l := p.Listener(h)
		if l == nil {
			t.Errorf("%s: no listener", host)
			continue
		}
		hs := l.Host(h)
		if hs == nil {
			t.Errorf("%s: no host on listener %s", host, l.Name)
			continue
		}
		r := hs.Policy.Match(httptest.NewRequest("GET", "http://"+host+"/", nil))
		if r == nil || r.Route.Labels["name"] != want {
			t.Errorf("%s: got %v, want route %s", host, r, want)
		}
	}
}

func TestHostMatches(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		pattern, host string
		want          bool
	}{
		{"", "anything", true},
		{"a.example.com", "a.example.com", true},
		{"a.example.com", "b.example.com", false},
		{"*.example.com", "a.example.com", true},
		{"*.example.com", "a.b.example.com", true},
		{"*.example.com", "example.com", false},
		{"*.example.com", "aexample.com", false},
	} {
		if got := HostMatches(tc.pattern, tc.host); got != tc.want {
			t.Errorf("HostMatches(%q, %q) = %v", tc.pattern, tc.host, got)
		}
	}
}

func TestCertificateBySNI(t *testing.T) {
	t.Parallel()
	a, wild, other := selfSigned(t, "a.example.com"), selfSigned(t, "*.example.com"), selfSigned(t, "other.test")
	cfg, problems := Translate(&policyv1.GatewayConfig{Exists: true, Listeners: []*policyv1.GatewayListener{
		{Name: "wild", Port: 443, Protocol: https, Hostname: "*.example.com", Certificates: []*policyv1.Certificate{wild, a}},
		{Name: "any", Port: 443, Protocol: https, Certificates: []*policyv1.Certificate{other}},
	}})
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	p := cfg.Ports[443]
	for sni, want := range map[string]string{
		"a.example.com": "a.example.com", // the listener's certificate that names it
		"b.example.com": "*.example.com",
		"other.test":    "other.test",
		"":              "other.test", // no SNI: the listener for any host
	} {
		c, err := p.Certificate(sni)
		if err != nil || c.Leaf.Subject.CommonName != want {
			t.Errorf("SNI %q: %v %v, want %s", sni, c, err, want)
		}
	}
}

func TestBadListenersAreLeftOut(t *testing.T) {
	t.Parallel()
	good := selfSigned(t, "a.example.com")
	bad := &policyv1.Certificate{Name: "ns/broken", ChainPem: []byte("not a certificate"), KeyPem: good.KeyPem}
	cfg, problems := Translate(&policyv1.GatewayConfig{Exists: true, Listeners: []*policyv1.GatewayListener{
		{Name: "http", Port: 80, Protocol: http},
		{Name: "no-cert", Port: 443, Protocol: https, Certificates: []*policyv1.Certificate{bad}},
		{Name: "tls-on-http-port", Port: 80, Protocol: https, Hostname: "x.test", Certificates: []*policyv1.Certificate{good}},
		{Name: "same-host", Port: 80, Protocol: http},
		{Name: "tcp", Port: 9000, Protocol: policyv1.ListenerProtocol_LISTENER_PROTOCOL_UNSPECIFIED},
		{Name: "ok", Port: 8443, Protocol: https, Certificates: []*policyv1.Certificate{bad, good}},
	}})
	if len(cfg.Ports) != 2 || cfg.Ports[80] == nil || len(cfg.Ports[80].Listeners) != 1 || cfg.Ports[8443] == nil || len(cfg.Ports[8443].Listeners[0].Certs) != 1 {
		t.Fatalf("ports %+v", cfg.Ports)
	}
	text := ""
	for _, p := range problems {
		text += p.Error() + "\n"
	}
	for _, want := range []string{"(no-cert).certificates[0] (ns/broken)", "(no-cert): HTTPS without a usable certificate",
		"(tls-on-http-port): port 80 already serves the other protocol", `(same-host): port 80 already has a listener for host ""`,
		"(tcp): protocol", "(ok).certificates[0] (ns/broken)"} {
		if !strings.Contains(text, want) {
			t.Errorf("problems lack %q:\n%s", want, text)
		}
	}
}
