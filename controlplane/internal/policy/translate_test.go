package policy

import (
	"encoding/json"
	"net/netip"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	policyv1 "github.com/sinewmesh/sinew/api/policy/v1"
	"github.com/sinewmesh/sinew/controlplane/internal/model"
	"github.com/sinewmesh/sinew/internal/golden"
)

// render is a stable, indented JSON form of m (protojson alone varies its whitespace on purpose).
func render(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := protojson.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(out, '\n')
}

func testSnapshot() *model.Snapshot {
	s := model.NewStore()
	s.Update(model.Resources{
		Services: []*model.Service{{Namespace: "emojivoto", Name: "web-svc", Selector: map[string]string{"app": "web"},
			Ports: []model.ServicePort{{Port: 80, TargetPort: model.TargetPort{Name: "http"}}}}},
		Workloads: []*model.Workload{{Namespace: "emojivoto", Name: "web", Labels: map[string]string{"app": "web"},
			ServiceAccount: "web", Address: netip.MustParseAddr("10.0.0.1"), MeshPort: 4143,
			Ports: []model.WorkloadPort{{Name: "http", Port: 8080, Protocol: model.ProtocolHTTP}}}},
	})
	return s.Snapshot()
}

func TestInbound(t *testing.T) {
	t.Parallel()
	snap := testSnapshot()
	got := Inbound(snap, "emojivoto/web", 8080)
	golden.Check(t, "testdata/inbound-default.json", render(t, got))

	// Until Server and AuthorizationPolicy exist, every port of every workload, known or not, gets the default.
	for _, tc := range []struct {
		snap     *model.Snapshot
		workload string
		port     uint32
	}{
		{snap, "emojivoto/web", 9999},
		{snap, "other/unknown", 80},
		{model.NewStore().Snapshot(), "emojivoto/web", 8080},
	} {
		if other := Inbound(tc.snap, tc.workload, tc.port); !proto.Equal(got, other) {
			t.Errorf("Inbound(%s, %d) differs from the default:\n%s", tc.workload, tc.port, render(t, other))
		}
	}
}

func TestOutbound(t *testing.T) {
	t.Parallel()
	snap := testSnapshot()
	golden.Check(t, "testdata/outbound-default.json", render(t, Outbound(snap, "web-svc.emojivoto.svc.cluster.local:80")))

	// Every target routes to itself: names, ip:port, and targets the model does not know.
	for _, target := range []string{"web-svc.emojivoto.svc.cluster.local:80", "10.0.0.1:8080", "www.example.com:443"} {
		p := Outbound(snap, target)
		routes := p.GetRoutes()
		if len(routes) != 1 || len(routes[0].GetRules()) != 1 || len(routes[0].GetRules()[0].GetBackends()) != 1 {
			t.Fatalf("%s: want one route with one rule and one backend:\n%s", target, render(t, p))
		}
		if b := routes[0].GetRules()[0].GetBackends()[0]; b.GetAuthority() != target || b.GetWeight() != 1 {
			t.Errorf("%s: backend %s weight %d, want the target itself, weight 1", target, b.GetAuthority(), b.GetWeight())
		}
		if p.GetProtocol() != policyv1.Protocol_PROTOCOL_DETECT {
			t.Errorf("%s: protocol %s, want DETECT", target, p.GetProtocol())
		}
	}
}

// TestTranslationsAreFresh: the server keeps the last answer to compare with the next one, so a translation must
// not hand out shared messages that a later call (or a caller) could change under it.
func TestTranslationsAreFresh(t *testing.T) {
	t.Parallel()
	snap := testSnapshot()
	a, b := Inbound(snap, "emojivoto/web", 8080), Inbound(snap, "emojivoto/web", 8080)
	a.Authorizations[0].Identities[0] = "changed"
	a.Labels["name"] = "changed"
	if !proto.Equal(b, Inbound(snap, "emojivoto/web", 8080)) {
		t.Error("Inbound answers share state")
	}
	c, d := Outbound(snap, "x:80"), Outbound(snap, "x:80")
	c.Routes[0].Rules[0].Backends[0].Weight = 7
	c.Labels["name"] = "changed"
	if !proto.Equal(d, Outbound(snap, "x:80")) {
		t.Error("Outbound answers share state")
	}
}
