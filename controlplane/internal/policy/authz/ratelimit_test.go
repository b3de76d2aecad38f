package authz

import (
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"

	policyv1 "github.com/sinewmesh/sinew/api/policy/v1"
	"github.com/sinewmesh/sinew/controlplane/internal/policy/authz/api"
)

const rateLimitServer = `apiVersion: policy.sinew.dev/v1alpha1
kind: Server
metadata: {name: web-http}
spec:
  podSelector: {matchLabels: {app: web}}
  port: http
  accessPolicy: all-unauthenticated
`

func TestRateLimitTranslation(t *testing.T) {
	pol := policies(t, rateLimitServer+`
---
apiVersion: policy.sinew.dev/v1alpha1
kind: HTTPLocalRateLimitPolicy
metadata: {name: web-limit}
spec:
  targetRef: {group: policy.sinew.dev, kind: Server, name: web-http}
  total: {requestsPerSecond: 100}
  identity: {requestsPerSecond: 20}
  overrides:
  - requestsPerSecond: 50
    clientRefs: [{kind: ServiceAccount, name: vote-bot}, {kind: ServiceAccount, name: prometheus, namespace: monitoring}]
`)
	got := Inbound(snapshot(pol, web()), testConfig, web(), 8080).GetRateLimit()
	want := &policyv1.RateLimit{
		TotalRps: 100, IdentityRps: 20,
		Overrides: []*policyv1.RateLimitOverride{{Rps: 50, Identities: []string{
			"spiffe://cluster.local/ns/emojivoto/sa/vote-bot", "spiffe://cluster.local/ns/monitoring/sa/prometheus"}}},
		Labels: map[string]string{"kind": KindRateLimit, "name": "web-limit", "namespace": "emojivoto"},
	}
	if !proto.Equal(got, want) {
		t.Errorf("rate limit\n got %v\nwant %v", got, want)
	}
	if rl := Inbound(snapshot(pol, web()), testConfig, web(), 9990).GetRateLimit(); rl != nil {
		t.Errorf("the admin port, which no Server selects, got a rate limit: %v", rl)
	}
}

func TestRateLimitProblems(t *testing.T) {
	pol := policies(t, rateLimitServer+`
---
apiVersion: policy.sinew.dev/v1alpha1
kind: HTTPLocalRateLimitPolicy
metadata: {name: a}
spec:
  targetRef: {group: policy.sinew.dev, kind: Server, name: web-http}
  total: {requestsPerSecond: 10}
---
apiVersion: policy.sinew.dev/v1alpha1
kind: HTTPLocalRateLimitPolicy
metadata: {name: b}
spec:
  targetRef: {group: policy.sinew.dev, kind: Server, name: web-http}
  total: {requestsPerSecond: 20}
---
apiVersion: policy.sinew.dev/v1alpha1
kind: HTTPLocalRateLimitPolicy
metadata: {name: orphan}
spec:
  targetRef: {group: policy.sinew.dev, kind: Server, name: missing}
  identity: {requestsPerSecond: 5}
`)
	snap := snapshot(pol, web())
	if got := Inbound(snap, testConfig, web(), 8080).GetRateLimit().GetTotalRps(); got != 10 {
		t.Errorf("of two policies on one Server, the one applied has total %d, want a's 10", got)
	}
	problems := Problems(snap, testConfig)
	for _, want := range []string{"HTTPLocalRateLimitPolicy emojivoto/orphan: targets Server missing", "Server emojivoto/web-http: 2 rate limit policies"} {
		if !slices.ContainsFunc(problems, func(p string) bool { return strings.HasPrefix(p, want) }) {
			t.Errorf("problems %q, want one starting %q", problems, want)
		}
	}
}

func TestRateLimitValidation(t *testing.T) {
	for _, doc := range []string{
		`{kind: HTTPLocalRateLimitPolicy, metadata: {name: x}, spec: {targetRef: {group: policy.sinew.dev, kind: Server, name: s}}}`,
		`{kind: HTTPLocalRateLimitPolicy, metadata: {name: x}, spec: {targetRef: {group: policy.sinew.dev, kind: Server, name: s}, total: {requestsPerSecond: 5}, identity: {requestsPerSecond: 10}}}`,
		`{kind: HTTPLocalRateLimitPolicy, metadata: {name: x}, spec: {targetRef: {kind: Namespace, name: s}, total: {requestsPerSecond: 5}}}`,
		`{kind: HTTPLocalRateLimitPolicy, metadata: {name: x}, spec: {targetRef: {group: policy.sinew.dev, kind: Server, name: s}, overrides: [{requestsPerSecond: 5, clientRefs: [{kind: Pod, name: p}]}]}}`,
	} {
		obj, err := newFromYAML(t, doc)
		if err != nil {
			t.Fatalf("%s: %v", doc, err)
		}
		if err := obj.Validate(); err == nil {
			t.Errorf("%s: accepted", doc)
		}
	}
}

// newFromYAML decodes one document of a policy kind without validating it.
func newFromYAML(t *testing.T, doc string) (api.Object, error) {
	t.Helper()
	var tm struct{ Kind string }
	if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
		t.Fatal(err)
	}
	obj, ok := api.New(tm.Kind)
	if !ok {
		t.Fatalf("kind %q", tm.Kind)
	}
	return obj, yaml.UnmarshalStrict([]byte(doc), obj)
}
