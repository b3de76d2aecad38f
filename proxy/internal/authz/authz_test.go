package authz

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	policyv1 "github.com/sinewmesh/sinew/api/policy/v1"
	"github.com/sinewmesh/sinew/internal/testutil"
	"github.com/sinewmesh/sinew/proxy/internal/resubscribe/watchtest"
)

const (
	voteBot = "spiffe://cluster.local/ns/emojivoto/sa/vote-bot"
	web     = "spiffe://cluster.local/ns/emojivoto/sa/web"
	other   = "spiffe://cluster.local/ns/other/sa/default"
)

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func authzName(a *Authorization) string {
	if a == nil {
		return "denied"
	}
	return a.Kind + "/" + a.Name
}

func TestAdmit(t *testing.T) {
	srv, problems := Compile(&policyv1.InboundServer{
		Labels: map[string]string{"kind": "server", "name": "web-http"},
		Authorizations: []*policyv1.Authorization{
			{Name: "sa", Identities: []string{voteBot}, Labels: map[string]string{"kind": "serverauthorization", "name": "vote-bot"}},
			{Name: "ns", Identities: []string{"spiffe://cluster.local/ns/team-a/*"}, Labels: map[string]string{"kind": "authorizationpolicy", "name": "team-a"}},
			{Name: "net", Unauthenticated: true, Networks: []*policyv1.Network{{Cidr: "192.168.0.0/16", Except: []string{"192.168.9.0/24"}}},
				Labels: map[string]string{"kind": "serverauthorization", "name": "lan"}},
			{Name: "mesh-in-net", Identities: []string{"*"}, Networks: []*policyv1.Network{{Cidr: "10.1.0.0/16"}},
				Labels: map[string]string{"kind": "authorizationpolicy", "name": "cluster-meshed"}},
		},
	})
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	if srv.Kind != "server" || srv.Name != "web-http" {
		t.Errorf("server labels %s/%s", srv.Kind, srv.Name)
	}
	for _, c := range []struct {
		name string
		c    Client
		want string
	}{
		{"the named service account", Client{addr("10.2.0.5"), voteBot}, "serverauthorization/vote-bot"},
		{"another service account", Client{addr("10.2.0.5"), web}, "denied"},
		{"an identity under the prefix", Client{addr("10.2.0.5"), "spiffe://cluster.local/ns/team-a/sa/x"}, "authorizationpolicy/team-a"},
		{"a plaintext client in the network", Client{addr("192.168.1.1"), ""}, "serverauthorization/lan"},
		{"a plaintext client in the network's exception", Client{addr("192.168.9.1"), ""}, "denied"},
		{"a plaintext client elsewhere", Client{addr("10.1.2.3"), ""}, "denied"},
		{"any meshed client in 10.1/16", Client{addr("10.1.2.3"), other}, "authorizationpolicy/cluster-meshed"},
		{"an IPv4-mapped address", Client{addr("::ffff:192.168.1.1"), ""}, "serverauthorization/lan"},
	} {
		if got := authzName(srv.Admit(c.c)); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}

func TestNoAuthorizationsAdmitsNobody(t *testing.T) {
	srv, _ := Compile(&policyv1.InboundServer{Labels: map[string]string{"kind": "server", "name": "locked"}})
	if a := srv.Admit(Client{addr("127.0.0.1"), voteBot}); a != nil {
		t.Errorf("a Server without authorizations admitted %s", authzName(a))
	}
}

// TestMalformedNetworksNeverWiden: a network the proxy cannot parse is dropped, and an authorization left without
// any network admits nobody rather than everyone; an exception it cannot parse drops its network.
func TestMalformedNetworksNeverWiden(t *testing.T) {
	srv, problems := Compile(&policyv1.InboundServer{Authorizations: []*policyv1.Authorization{
		{Name: "bad", Unauthenticated: true, Networks: []*policyv1.Network{{Cidr: "not-a-cidr"}}},
		{Name: "bad-except", Unauthenticated: true, Networks: []*policyv1.Network{{Cidr: "0.0.0.0/0", Except: []string{"garbage"}}}},
	}})
	if len(problems) != 2 {
		t.Errorf("problems %q, want two", problems)
	}
	if a := srv.Admit(Client{addr("10.0.0.1"), ""}); a != nil {
		t.Errorf("admitted by %s", authzName(a))
	}
}

func TestProbes(t *testing.T) {
	srv, _ := Compile(&policyv1.InboundServer{
		Labels:        map[string]string{"kind": "server", "name": "web-http"},
		ProbePaths:    []string{"/healthz"},
		ProbeNetworks: []*policyv1.Network{{Cidr: "10.0.0.0/8"}},
	})
	get := func(method, path string) *http.Request {
		r, _ := http.NewRequest(method, "http://web"+path, nil)
		return r
	}
	if a := srv.AdmitRequest(Client{addr("10.0.0.1"), ""}, get("GET", "/healthz")); a != Probe {
		t.Errorf("a kubelet probe: %s, want default/probe", authzName(a))
	}
	for _, c := range []struct {
		name string
		c    Client
		r    *http.Request
	}{
		{"another path", Client{addr("10.0.0.1"), ""}, get("GET", "/api")},
		{"a POST to the probe path", Client{addr("10.0.0.1"), ""}, get("POST", "/healthz")},
		{"from outside the probe networks", Client{addr("192.168.0.1"), ""}, get("GET", "/healthz")},
	} {
		if a := srv.AdmitRequest(c.c, c.r); a != nil {
			t.Errorf("%s: admitted by %s", c.name, authzName(a))
		}
	}
}

func TestDefaultPolicies(t *testing.T) {
	cluster := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	in, out := addr("10.1.1.1"), addr("203.0.113.1")
	for _, c := range []struct {
		policy                                 string
		meshedIn, plainIn, meshedOut, plainOut bool
	}{
		{AllUnauthenticated, true, true, true, true},
		{AllAuthenticated, true, false, true, false},
		{ClusterUnauthenticated, true, true, false, false},
		{ClusterAuthenticated, true, false, false, false},
		{Deny, false, false, false, false},
		{Audit, true, true, true, true},
	} {
		srv, err := DefaultPolicy(c.policy, cluster)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []struct {
			what string
			c    Client
			want bool
		}{
			{"meshed in cluster", Client{in, web}, c.meshedIn},
			{"plaintext in cluster", Client{in, ""}, c.plainIn},
			{"meshed outside", Client{out, web}, c.meshedOut},
			{"plaintext outside", Client{out, ""}, c.plainOut},
		} {
			a := srv.Admit(k.c)
			if (a != nil) != k.want {
				t.Errorf("%s, %s: admitted %v, want %v", c.policy, k.what, a != nil, k.want)
			}
			if a != nil && c.policy == Audit && (!a.Audit || a.Name != "audit") {
				t.Errorf("audit admitted by %s (audit %v), want authz_name audit", authzName(a), a.Audit)
			}
		}
	}
	if _, err := DefaultPolicy("allow-some", cluster); err == nil {
		t.Error("an unknown default policy was accepted")
	}
}

type fakeInbound struct {
	policyv1.UnimplementedInboundPoliciesServer
	calls *watchtest.Calls[*policyv1.InboundRequest, policyv1.InboundServer]
}

func (f *fakeInbound) WatchInbound(req *policyv1.InboundRequest, s grpc.ServerStreamingServer[policyv1.InboundServer]) error {
	return f.calls.Serve(req, s)
}

// TestWatcher: a port's first answer replaces "no policy" (which admits nobody), a change applies at once, and the
// last policy stays while the control plane is down.
func TestWatcher(t *testing.T) {
	fake := &fakeInbound{calls: watchtest.NewCalls[*policyv1.InboundRequest, policyv1.InboundServer]()}
	cp := watchtest.StartControlPlane(t, func(s *grpc.Server) { policyv1.RegisterInboundPoliciesServer(s, fake) })
	reg := prometheus.NewRegistry()
	w, err := NewWatcher(policyv1.NewInboundPoliciesClient(cp.Conn(t)), "emojivoto/web-1", nil, slog.New(slog.DiscardHandler), reg)
	if err != nil {
		t.Fatal(err)
	}
	waits := make(watchtest.Waits)
	w.sleep = waits.Sleep
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx) //nolint:errcheck // returns nil when ctx ends

	p := w.Get(8080)
	short, cancelShort := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancelShort()
	if srv, err := p.Server(short); err == nil {
		t.Fatalf("before any answer the port has a policy %+v; it must admit nobody", srv)
	}
	s := fake.calls.Next(t)
	if s.Req.GetWorkload() != "emojivoto/web-1" || s.Req.GetPort() != 8080 {
		t.Errorf("subscribed with %v", s.Req)
	}
	s.Send <- &policyv1.InboundServer{Labels: map[string]string{"kind": "server", "name": "web"},
		Authorizations: []*policyv1.Authorization{{Name: "a", Identities: []string{voteBot}}}}
	wait, cancelWait := context.WithTimeout(context.Background(), watchtest.Deadline)
	defer cancelWait()
	srv, err := p.Server(wait)
	if err != nil || srv.Admit(Client{addr("10.0.0.1"), voteBot}) == nil {
		t.Fatalf("after the first answer: %v %v", srv, err)
	}
	// A change: nobody is admitted any more.
	s.Send <- &policyv1.InboundServer{Labels: map[string]string{"kind": "server", "name": "web"}}
	testutil.Eventually(t, watchtest.Deadline, "the changed policy to apply", func() bool {
		return p.Current().Admit(Client{addr("10.0.0.1"), voteBot}) == nil
	})
	last := p.Current()
	cp.Stop()
	waits.Next(t)
	if p.Current() != last {
		t.Error("the outage changed the port's policy")
	}
	if got := watchtest.Value(t, w.updates); got != 2 {
		t.Errorf("control_inbound_policy_updates_total %v, want 2", got)
	}
}

// TestWatcherNeverAnswered: while the control plane has never answered, a port a Server covers admits nobody,
// a port without one gets the default inbound policy once the wait ends, and the control plane's first answer
// replaces it.
func TestWatcherNeverAnswered(t *testing.T) {
	fake := &fakeInbound{calls: watchtest.NewCalls[*policyv1.InboundRequest, policyv1.InboundServer]()}
	cp := watchtest.StartControlPlane(t, func(s *grpc.Server) { policyv1.RegisterInboundPoliciesServer(s, fake) })
	fallback, _ := DefaultPolicy(AllUnauthenticated, nil)
	w, err := NewWatcher(policyv1.NewInboundPoliciesClient(cp.Conn(t)), "emojivoto/web-1", fallback, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	w.SetServerPorts([]uint16{8080})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx) //nolint:errcheck // returns nil when ctx ends

	covered, open := w.Get(8080), w.Get(9090)
	short := func() context.Context {
		c, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		t.Cleanup(cancel)
		return c
	}
	if srv, err := covered.Server(short()); !errors.Is(err, ErrNoPolicy) {
		t.Fatalf("a port with a Server and no answer: %+v %v, want ErrNoPolicy", srv, err)
	}
	srv, err := open.Server(short())
	if err != nil || srv != fallback {
		t.Fatalf("a port without a Server and no answer: %+v %v, want the default policy", srv, err)
	}
	if srv.Admit(Client{addr("10.0.0.1"), ""}) == nil {
		t.Error("all-unauthenticated refused a plaintext client")
	}
	if again, err := open.Server(context.Background()); err != nil || again != fallback {
		t.Errorf("the next request waited again or got %+v %v", again, err)
	}
	// The control plane answers both: its policies replace the interim one and end the refusals.
	for range 2 {
		s := fake.calls.Next(t)
		s.Send <- &policyv1.InboundServer{Labels: map[string]string{"kind": "server", "name": fmt.Sprint(s.Req.GetPort())}}
	}
	testutil.Eventually(t, watchtest.Deadline, "the control plane's policies to replace the interim ones", func() bool {
		c, o := covered.Current(), open.Current()
		return c != nil && c.Name == "8080" && o != nil && o.Name == "9090"
	})
}

func TestWatcherWithoutPolicyService(t *testing.T) {
	fallback, _ := DefaultPolicy(Deny, nil)
	w, err := NewWatcher(nil, "local/web", fallback, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := w.Get(80).Server(context.Background())
	if err != nil || srv != fallback {
		t.Errorf("without a policy service: %v %v, want the fallback", srv, err)
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := Compile(&policyv1.InboundServer{Labels: map[string]string{"kind": "server", "name": "web-http"},
		Authorizations: []*policyv1.Authorization{{Name: "a", Identities: []string{voteBot}, Labels: map[string]string{"kind": "serverauthorization", "name": "vote-bot"}}}})
	conn := Conn{TargetAddr: "127.0.0.1:8080", TLS: "true", ClientID: voteBot}
	voteBotReq := httptest.NewRequest(http.MethodGet, "/", nil)
	m.HTTP(srv, srv.Decide(Client{addr("10.0.0.1"), voteBot}, voteBotReq, time.Now()), conn)
	m.HTTP(srv, srv.Decide(Client{addr("10.0.0.1"), voteBot}, voteBotReq, time.Now()), conn)
	m.HTTP(srv, Decision{}, Conn{TargetAddr: "127.0.0.1:8080", TLS: "no_identity"})
	m.TCP(nil, nil, conn)
	if got := watchtest.Value(t, m.httpAllow.WithLabelValues("127.0.0.1:8080", "server", "web-http", "default", "serverauthorization", "vote-bot", "true", voteBot)); got != 2 {
		t.Errorf("inbound_http_authz_allow_total %v, want 2", got)
	}
	if got := watchtest.Value(t, m.httpDeny.WithLabelValues("127.0.0.1:8080", "server", "web-http", "default", "no_identity", "")); got != 1 {
		t.Errorf("inbound_http_authz_deny_total %v, want 1", got)
	}
	if got := watchtest.Value(t, m.tcpDeny.WithLabelValues("127.0.0.1:8080", "default", "unknown", "true", voteBot)); got != 1 {
		t.Errorf("inbound_tcp_authz_deny_total %v, want 1", got)
	}
}

func TestView(t *testing.T) {
	srv, _ := Compile(&policyv1.InboundServer{
		Labels:     map[string]string{"kind": "server", "name": "web-http"},
		ProbePaths: []string{"/ready", "/live"},
		Authorizations: []*policyv1.Authorization{{Name: "a", Identities: []string{web, "*", "spiffe://td/ns/x/*"},
			Networks: []*policyv1.Network{{Cidr: "10.0.0.0/8", Except: []string{"10.9.0.0/16"}}},
			Labels:   map[string]string{"kind": "authorizationpolicy", "name": "p"}}},
	})
	v := srv.View()
	if v.Kind != "server" || v.Name != "web-http" || len(v.ProbePaths) != 2 || v.ProbePaths[0] != "/live" {
		t.Errorf("view %+v", v)
	}
	if len(v.Authorizations) != 1 {
		t.Fatalf("authorizations %+v", v.Authorizations)
	}
	a := v.Authorizations[0]
	if a.Kind != "authorizationpolicy" || a.Name != "p" || len(a.Networks) != 1 || a.Networks[0] != "10.0.0.0/8 except 10.9.0.0/16" ||
		len(a.Identities) != 3 || a.Identities[0] != "*" || a.Identities[1] != web || a.Identities[2] != "spiffe://td/ns/x/*" {
		t.Errorf("authorization view %+v", a)
	}
}

// TestStrictAdmitsOnlyMeshedClients: a STRICT port refuses plaintext clients even where an authorization admits
// unauthenticated ones; kubelet probes still pass.
func TestStrictAdmitsOnlyMeshedClients(t *testing.T) {
	srv, _ := Compile(&policyv1.InboundServer{
		MtlsMode:       policyv1.MTLSMode_MTLS_MODE_STRICT,
		ProbePaths:     []string{"/ready"},
		Authorizations: []*policyv1.Authorization{{Name: "all", Unauthenticated: true}},
	})
	if a := srv.Admit(Client{addr("10.0.0.1"), ""}); a != nil {
		t.Errorf("plaintext client admitted by %s on a STRICT port", authzName(a))
	}
	if a := srv.Admit(Client{addr("10.0.0.1"), web}); a == nil {
		t.Error("a meshed client was refused")
	}
	r, _ := http.NewRequest("GET", "http://web/ready", nil)
	if a := srv.AdmitRequest(Client{addr("10.0.0.1"), ""}, r); a != Probe {
		t.Errorf("a kubelet probe on a STRICT port: %s", authzName(a))
	}
}
