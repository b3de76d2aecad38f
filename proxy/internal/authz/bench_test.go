package authz

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	policyv1 "github.com/sinewmesh/sinew/api/policy/v1"
)

// tenAuthorizations is a Server with ten authorizations by identity; the client is admitted by the last one, the
// worst case of the first-match scan.
func tenAuthorizations() *Server {
	msg := &policyv1.InboundServer{Labels: map[string]string{"kind": "server", "name": "web-http"}}
	for i := range 10 {
		msg.Authorizations = append(msg.Authorizations, &policyv1.Authorization{
			Name:       fmt.Sprint(i),
			Identities: []string{fmt.Sprintf("spiffe://cluster.local/ns/emojivoto/sa/client-%d", i)},
			Networks:   []*policyv1.Network{{Cidr: "10.0.0.0/8"}},
			Labels:     map[string]string{"kind": "serverauthorization", "name": fmt.Sprint(i)},
		})
	}
	srv, _ := Compile(msg)
	return srv
}

// BenchmarkAdmitTenAuthorizations is the per-request decision with ten authorizations, plus its counter.
func BenchmarkAdmitTenAuthorizations(b *testing.B) {
	srv := tenAuthorizations()
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	c := Client{addr("10.1.2.3"), "spiffe://cluster.local/ns/emojivoto/sa/client-9"}
	conn := Conn{TargetAddr: "127.0.0.1:8080", TLS: "true", ClientID: c.ID}
	r, _ := http.NewRequest("GET", "http://web/api/list", nil)
	now := time.Now() // the layer passes the request's start time
	b.ReportAllocs()
	for b.Loop() {
		d := srv.Decide(c, r, now)
		if d.Authz == nil {
			b.Fatal("denied")
		}
		m.HTTP(srv, d, conn)
	}
}

// BenchmarkAdmitOnly is BenchmarkAdmitTenAuthorizations without the counter.
func BenchmarkAdmitOnly(b *testing.B) {
	srv := tenAuthorizations()
	c := Client{addr("10.1.2.3"), "spiffe://cluster.local/ns/emojivoto/sa/client-9"}
	r, _ := http.NewRequest("GET", "http://web/api/list", nil)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if srv.Decide(c, r, now).Authz == nil {
			b.Fatal("denied")
		}
	}
}

// BenchmarkRoutedDecision: a port with two inbound routes; the request matches the second by prefix and is
// admitted by its authorization.
func BenchmarkRoutedDecision(b *testing.B) {
	srv := routedServer(b)
	c := Client{Addr: addr("10.1.2.3")}
	r, _ := http.NewRequest("GET", "http://web/api/list", nil)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if srv.Decide(c, r, now).Authz == nil {
			b.Fatal("denied")
		}
	}
}
