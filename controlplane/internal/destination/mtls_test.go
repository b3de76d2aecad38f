package destination

import (
	"fmt"
	"net/netip"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/sinewmesh/sinew/controlplane/internal/model"
	authzapi "github.com/sinewmesh/sinew/controlplane/internal/policy/authz/api"
)

// mtlsPod is a meshed pod with an HTTP port 8080 (named http) and an opaque port 9000, the annotation's modes.
func mtlsPod(modes authzapi.PortMTLSModes) *model.Workload {
	return &model.Workload{Kind: model.KindPod, Namespace: "ns", Name: "web-1", Labels: map[string]string{"app": "web"}, ServiceAccount: "web",
		Address: netip.MustParseAddr("10.0.0.1"), MeshPort: 4143, UndeclaredPorts: true, MTLSModes: modes,
		Ports: []model.WorkloadPort{{Name: "http", Port: 8080, Protocol: model.ProtocolHTTP}, {Name: "raw", Port: 9000, Protocol: model.ProtocolOpaque}}}
}

// mtlsLocal is the same as a local-mode Workload: reached only at its mesh port, plaintext for its first port.
func mtlsLocal(modes authzapi.PortMTLSModes) *model.Workload {
	w := mtlsPod(modes)
	w.Kind, w.ExplicitInbound, w.UndeclaredPorts = model.KindWorkload, true, false
	w.Address = netip.MustParseAddr("127.0.0.1")
	return w
}

func mtlsServer(t *testing.T, selector string, port int, mode authzapi.MTLSMode) *authzapi.Server {
	t.Helper()
	var s authzapi.Server
	doc := fmt.Sprintf("metadata: {name: srv-%d-%s, namespace: ns}\nspec: {%s: {matchLabels: {app: web}}, port: %d, mtlsMode: %q}\n", port, mode, selector, port, mode)
	if mode == "" {
		doc = fmt.Sprintf("metadata: {name: srv-%d, namespace: ns}\nspec: {%s: {matchLabels: {app: web}}, port: %d}\n", port, selector, port)
	}
	if err := yaml.UnmarshalStrict([]byte(doc), &s); err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	return &s
}

func mtlsSnapshot(w *model.Workload, servers ...*authzapi.Server) *model.Snapshot {
	return snapshot(model.Resources{Services: []*model.Service{svc}, Workloads: []*model.Workload{w}, Policies: authzapi.Policies{Servers: servers}})
}

// DISABLE: a pod's endpoint is its own address and application port in plaintext (its proxy captures it), with
// no identity and no_tls_reason "disabled"; other ports keep mTLS. A Server's mode wins over the annotation.
func TestDisabledEndpointPod(t *testing.T) {
	t.Parallel()
	w := mtlsPod(authzapi.PortMTLSModes{Ports: []authzapi.PortRangeMTLSMode{{First: 8080, Last: 8080, Mode: authzapi.MTLSDisable}}})
	snap := mtlsSnapshot(w)
	r := Resolve(snap, Target{Namespace: "ns", Service: "web", Port: 80}, "td")
	got := r.Endpoints["10.0.0.1:8080"]
	if len(r.Endpoints) != 1 || got == nil {
		t.Fatalf("endpoints %v", r.Endpoints)
	}
	if got.GetTlsIdentity() != nil || got.GetNoTlsReason() != NoTLSDisabled || got.GetTargetPort() != 0 || got.GetProtocolHint() != nil ||
		got.GetMetricLabels()["pod"] != "web-1" {
		t.Errorf("disabled endpoint %v", got)
	}
	// The opaque port is not disabled: mTLS to the mesh port as before.
	r = Resolve(snap, Target{Namespace: "ns", Service: "web", Port: 90}, "td")
	if m := r.Endpoints["10.0.0.1:4143"]; m.GetTlsIdentity() == nil || m.GetTargetPort() != 9000 || m.GetNoTlsReason() != "" {
		t.Errorf("port 9000: %v", r.Endpoints)
	}
	// An ip:port target resolves the same way.
	r = Resolve(snap, Target{Addr: netip.MustParseAddr("10.0.0.1"), Port: 8080}, "td")
	if got := r.Endpoints["10.0.0.1:8080"]; got.GetNoTlsReason() != NoTLSDisabled {
		t.Errorf("ip:port: %v", r.Endpoints)
	}
	// DISABLE on an opaque port keeps the opaque hint.
	w = mtlsPod(authzapi.PortMTLSModes{All: authzapi.MTLSDisable})
	r = Resolve(mtlsSnapshot(w), Target{Namespace: "ns", Service: "web", Port: 90}, "td")
	if got := r.Endpoints["10.0.0.1:9000"]; got.GetTlsIdentity() != nil || got.GetProtocolHint().GetOpaque() == nil {
		t.Errorf("opaque disabled: %v", r.Endpoints)
	}
	// A Server's PERMISSIVE beats the annotation's DISABLE; a Server's DISABLE beats nothing set.
	r = Resolve(mtlsSnapshot(w, mtlsServer(t, "podSelector", 8080, authzapi.MTLSPermissive)), Target{Namespace: "ns", Service: "web", Port: 80}, "td")
	if m := r.Endpoints["10.0.0.1:4143"]; m.GetTlsIdentity() == nil {
		t.Errorf("Server PERMISSIVE over annotation DISABLE: %v", r.Endpoints)
	}
	r = Resolve(mtlsSnapshot(mtlsPod(authzapi.PortMTLSModes{}), mtlsServer(t, "podSelector", 8080, authzapi.MTLSDisable)), Target{Namespace: "ns", Service: "web", Port: 80}, "td")
	if got := r.Endpoints["10.0.0.1:8080"]; got.GetNoTlsReason() != NoTLSDisabled {
		t.Errorf("Server DISABLE: %v", r.Endpoints)
	}
}

// DISABLE in local mode: the endpoint is the proxy's inbound address (its mesh port) in plaintext, which takes
// plaintext clients for the first port; a later port cannot be reached so and keeps mTLS.
func TestDisabledEndpointLocal(t *testing.T) {
	t.Parallel()
	w := mtlsLocal(authzapi.PortMTLSModes{})
	snap := mtlsSnapshot(w, mtlsServer(t, "workloadSelector", 8080, authzapi.MTLSDisable), mtlsServer(t, "workloadSelector", 9000, authzapi.MTLSDisable))
	r := Resolve(snap, Target{Namespace: "ns", Service: "web", Port: 80}, "td")
	got := r.Endpoints["127.0.0.1:4143"]
	if len(r.Endpoints) != 1 || got.GetTlsIdentity() != nil || got.GetNoTlsReason() != NoTLSDisabled || got.GetTargetPort() != 0 {
		t.Errorf("first port: %v", r.Endpoints)
	}
	r = Resolve(snap, Target{Namespace: "ns", Service: "web", Port: 90}, "td")
	if m := r.Endpoints["127.0.0.1:4143"]; m.GetTlsIdentity() == nil || m.GetTargetPort() != 9000 || m.GetNoTlsReason() != "" {
		t.Errorf("second port: %v", r.Endpoints)
	}
}

// TestStrictNeverPlaintext: whatever the combination of annotation (every port or per port) and Server modes, in
// Kubernetes or local mode, an endpoint of a meshed workload whose port is STRICT is always mTLS, with the
// workload's identity; and so is every PERMISSIVE one. Only DISABLE yields a plaintext endpoint.
func TestStrictNeverPlaintext(t *testing.T) {
	t.Parallel()
	modes := []authzapi.MTLSMode{"", authzapi.MTLSStrict, authzapi.MTLSPermissive, authzapi.MTLSDisable}
	type target struct {
		svcPort, appPort uint16
	}
	targets := []target{{80, 8080}, {90, 9000}, {91, 8080}}
	checked := 0
	for _, local := range []bool{false, true} {
		for _, all := range modes {
			for _, perPort := range modes {
				for _, server := range modes {
					ann := authzapi.PortMTLSModes{All: all}
					if perPort != "" {
						ann.Ports = []authzapi.PortRangeMTLSMode{{First: 8080, Last: 8080, Mode: perPort}}
					}
					w, selector := mtlsPod(ann), "podSelector"
					if local {
						w, selector = mtlsLocal(ann), "workloadSelector"
					}
					// A Server for 8080 always; without a mode ("") it leaves the annotation in charge.
					snap := mtlsSnapshot(w, mtlsServer(t, selector, 8080, server))
					for _, tg := range targets {
						// The mode the port has, by the documented rule.
						want := authzapi.MTLSPermissive
						switch {
						case tg.appPort == 8080 && server != "":
							want = server
						case tg.appPort == 8080 && perPort != "":
							want = perPort
						case all != "":
							want = all
						}
						for _, res := range []Resolution{
							Resolve(snap, Target{Namespace: "ns", Service: "web", Port: tg.svcPort}, "td"),
							Resolve(snap, Target{Addr: w.Address, Port: tg.appPort}, "td"),
						} {
							if len(res.Endpoints) != 1 {
								t.Fatalf("local %v, annotation %+v, Server %q, port %d: endpoints %v", local, ann, server, tg.appPort, res.Endpoints)
							}
							for _, ep := range res.Endpoints {
								checked++
								plaintext := ep.GetTlsIdentity() == nil
								if want != authzapi.MTLSDisable && (plaintext || ep.GetTlsIdentity().GetSpiffeId() != "spiffe://td/ns/ns/sa/web" || ep.GetNoTlsReason() != "") {
									t.Errorf("local %v, annotation %+v, Server %q, port %d (%s): plaintext endpoint %v", local, ann, server, tg.appPort, want, ep)
								}
								if want == authzapi.MTLSDisable && plaintext != (!local || tg.appPort == 8080) {
									t.Errorf("local %v, annotation %+v, Server %q, port %d (DISABLE): endpoint %v", local, ann, server, tg.appPort, ep)
								}
							}
						}
					}
				}
			}
		}
	}
	if checked != 2*4*4*4*len(targets)*2 {
		t.Errorf("checked %d endpoints", checked)
	}
}
