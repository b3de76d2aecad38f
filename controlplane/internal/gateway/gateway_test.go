package gateway_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	policyv1 "github.com/sinewmesh/sinew/api/policy/v1"
	"github.com/sinewmesh/sinew/controlplane/internal/gateway"
	"github.com/sinewmesh/sinew/controlplane/internal/model"
	"github.com/sinewmesh/sinew/controlplane/internal/source/local"
	"github.com/sinewmesh/sinew/internal/golden"
)

const clusterDomain = "cluster.local"

// class is sinew's GatewayClass, and another implementation's.
const class = `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: sinew}
spec: {controllerName: sinew.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: theirs}
spec: {controllerName: example.com/gateway}
`

// snapshot reads local-mode documents as `sinew run` does, lets mutate change what no file can say (a Secret
// that does not parse, which the local source refuses), and returns the model's snapshot.
func snapshot(t *testing.T, docs string, mutate func(*model.Resources)) *model.Snapshot {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "r.yaml"), []byte(docs), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := local.New(local.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r := s.Resources()
	if len(r.Errors) > 0 {
		t.Fatalf("%+v", r.Errors)
	}
	if mutate != nil {
		mutate(&r)
	}
	st := model.NewStore()
	st.Update(r)
	return st.Snapshot()
}

// secret is a TLS Secret document with a fresh key pair for host.
func secret(t *testing.T, namespace, name, host string) string {
	chain, key := keyPair(t, host)
	return fmt.Sprintf(`---
apiVersion: v1
kind: Secret
metadata: {name: %s, namespace: %s}
type: kubernetes.io/tls
stringData:
  tls.crt: |
%s
  tls.key: |
%s
`, name, namespace, indent(chain), indent(key))
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n    ")
}

// cond renders a condition as Type=Status/Reason.
func cond(c metav1.Condition) string { return fmt.Sprintf("%s=%s/%s", c.Type, c.Status, c.Reason) }

func conds(cs []metav1.Condition) string {
	var out []string
	for _, c := range cs {
		out = append(out, cond(c))
	}
	return strings.Join(out, " ")
}

// listeners renders a Gateway's listener statuses, one line each.
func listeners(st gatewayv1.GatewayStatus) []string {
	var out []string
	for _, l := range st.Listeners {
		var kinds []string
		for _, k := range l.SupportedKinds {
			kinds = append(kinds, string(k.Kind))
		}
		out = append(out, fmt.Sprintf("%s: %s kinds=%s attached=%d", l.Name, conds(l.Conditions), strings.Join(kinds, ","), l.AttachedRoutes))
	}
	return out
}

func gatewayDoc(listeners string) string {
	return `---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge, namespace: shop, generation: 3}
spec:
  gatewayClassName: sinew
  listeners:
` + listeners
}

var ready = gateway.Infrastructure{Ready: true}

func TestListenerStatus(t *testing.T) {
	t.Parallel()
	const ok = "Accepted=True/Accepted Conflicted=False/NoConflicts ResolvedRefs=True/ResolvedRefs Programmed=True/Programmed"
	for _, tc := range []struct {
		name      string
		listeners string
		extra     string
		mutate    func(*model.Resources)
		infra     gateway.Infrastructure
		gateway   string
		want      []string
	}{
		{
			name: "http and https",
			listeners: `  - {name: http, port: 80, protocol: HTTP}
  - {name: https, port: 443, protocol: HTTPS, hostname: shop.example.com, tls: {certificateRefs: [{name: shop-tls}]}}
`,
			extra:   secret(t, "shop", "shop-tls", "shop.example.com"),
			infra:   ready,
			gateway: "Accepted=True/Accepted Programmed=True/Programmed",
			want:    []string{"http: " + ok + " kinds=HTTPRoute,GRPCRoute attached=0", "https: " + ok + " kinds=HTTPRoute,GRPCRoute attached=0"},
		},
		{
			name: "proxies not ready",
			listeners: `  - {name: http, port: 80, protocol: HTTP}
`,
			infra:   gateway.Infrastructure{Reason: "NoResources", Message: "no replicas"},
			gateway: "Accepted=True/Accepted Programmed=False/NoResources",
			want:    []string{"http: Accepted=True/Accepted Conflicted=False/NoConflicts ResolvedRefs=True/ResolvedRefs Programmed=False/Pending kinds=HTTPRoute,GRPCRoute attached=0"},
		},
		{
			name: "an unsupported protocol beside HTTP",
			listeners: `  - {name: http, port: 80, protocol: HTTP}
  - {name: tcp, port: 9000, protocol: TCP}
`,
			infra:   ready,
			gateway: "Accepted=True/ListenersNotValid Programmed=True/Programmed",
			want: []string{"http: " + ok + " kinds=HTTPRoute,GRPCRoute attached=0",
				"tcp: Accepted=False/UnsupportedProtocol Conflicted=False/NoConflicts ResolvedRefs=True/ResolvedRefs Programmed=False/Invalid kinds= attached=0"},
		},
		{
			name: "only unsupported protocols",
			listeners: `  - {name: tcp, port: 9000, protocol: TCP}
`,
			infra:   ready,
			gateway: "Accepted=False/ListenersNotValid Programmed=False/Invalid",
			want:    []string{"tcp: Accepted=False/UnsupportedProtocol Conflicted=False/NoConflicts ResolvedRefs=True/ResolvedRefs Programmed=False/Invalid kinds= attached=0"},
		},
		{
			name: "certificates that do not resolve",
			listeners: `  - {name: missing, port: 443, protocol: HTTPS, hostname: a.example.com, tls: {certificateRefs: [{name: nope}]}}
  - {name: kind, port: 443, protocol: HTTPS, hostname: b.example.com, tls: {certificateRefs: [{kind: ConfigMap, name: shop-tls}]}}
  - {name: group, port: 443, protocol: HTTPS, hostname: c.example.com, tls: {certificateRefs: [{group: example.com, kind: Secret, name: shop-tls}]}}
  - {name: malformed, port: 443, protocol: HTTPS, hostname: d.example.com, tls: {certificateRefs: [{name: broken}]}}
  - {name: elsewhere, port: 443, protocol: HTTPS, hostname: e.example.com, tls: {certificateRefs: [{name: shop-tls, namespace: certs}]}}
  - {name: http, port: 80, protocol: HTTP}
`,
			extra: secret(t, "shop", "shop-tls", "shop.example.com") + secret(t, "certs", "shop-tls", "shop.example.com"),
			mutate: func(r *model.Resources) {
				r.TLSSecrets = append(r.TLSSecrets, &model.TLSSecret{Namespace: "shop", Name: "broken", Chain: []byte("x"), PrivateKey: []byte("y")})
			},
			infra:   ready,
			gateway: "Accepted=True/ListenersNotValid Programmed=True/Programmed",
			want: []string{
				"missing: Accepted=True/Accepted Conflicted=False/NoConflicts ResolvedRefs=False/InvalidCertificateRef Programmed=False/Invalid kinds=HTTPRoute,GRPCRoute attached=0",
				"kind: Accepted=True/Accepted Conflicted=False/NoConflicts ResolvedRefs=False/InvalidCertificateRef Programmed=False/Invalid kinds=HTTPRoute,GRPCRoute attached=0",
				"group: Accepted=True/Accepted Conflicted=False/NoConflicts ResolvedRefs=False/InvalidCertificateRef Programmed=False/Invalid kinds=HTTPRoute,GRPCRoute attached=0",
				"malformed: Accepted=True/Accepted Conflicted=False/NoConflicts ResolvedRefs=False/InvalidCertificateRef Programmed=False/Invalid kinds=HTTPRoute,GRPCRoute attached=0",
				"elsewhere: Accepted=True/Accepted Conflicted=False/NoConflicts ResolvedRefs=False/RefNotPermitted Programmed=False/Invalid kinds=HTTPRoute,GRPCRoute attached=0",
				"http: " + ok + " kinds=HTTPRoute,GRPCRoute attached=0",
			},
		},
		{
			name: "a ReferenceGrant allows a certificate of another namespace",
			listeners: `  - {name: https, port: 443, protocol: HTTPS, tls: {certificateRefs: [{name: shop-tls, namespace: certs}]}}
  - {name: named, port: 8443, protocol: HTTPS, tls: {certificateRefs: [{name: other, namespace: certs}]}}
`,
			extra: secret(t, "certs", "shop-tls", "shop.example.com") + secret(t, "certs", "other", "shop.example.com") + `---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: shop, namespace: certs}
spec:
  from: [{group: gateway.networking.k8s.io, kind: Gateway, namespace: shop}]
  to: [{group: "", kind: Secret, name: shop-tls}]
`,
			infra:   ready,
			gateway: "Accepted=True/ListenersNotValid Programmed=True/Programmed",
			want: []string{"https: " + ok + " kinds=HTTPRoute,GRPCRoute attached=0",
				"named: Accepted=True/Accepted Conflicted=False/NoConflicts ResolvedRefs=False/RefNotPermitted Programmed=False/Invalid kinds=HTTPRoute,GRPCRoute attached=0"},
		},
		{
			name: "route kinds",
			listeners: `  - {name: invalid, port: 80, protocol: HTTP, allowedRoutes: {kinds: [{kind: TCPRoute}]}}
  - {name: mixed, port: 81, protocol: HTTP, allowedRoutes: {kinds: [{kind: HTTPRoute}, {group: example.com, kind: HTTPRoute}]}}
  - {name: grpc, port: 82, protocol: HTTP, allowedRoutes: {kinds: [{group: gateway.networking.k8s.io, kind: GRPCRoute}]}}
`,
			infra:   ready,
			gateway: "Accepted=True/Accepted Programmed=True/Programmed",
			want: []string{
				"invalid: Accepted=True/Accepted Conflicted=False/NoConflicts ResolvedRefs=False/InvalidRouteKinds Programmed=True/Programmed kinds= attached=0",
				"mixed: Accepted=True/Accepted Conflicted=False/NoConflicts ResolvedRefs=False/InvalidRouteKinds Programmed=True/Programmed kinds=HTTPRoute attached=0",
				"grpc: " + ok + " kinds=GRPCRoute attached=0",
			},
		},
		{
			name: "HTTP and HTTPS on one port",
			listeners: `  - {name: http, port: 8000, protocol: HTTP}
  - {name: https, port: 8000, protocol: HTTPS, tls: {certificateRefs: [{name: shop-tls}]}}
  - {name: other, port: 8001, protocol: HTTP}
`,
			extra:   secret(t, "shop", "shop-tls", "shop.example.com"),
			infra:   ready,
			gateway: "Accepted=True/ListenersNotValid Programmed=True/Programmed",
			want: []string{
				"http: Accepted=True/Accepted Conflicted=True/ProtocolConflict ResolvedRefs=True/ResolvedRefs Programmed=False/Invalid kinds=HTTPRoute,GRPCRoute attached=0",
				"https: Accepted=True/Accepted Conflicted=True/ProtocolConflict ResolvedRefs=True/ResolvedRefs Programmed=False/Invalid kinds=HTTPRoute,GRPCRoute attached=0",
				"other: " + ok + " kinds=HTTPRoute,GRPCRoute attached=0",
			},
		},
		{
			name: "static addresses",
			listeners: `  - {name: http, port: 80, protocol: HTTP}
`,
			mutate: func(r *model.Resources) {
				r.Gateways[0].Spec.Addresses = []gatewayv1.GatewaySpecAddress{{Value: "10.0.0.1"}}
			},
			infra:   ready,
			gateway: "Accepted=False/UnsupportedAddress Programmed=False/Invalid",
			want:    []string{"http: Accepted=True/Accepted Conflicted=False/NoConflicts ResolvedRefs=True/ResolvedRefs Programmed=False/Invalid kinds=HTTPRoute,GRPCRoute attached=0"},
		},
		{
			// The CRD refuses this, so only a source that does not validate (or a future ListenerSet) gets here.
			name: "one hostname twice on a port",
			listeners: `  - {name: a, port: 80, protocol: HTTP, hostname: shop.example.com}
  - {name: b, port: 80, protocol: HTTP, hostname: other.example.com}
`,
			mutate: func(r *model.Resources) {
				r.Gateways[0].Spec.Listeners[1].Hostname = r.Gateways[0].Spec.Listeners[0].Hostname
			},
			infra:   ready,
			gateway: "Accepted=False/ListenersNotValid Programmed=False/Invalid",
			want: []string{
				"a: Accepted=True/Accepted Conflicted=True/HostnameConflict ResolvedRefs=True/ResolvedRefs Programmed=False/Invalid kinds=HTTPRoute,GRPCRoute attached=0",
				"b: Accepted=True/Accepted Conflicted=True/HostnameConflict ResolvedRefs=True/ResolvedRefs Programmed=False/Invalid kinds=HTTPRoute,GRPCRoute attached=0",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			snap := snapshot(t, class+gatewayDoc(tc.listeners)+tc.extra, tc.mutate)
			gw, _ := snap.Gateway("shop", "edge")
			if !gateway.Ours(snap, gw) {
				t.Fatal("the Gateway is not ours")
			}
			st := gateway.Status(snap, gw, tc.infra)
			if got := conds(st.Conditions); got != tc.gateway {
				t.Errorf("gateway conditions %s, want %s", got, tc.gateway)
			}
			for _, c := range st.Conditions {
				if c.ObservedGeneration != 3 {
					t.Errorf("%s: observedGeneration %d, want 3", c.Type, c.ObservedGeneration)
				}
			}
			if got := listeners(st); strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("listeners:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			// The config serves exactly the programmable listeners.
			var served []string
			for _, l := range gateway.Config(snap, clusterDomain, "shop", "edge").GetListeners() {
				served = append(served, l.GetName())
			}
			var want []string
			for _, l := range st.Listeners {
				if l.Conditions[3].Reason != string(gatewayv1.ListenerReasonInvalid) {
					want = append(want, string(l.Name))
				}
			}
			if strings.Join(served, ",") != strings.Join(want, ",") {
				t.Errorf("config serves %v, want %v", served, want)
			}
		})
	}
}

// attachGateway is a Gateway in namespace infra whose listeners admit routes differently.
const attachGateway = `---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra}
spec:
  gatewayClassName: sinew
  listeners:
  - {name: all, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}
  - {name: same, port: 8080, protocol: HTTP, hostname: "*.example.com"}
  - {name: sel, port: 8081, protocol: HTTP, allowedRoutes: {namespaces: {from: Selector, selector: {matchLabels: {edge: "yes"}}}}}
  - {name: grpc-only, port: 8082, protocol: HTTP, allowedRoutes: {kinds: [{kind: GRPCRoute}], namespaces: {from: All}}}
  - {name: none, port: 8083, protocol: HTTP, allowedRoutes: {namespaces: {from: None}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: theirs, namespace: infra}
spec:
  gatewayClassName: theirs
  listeners: [{name: all, port: 80, protocol: HTTP}]
---
apiVersion: v1
kind: Namespace
metadata: {name: apps, labels: {edge: "yes"}}
---
kind: Service
metadata: {name: web, namespace: apps}
spec: {ports: [{port: 80}]}
---
kind: Service
metadata: {name: web, namespace: infra}
spec: {ports: [{port: 80}]}
---
kind: Service
metadata: {name: web, namespace: other}
spec: {ports: [{port: 80}]}
`

func TestRouteAttachment(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		route string // an HTTPRoute's metadata and spec (or a whole GRPCRoute document)
		extra string
		want  []string // per Gateway parent: conditions, then the listeners it attaches to
	}{
		{"the whole Gateway, same namespace", `metadata: {name: r, namespace: infra}
spec:
  parentRefs: [{name: gw}]
  rules: [{backendRefs: [{name: web, port: 80}]}]`,
			"", []string{"Accepted=True/Accepted ResolvedRefs=True/ResolvedRefs [all same]"}},
		{"a selected namespace", `metadata: {name: r, namespace: apps}
spec:
  parentRefs: [{name: gw, namespace: infra}]
  rules: [{backendRefs: [{name: web, port: 80}]}]`,
			"", []string{"Accepted=True/Accepted ResolvedRefs=True/ResolvedRefs [all sel]"}},
		{"another namespace", `metadata: {name: r, namespace: other}
spec:
  parentRefs: [{name: gw, namespace: infra}]
  rules: [{backendRefs: [{name: web, port: 80}]}]`,
			"", []string{"Accepted=True/Accepted ResolvedRefs=True/ResolvedRefs [all]"}},
		{"not allowed by the listener", `metadata: {name: r, namespace: other}
spec:
  parentRefs: [{name: gw, namespace: infra, sectionName: same}, {name: gw, namespace: infra, sectionName: none}, {name: gw, namespace: infra, sectionName: grpc-only}]
  rules: [{backendRefs: [{name: web, port: 80}]}]`,
			"", []string{"Accepted=False/NotAllowedByListeners ResolvedRefs=True/ResolvedRefs []",
				"Accepted=False/NotAllowedByListeners ResolvedRefs=True/ResolvedRefs []",
				"Accepted=False/NotAllowedByListeners ResolvedRefs=True/ResolvedRefs []"}},
		{"no such listener", `metadata: {name: r, namespace: infra}
spec:
  parentRefs: [{name: gw, sectionName: nope}, {name: gw, port: 9999}, {name: gw, sectionName: all, port: 8080}]`,
			"", []string{"Accepted=False/NoMatchingParent ResolvedRefs=True/ResolvedRefs []",
				"Accepted=False/NoMatchingParent ResolvedRefs=True/ResolvedRefs []",
				"Accepted=False/NoMatchingParent ResolvedRefs=True/ResolvedRefs []"}},
		{"by port", `metadata: {name: r, namespace: infra}
spec:
  parentRefs: [{name: gw, port: 8080}]`,
			"", []string{"Accepted=True/Accepted ResolvedRefs=True/ResolvedRefs [same]"}},
		{"no matching hostname", `metadata: {name: r, namespace: infra}
spec:
  parentRefs: [{name: gw, sectionName: same}]
  hostnames: [shop.example.org]`,
			"", []string{"Accepted=False/NoMatchingListenerHostname ResolvedRefs=True/ResolvedRefs []"}},
		{"hostnames pick listeners", `metadata: {name: r, namespace: infra}
spec:
  parentRefs: [{name: gw}]
  hostnames: [shop.example.org]`,
			"", []string{"Accepted=True/Accepted ResolvedRefs=True/ResolvedRefs [all]"}},
		{"a GRPCRoute", `apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: g, namespace: other}
spec:
  parentRefs: [{name: gw, namespace: infra}]`,
			"", []string{"Accepted=True/Accepted ResolvedRefs=True/ResolvedRefs [all grpc-only]"}},
		{"a backend in another namespace without a ReferenceGrant", `metadata: {name: r, namespace: infra}
spec:
  parentRefs: [{name: gw, sectionName: all}]
  rules: [{backendRefs: [{name: web, namespace: apps, port: 80}]}]`,
			"", []string{"Accepted=True/Accepted ResolvedRefs=False/RefNotPermitted [all]"}},
		{"a backend in another namespace with a ReferenceGrant", `metadata: {name: r, namespace: infra}
spec:
  parentRefs: [{name: gw, sectionName: all}]
  rules: [{backendRefs: [{name: web, namespace: apps, port: 80}]}]`,
			`---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: infra-routes, namespace: apps}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: infra}]
  to: [{group: "", kind: Service}]
`, []string{"Accepted=True/Accepted ResolvedRefs=True/ResolvedRefs [all]"}},
		{"backends that do not resolve", `metadata: {name: r, namespace: infra}
spec:
  parentRefs: [{name: gw, sectionName: all}]
  rules: [{backendRefs: [{name: gone, port: 80}]}]`,
			"", []string{"Accepted=True/Accepted ResolvedRefs=False/BackendNotFound [all]"}},
		{"a backend of another kind", `metadata: {name: r, namespace: infra}
spec:
  parentRefs: [{name: gw, sectionName: all}]
  rules: [{backendRefs: [{group: example.com, kind: Bucket, name: b, port: 80}]}]`,
			"", []string{"Accepted=True/Accepted ResolvedRefs=False/InvalidKind [all]"}},
		{"an older HTTPRoute with the same hostnames takes the listener", `apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: g, namespace: infra, creationTimestamp: "2026-02-01T00:00:00Z"}
spec:
  parentRefs: [{name: gw, sectionName: all}, {name: gw, sectionName: same}]
  hostnames: [a.example.com]`, `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: older, namespace: infra, creationTimestamp: "2026-01-01T00:00:00Z"}
spec:
  parentRefs: [{name: gw, sectionName: all}, {name: gw, sectionName: same}]
  hostnames: ["*.example.com"]
`, []string{"Accepted=False/RouteReasonConflicted ResolvedRefs=True/ResolvedRefs []",
			"Accepted=False/RouteReasonConflicted ResolvedRefs=True/ResolvedRefs []"}},
		{"an older HTTPRoute for other hostnames leaves the listener", `apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: g, namespace: infra, creationTimestamp: "2026-02-01T00:00:00Z"}
spec:
  parentRefs: [{name: gw, sectionName: same}]
  hostnames: [a.example.com]`, `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: older, namespace: infra, creationTimestamp: "2026-01-01T00:00:00Z"}
spec:
  parentRefs: [{name: gw, sectionName: same}]
  hostnames: [b.example.com]
`, []string{"Accepted=True/Accepted ResolvedRefs=True/ResolvedRefs [same]"}},
		{"parents of other controllers get no entry", `metadata: {name: r, namespace: infra}
spec:
  parentRefs: [{name: theirs}, {name: missing}, {group: "", kind: Service, name: web}, {name: gw, sectionName: all}]`,
			"", []string{"Accepted=True/Accepted ResolvedRefs=True/ResolvedRefs [all]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			doc := tc.route
			if !strings.Contains(doc, "kind:") || strings.HasPrefix(doc, "metadata") {
				doc = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n" + doc
			}
			snap := snapshot(t, class+attachGateway+tc.extra+"---\n"+doc+"\n", nil)
			rt := snap.Routes()[0]
			if rt.Name == "older" {
				rt = snap.Routes()[1]
			}
			statuses := gateway.RouteParentStatuses(snap, rt)
			parents := gateway.RouteParents(snap, rt)
			var got []string
			for i, st := range statuses {
				if st.ControllerName != gateway.ControllerName {
					t.Errorf("controllerName %s", st.ControllerName)
				}
				got = append(got, fmt.Sprintf("%s %v", conds(st.Conditions), parents[i].Listeners))
			}
			for i, p := range parents {
				if p.Index >= len(rt.ParentRefs) || statuses[i].ParentRef.Name != rt.ParentRefs[p.Index].Name {
					t.Errorf("parent %d: index %d does not match the status's parentRef", i, p.Index)
				}
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			// The listeners' attachedRoutes count the route where it attaches, and nowhere else.
			gw, _ := snap.Gateway("infra", "gw")
			attached := map[string]bool{}
			for _, p := range parents {
				for _, l := range p.Listeners {
					attached[l] = true
				}
			}
			others := map[string]int32{}
			if tc.extra != "" && strings.Contains(tc.extra, "name: older") {
				for _, p := range gateway.RouteParents(snap, snap.Routes()[0]) {
					for _, l := range p.Listeners {
						others[l] = 1
					}
				}
			}
			for _, l := range gateway.Status(snap, gw, ready).Listeners {
				if want := map[bool]int32{true: 1}[attached[string(l.Name)]] + others[string(l.Name)]; l.AttachedRoutes != want {
					t.Errorf("listener %s: attachedRoutes %d, want %d", l.Name, l.AttachedRoutes, want)
				}
			}
		})
	}
}

// render is a stable JSON form of a GatewayConfig, with each certificate's PEM replaced by the name of the
// Secret it must come from (checked here), since the keys are made afresh for each run.
func render(t *testing.T, snap *model.Snapshot, cfg *policyv1.GatewayConfig) []byte {
	t.Helper()
	cfg = proto.CloneOf(cfg)
	for _, l := range cfg.GetListeners() {
		for _, c := range l.GetCertificates() {
			ns, name, _ := strings.Cut(c.GetName(), "/")
			sec, ok := snap.TLSSecret(ns, name)
			if !ok || !bytes.Equal(sec.Chain, c.GetChainPem()) || !bytes.Equal(sec.PrivateKey, c.GetKeyPem()) {
				t.Errorf("listener %s: certificate %s is not its Secret's", l.GetName(), c.GetName())
			}
			c.ChainPem, c.KeyPem = []byte("chain of "+c.GetName()), []byte("key of "+c.GetName())
		}
	}
	b, err := protojson.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if b, err = json.MarshalIndent(v, "", "  "); err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// configScenario is a Gateway with an HTTP listener, an HTTPS one and one it cannot serve, and routes of both
// kinds attached to them: oldest first, hostnames intersected, backends in another namespace with and without a
// ReferenceGrant, rules without backends.
func configScenario(t *testing.T) *model.Snapshot {
	return snapshot(t, class+`---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge, namespace: shop}
spec:
  gatewayClassName: sinew
  listeners:
  - {name: http, port: 8080, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}
  - {name: https, port: 8443, protocol: HTTPS, hostname: "*.example.com", tls: {certificateRefs: [{name: shop-tls}]}}
  - {name: tcp, port: 9000, protocol: TCP}
`+secret(t, "shop", "shop-tls", "*.example.com")+`---
kind: Service
metadata: {name: web, namespace: shop}
spec: {ports: [{port: 80}]}
---
kind: Service
metadata: {name: api, namespace: apps}
spec: {ports: [{port: 8080}]}
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: shop-routes, namespace: apps}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: shop}]
  to: [{group: "", kind: Service, name: api}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: new, namespace: shop, creationTimestamp: "2026-02-01T00:00:00Z"}
spec:
  parentRefs: [{name: edge, sectionName: http}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /old}}]
    filters: [{type: RequestRedirect, requestRedirect: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}, statusCode: 301}}]
  - matches: [{path: {type: PathPrefix, value: /nowhere}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: old, namespace: shop, creationTimestamp: "2026-01-01T00:00:00Z"}
spec:
  parentRefs: [{name: edge}]
  hostnames: [shop.example.com, shop.example.org]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}}]
    backendRefs: [{name: api, namespace: apps, port: 8080}]
    timeouts: {request: 5s}
    retry: {attempts: 2, codes: [503]}
  - filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-via, value: edge}]}}]
    backendRefs: [{name: web, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: grpc, namespace: shop, creationTimestamp: "2026-01-15T00:00:00Z"}
spec:
  parentRefs: [{name: edge, sectionName: https}]
  hostnames: [grpc.example.com]
  rules:
  - matches: [{method: {service: shop.Catalog}}]
    backendRefs: [{name: web, port: 80, weight: 9}, {name: api, namespace: apps, port: 8080, weight: 1}]
`, nil)
}

func TestConfig(t *testing.T) {
	t.Parallel()
	snap := configScenario(t)
	cfg := gateway.Config(snap, clusterDomain, "shop", "edge")
	golden.Check(t, "testdata/config.json", render(t, snap, cfg))
	if got, want := gateway.Ports(snap, mustGateway(t, snap, "shop", "edge")), []int32{8080, 8443}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Ports = %v, want %v", got, want)
	}

	if got := gateway.CertificateSecrets(mustGateway(t, snap, "shop", "edge")); fmt.Sprint(got) != "[shop/shop-tls]" {
		t.Errorf("CertificateSecrets = %v", got)
	}

	// A Gateway that does not exist, or is another controller's, gets no listeners.
	for _, name := range []string{"missing", "theirs"} {
		snap := snapshot(t, class+`---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: theirs, namespace: shop}
spec:
  gatewayClassName: theirs
  listeners: [{name: http, port: 80, protocol: HTTP}]
`, nil)
		cfg := gateway.Config(snap, clusterDomain, "shop", name)
		if cfg.GetExists() || len(cfg.GetListeners()) > 0 || cfg.GetLabels()["name"] != name || cfg.GetLabels()["kind"] != "Gateway" {
			t.Errorf("%s: %v", name, cfg)
		}
	}
}

func TestProblems(t *testing.T) {
	t.Parallel()
	snap := configScenario(t)
	golden.Check(t, "testdata/problems.txt", []byte(strings.Join(gateway.Problems(snap, clusterDomain), "\n")+"\n"))
}

func mustGateway(t *testing.T, snap *model.Snapshot, ns, name string) *gatewayv1.Gateway {
	t.Helper()
	gw, ok := snap.Gateway(ns, name)
	if !ok {
		t.Fatalf("no Gateway %s/%s", ns, name)
	}
	return gw
}
