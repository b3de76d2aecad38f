package authz

import (
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"

	"github.com/sinewmesh/sinew/controlplane/internal/model"
	"github.com/sinewmesh/sinew/controlplane/internal/policy/authz/api"
	"github.com/sinewmesh/sinew/internal/golden"
)

var testConfig = Config{
	TrustDomain:     "cluster.local",
	DefaultPolicy:   AllUnauthenticated,
	ClusterNetworks: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")},
	ProbeNetworks:   []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")},
}

// web is a pod of emojivoto's web: HTTP on 8080 (named http, probed), an admin port 9990.
func web() *model.Workload {
	return &model.Workload{Kind: model.KindPod, Namespace: "emojivoto", Name: "web-1", ServiceAccount: "web",
		Labels: map[string]string{"app": "web", "tier": "front"}, Address: netip.MustParseAddr("10.0.0.1"), MeshPort: 4143,
		Ports:  []model.WorkloadPort{{Name: "http", Port: 8080, Protocol: model.ProtocolHTTP}, {Name: "admin", Port: 9990, Protocol: model.ProtocolHTTP}},
		Probes: []model.Probe{{Port: 8080, Path: "/ready"}, {Port: 8080, Path: "/live"}, {Port: 9990, Path: "/metrics"}}}
}

// policies decodes YAML documents of the policy kinds as a source would (namespace defaulted to emojivoto).
func policies(t *testing.T, docs string) api.Policies {
	t.Helper()
	var p api.Policies
	for _, doc := range strings.Split(docs, "\n---\n") {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var tm struct{ Kind string }
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			t.Fatal(err)
		}
		obj, ok := api.New(tm.Kind)
		if !ok {
			t.Fatalf("kind %q", tm.Kind)
		}
		if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
			t.Fatalf("%s: %v", doc, err)
		}
		if err := obj.Validate(); err != nil {
			t.Fatalf("%s: %v", doc, err)
		}
		if m := obj.ObjectMeta(); m.Namespace == "" {
			m.Namespace = "emojivoto"
		}
		p.Add(obj)
	}
	return p
}

func snapshot(p api.Policies, ws ...*model.Workload) *model.Snapshot {
	s := model.NewStore()
	s.Update(model.Resources{Workloads: ws, Policies: p})
	return s.Snapshot()
}

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

const webServer = `
kind: Server
metadata: {name: web-http, labels: {app: web}}
spec: {podSelector: {matchLabels: {app: web}}, port: 8080, proxyProtocol: HTTP/1}
`

// TestDefaultPolicies: a port no Server selects gets the workload's default policy, else the cluster's.
func TestDefaultPolicies(t *testing.T) {
	t.Parallel()
	for _, policy := range []string{AllUnauthenticated, AllAuthenticated, ClusterUnauthenticated, ClusterAuthenticated, Deny, Audit} {
		cfg := testConfig
		cfg.DefaultPolicy = policy
		w := web()
		w.Probes = nil
		got := Inbound(snapshot(api.Policies{}, w), cfg, w, 8080)
		golden.Check(t, "testdata/default-"+policy+".json", render(t, got))

		// The workload's annotation beats the cluster's default.
		w.DefaultInboundPolicy = policy
		other := testConfig
		other.DefaultPolicy = Deny
		if policy == Deny {
			other.DefaultPolicy = AllUnauthenticated
		}
		if again := Inbound(snapshot(api.Policies{}, w), other, w, 8080); !proto.Equal(got, again) {
			t.Errorf("%s on the workload, %s in the cluster:\n%s", policy, other.DefaultPolicy, render(t, again))
		}
	}
	// A workload the model does not know gets the cluster's default, without probes; so does an unset default.
	got := Inbound(snapshot(api.Policies{}), Config{TrustDomain: "cluster.local"}, nil, 8080)
	if got.GetLabels()["name"] != AllUnauthenticated || len(got.GetAuthorizations()) != 1 || !got.GetAuthorizations()[0].GetUnauthenticated() {
		t.Errorf("unknown workload:\n%s", render(t, got))
	}
	// Without cluster networks, the cluster-* policies admit nobody rather than everybody.
	cfg := testConfig
	cfg.ClusterNetworks, cfg.DefaultPolicy = nil, ClusterUnauthenticated
	if got := Inbound(snapshot(api.Policies{}), cfg, nil, 8080); len(got.GetAuthorizations()) != 0 {
		t.Errorf("cluster-unauthenticated without cluster networks:\n%s", render(t, got))
	}
}

// TestServers: golden translations of Servers and what authorizes them.
func TestServers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, docs string
		port       uint16
		problems   []string
	}{
		{name: "server-deny-no-authorizations", docs: webServer, port: 8080},
		{name: "server-audit", port: 8080, docs: `
kind: Server
metadata: {name: web-http}
spec: {podSelector: {matchLabels: {app: web}}, port: http, accessPolicy: audit}
`},
		{name: "server-port-by-name-grpc-cluster-authenticated", port: 9990, docs: `
kind: Server
metadata: {name: web-admin}
spec: {podSelector: {matchExpressions: [{key: tier, operator: In, values: [front, back]}]}, port: admin, proxyProtocol: gRPC, accessPolicy: cluster-authenticated}
`},
		{name: "serverauthorization-serviceaccounts", port: 8080, docs: webServer + `
---
kind: ServerAuthorization
metadata: {name: web-clients}
spec:
  server: {name: web-http}
  client:
    meshTLS:
      serviceAccounts: [{name: vote-bot}, {name: prometheus, namespace: monitoring}]
`},
		{name: "serverauthorization-network", port: 8080, docs: webServer + `
---
kind: ServerAuthorization
metadata: {name: from-nodes}
spec:
  server: {selector: {matchLabels: {app: web}}}
  client:
    unauthenticated: true
    networks: [{cidr: 192.168.0.0/16, except: [192.168.1.0/24]}, {cidr: 172.16.0.7}]
---
kind: ServerAuthorization
metadata: {name: any-meshed}
spec:
  server: {name: web-http}
  client: {meshTLS: {unauthenticatedTLS: true}}
---
kind: ServerAuthorization
metadata: {name: other-server}
spec:
  server: {name: voting-grpc}
  client: {unauthenticated: true}
`, problems: []string{"ServerAuthorization emojivoto/other-server: Server voting-grpc does not exist"}},
		{name: "authorizationpolicy-meshtls-and-network", port: 8080, docs: webServer + `
---
kind: AuthorizationPolicy
metadata: {name: web-from-bots}
spec:
  targetRef: {group: policy.sinew.dev, kind: Server, name: web-http}
  requiredAuthenticationRefs:
  - {group: policy.sinew.dev, kind: MeshTLSAuthentication, name: bots}
  - {group: policy.sinew.dev, kind: NetworkAuthentication, name: cluster}
---
kind: AuthorizationPolicy
metadata: {name: web-from-ns}
spec:
  targetRef: {group: policy.sinew.dev, kind: Server, name: web-http}
  requiredAuthenticationRefs:
  - {group: policy.sinew.dev, kind: MeshTLSAuthentication, name: same-namespace}
---
kind: MeshTLSAuthentication
metadata: {name: bots}
spec: {identities: ["spiffe://cluster.local/ns/emojivoto/sa/vote-bot", "spiffe://cluster.local/ns/load/*"]}
---
kind: MeshTLSAuthentication
metadata: {name: same-namespace}
spec: {identityRefs: [{kind: ServiceAccount, name: "*"}, {kind: Namespace, name: monitoring}, {kind: ServiceAccount, name: admin, namespace: ops}]}
---
kind: NetworkAuthentication
metadata: {name: cluster}
spec: {networks: [{cidr: 10.0.0.0/8, except: [10.9.0.0/16]}]}
`},
		{name: "authorizationpolicy-intersections", port: 8080, docs: webServer + `
---
kind: AuthorizationPolicy
metadata: {name: both}
spec:
  targetRef: {group: policy.sinew.dev, kind: Server, name: web-http}
  requiredAuthenticationRefs:
  - {group: policy.sinew.dev, kind: MeshTLSAuthentication, name: emojivoto-all}
  - {group: policy.sinew.dev, kind: MeshTLSAuthentication, name: some}
  - {group: policy.sinew.dev, kind: NetworkAuthentication, name: wide}
  - {group: policy.sinew.dev, kind: NetworkAuthentication, name: narrow}
---
kind: AuthorizationPolicy
metadata: {name: disjoint}
spec:
  targetRef: {group: policy.sinew.dev, kind: Server, name: web-http}
  requiredAuthenticationRefs:
  - {group: policy.sinew.dev, kind: MeshTLSAuthentication, name: bots-only}
  - {kind: ServiceAccount, name: web}
---
kind: MeshTLSAuthentication
metadata: {name: bots-only}
spec: {identities: ["spiffe://cluster.local/ns/emojivoto/sa/vote-bot"]}
---
kind: AuthorizationPolicy
metadata: {name: disjoint-networks}
spec:
  targetRef: {group: policy.sinew.dev, kind: Server, name: web-http}
  requiredAuthenticationRefs:
  - {group: policy.sinew.dev, kind: NetworkAuthentication, name: wide}
  - {group: policy.sinew.dev, kind: NetworkAuthentication, name: elsewhere}
---
kind: NetworkAuthentication
metadata: {name: elsewhere}
spec: {networks: [{cidr: 172.16.0.0/12}, {cidr: 10.1.0.0/16}]}
---
kind: AuthorizationPolicy
metadata: {name: only-sa}
spec:
  targetRef: {group: policy.sinew.dev, kind: Server, name: web-http}
  requiredAuthenticationRefs:
  - {kind: ServiceAccount, name: web}
---
kind: MeshTLSAuthentication
metadata: {name: emojivoto-all}
spec: {identityRefs: [{kind: Namespace, name: emojivoto}]}
---
kind: MeshTLSAuthentication
metadata: {name: some}
spec: {identities: ["spiffe://cluster.local/ns/emojivoto/sa/vote-bot", "spiffe://cluster.local/ns/other/sa/x", "*"]}
---
kind: NetworkAuthentication
metadata: {name: wide}
spec: {networks: [{cidr: 10.0.0.0/8, except: [10.1.0.0/16, 10.2.3.0/24]}]}
---
kind: NetworkAuthentication
metadata: {name: narrow}
spec: {networks: [{cidr: 10.2.0.0/16}, {cidr: 10.1.2.0/24}, {cidr: 192.168.0.0/16}]}
`, problems: []string{
			"AuthorizationPolicy emojivoto/disjoint-networks: no address is in every required NetworkAuthentication: the policy admits nobody",
			"AuthorizationPolicy emojivoto/disjoint: no identity satisfies every required MeshTLSAuthentication and ServiceAccount: the policy admits nobody",
		}},
		{name: "authorizationpolicy-namespace-target", port: 8080, docs: webServer + `
---
kind: AuthorizationPolicy
metadata: {name: whole-namespace}
spec:
  targetRef: {kind: Namespace, name: emojivoto}
  requiredAuthenticationRefs: [{group: policy.sinew.dev, kind: NetworkAuthentication, name: pods}]
---
kind: AuthorizationPolicy
metadata: {name: other-namespace}
spec:
  targetRef: {kind: Namespace, name: kube-system}
  requiredAuthenticationRefs: []
---
kind: AuthorizationPolicy
metadata: {name: route}
spec:
  targetRef: {group: gateway.networking.k8s.io, kind: HTTPRoute, name: web-route}
  requiredAuthenticationRefs: []
---
kind: NetworkAuthentication
metadata: {name: pods}
spec: {networks: [{cidr: 10.0.0.0/8}]}
`, problems: []string{
			"AuthorizationPolicy emojivoto/other-namespace: targets namespace kube-system: a policy applies only to its own namespace; it has no effect",
			"AuthorizationPolicy emojivoto/route: targets HTTPRoute web-route, which does not exist",
		}},
		{name: "authorizationpolicy-jwt-and-missing-admit-nobody", port: 8080, docs: webServer + `
---
kind: AuthorizationPolicy
metadata: {name: jwt}
spec:
  targetRef: {group: policy.sinew.dev, kind: Server, name: web-http}
  requiredAuthenticationRefs:
  - {group: policy.sinew.dev, kind: NetworkAuthentication, name: anywhere}
  - {group: policy.sinew.dev, kind: JWTAuthentication, name: tokens}
---
kind: AuthorizationPolicy
metadata: {name: missing}
spec:
  targetRef: {group: policy.sinew.dev, kind: Server, name: web-http}
  requiredAuthenticationRefs:
  - {group: policy.sinew.dev, kind: MeshTLSAuthentication, name: gone}
---
kind: AuthorizationPolicy
metadata: {name: missing-network}
spec:
  targetRef: {group: policy.sinew.dev, kind: Server, name: web-http}
  requiredAuthenticationRefs:
  - {group: policy.sinew.dev, kind: NetworkAuthentication, name: gone, namespace: elsewhere}
---
kind: NetworkAuthentication
metadata: {name: anywhere}
spec: {networks: [{cidr: 0.0.0.0/0}]}
`, problems: []string{
			"AuthorizationPolicy emojivoto/jwt: JWTAuthentication emojivoto/tokens does not exist: the policy admits nobody",
			"AuthorizationPolicy emojivoto/missing-network: NetworkAuthentication elsewhere/gone does not exist: the policy admits nobody",
			"AuthorizationPolicy emojivoto/missing: MeshTLSAuthentication emojivoto/gone does not exist: the policy admits nobody",
		}},
		{name: "overlapping-servers", port: 8080, docs: `
kind: Server
metadata: {name: zz-oldest, creationTimestamp: "2024-01-01T00:00:00Z"}
spec: {podSelector: {matchLabels: {app: web}}, port: 8080, accessPolicy: all-authenticated}
---
kind: Server
metadata: {name: aa-newer, creationTimestamp: "2025-01-01T00:00:00Z"}
spec: {podSelector: {}, port: http}
---
kind: Server
metadata: {name: bb-newer, creationTimestamp: "2025-01-01T00:00:00Z"}
spec: {podSelector: {matchLabels: {tier: front}}, port: 8080}
---
kind: Server
metadata: {name: workloads-only}
spec: {workloadSelector: {}, port: 8080}
---
kind: Server
metadata: {name: other-namespace, namespace: voting}
spec: {podSelector: {}, port: 8080}
`, problems: []string{
			"Server emojivoto/aa-newer: selects port 8080 of web-1, like Server emojivoto/zz-oldest, which applies (older, or first by name)",
			"Server emojivoto/bb-newer: selects port 8080 of web-1, like Server emojivoto/zz-oldest, which applies (older, or first by name)",
		}},
		{name: "identities-unsupported", port: 8080, docs: webServer + `
---
kind: ServerAuthorization
metadata: {name: dns-style}
spec:
  server: {name: web-http}
  client: {meshTLS: {identities: ["*.emojivoto.serviceaccount.identity.sinew.cluster.local"]}}
---
kind: ServerAuthorization
metadata: {name: mixed}
spec:
  server: {name: web-http}
  client: {meshTLS: {identities: ["*.cluster.local", "spiffe://cluster.local/ns/emojivoto/sa/web"]}}
`, problems: []string{
			"ServerAuthorization emojivoto/dns-style: identity \"*.emojivoto.serviceaccount.identity.sinew.cluster.local\": only '*', SPIFFE IDs and SPIFFE prefixes ending in '*' are supported; left out",
			"ServerAuthorization emojivoto/dns-style: no identity it names can be honoured: it admits nobody",
			"ServerAuthorization emojivoto/mixed: identity \"*.cluster.local\": only '*', SPIFFE IDs and SPIFFE prefixes ending in '*' are supported; left out",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pol := policies(t, tc.docs)
			snap := snapshot(pol, web())
			w, _ := snap.Workload("emojivoto", "web-1")
			golden.Check(t, "testdata/"+tc.name+".json", render(t, Inbound(snap, testConfig, w, tc.port)))
			got := Problems(snap, testConfig)
			want := slices.Clone(tc.problems)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("problems:\n got %q\nwant %q", got, want)
			}
		})
	}
}

// A Server's podSelector does not pick local Workloads, nor its workloadSelector pods; a Server selects only
// its own namespace; a port no Server names keeps the default.
func TestServerSelection(t *testing.T) {
	t.Parallel()
	pol := policies(t, `
kind: Server
metadata: {name: pods}
spec: {podSelector: {}, port: 8080}
---
kind: Server
metadata: {name: workloads}
spec: {workloadSelector: {matchExpressions: [{key: app, operator: Exists}]}, port: 8080, accessPolicy: all-authenticated}
---
kind: Server
metadata: {name: not-app, namespace: emojivoto}
spec: {podSelector: {matchExpressions: [{key: app, operator: DoesNotExist}]}, port: 9990}
`)
	pod := web()
	local := web()
	local.Kind, local.Name = model.KindWorkload, "web-local"
	elsewhere := web()
	elsewhere.Namespace = "voting"
	snap := snapshot(pol, pod, local, elsewhere)
	for _, tc := range []struct {
		w    *model.Workload
		port uint16
		want string
	}{
		{pod, 8080, "pods"}, {local, 8080, "workloads"}, {elsewhere, 8080, AllUnauthenticated},
		{pod, 9990, AllUnauthenticated}, {pod, 7000, AllUnauthenticated},
	} {
		if got := Inbound(snap, testConfig, tc.w, tc.port).GetLabels()["name"]; got != tc.want {
			t.Errorf("%s/%s:%d: %s, want %s", tc.w.Kind, tc.w.Key(), tc.port, got, tc.want)
		}
	}
	// The probe paths of a Server's port are there too, sorted, with the probe networks.
	got := Inbound(snap, testConfig, pod, 8080)
	if !slices.Equal(got.GetProbePaths(), []string{"/live", "/ready"}) || len(got.GetProbeNetworks()) != 2 {
		t.Errorf("probes: %v from %v", got.GetProbePaths(), got.GetProbeNetworks())
	}
	if got := Inbound(snap, testConfig, pod, 7000); len(got.GetProbePaths()) != 0 || len(got.GetProbeNetworks()) != 0 {
		t.Errorf("a port without probes: %v from %v", got.GetProbePaths(), got.GetProbeNetworks())
	}
}

// Translations never share messages with each other, so the server may keep the last one to compare.
func TestInboundIsFresh(t *testing.T) {
	t.Parallel()
	pol := policies(t, webServer+"\n---\nkind: AuthorizationPolicy\nmetadata: {name: a}\nspec: {targetRef: {group: policy.sinew.dev, kind: Server, name: web-http}, requiredAuthenticationRefs: [{kind: ServiceAccount, name: x}]}\n")
	snap := snapshot(pol, web())
	w, _ := snap.Workload("emojivoto", "web-1")
	a, b := Inbound(snap, testConfig, w, 8080), Inbound(snap, testConfig, w, 8080)
	a.Authorizations[0].Identities[0] = "changed"
	a.ProbePaths[0] = "changed"
	a.ProbeNetworks[0].Cidr = "changed"
	if !proto.Equal(b, Inbound(snap, testConfig, w, 8080)) {
		t.Error("answers share state")
	}
}

func TestIntersectIdentity(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		x, y, want string
		ok         bool
	}{
		{"*", "spiffe://td/ns/a/sa/b", "spiffe://td/ns/a/sa/b", true},
		{"spiffe://td/ns/a/*", "*", "spiffe://td/ns/a/*", true},
		{"spiffe://td/ns/a/sa/b", "spiffe://td/ns/a/sa/b", "spiffe://td/ns/a/sa/b", true},
		{"spiffe://td/ns/a/sa/b", "spiffe://td/ns/a/sa/c", "", false},
		{"spiffe://td/ns/a/*", "spiffe://td/ns/a/sa/c", "spiffe://td/ns/a/sa/c", true},
		{"spiffe://td/ns/b/sa/c", "spiffe://td/ns/a/*", "", false},
		{"spiffe://td/*", "spiffe://td/ns/a/*", "spiffe://td/ns/a/*", true},
		{"spiffe://td/ns/a/*", "spiffe://td/*", "spiffe://td/ns/a/*", true},
		{"spiffe://td/ns/a/*", "spiffe://td/ns/b/*", "", false},
	} {
		got, ok := intersectIdentity(tc.x, tc.y)
		if ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("%s ∩ %s = %q %v, want %q %v", tc.x, tc.y, got, ok, tc.want, tc.ok)
		}
	}
}

func TestConfig(t *testing.T) {
	t.Parallel()
	if err := testConfig.Validate(); err != nil {
		t.Error(err)
	}
	if err := (Config{TrustDomain: "cluster.local", DefaultPolicy: "allow"}).Validate(); err == nil {
		t.Error("policy allow accepted")
	}
	nets, err := ParseNetworks(" 10.0.0.0/8, fd00::/8,,192.168.1.1 ")
	if err != nil || len(nets) != 3 || nets[2].String() != "192.168.1.1/32" {
		t.Errorf("%v %v", nets, err)
	}
	if _, err := ParseNetworks("10.0.0.0/33"); err == nil {
		t.Error("10.0.0.0/33 accepted")
	}
}
