package routes

import (
	"encoding/json"
	"testing"

	"github.com/sinewmesh/sinew/controlplane/internal/model"
	authzapi "github.com/sinewmesh/sinew/controlplane/internal/policy/authz/api"
	"github.com/sinewmesh/sinew/internal/golden"
)

// TestParentStatuses: each Service parent gets Accepted (False with NoMatchingParent for a Service or port that
// does not exist, a consumer route's included) and ResolvedRefs (False with the strongest reason among
// the backends that cannot be used); a Server parent is Accepted when the Server exists (NoMatchingParent
// otherwise), saying what inbound routing ignores; other parents get nothing; conditions carry the route's
// generation.
func TestParentStatuses(t *testing.T) {
	t.Parallel()
	rts := decode(t, `metadata: {name: split, generation: 3}
spec:
  parentRefs:
  - {group: "", kind: Service, name: web, port: 80}
  - {group: "", kind: Service, name: web, port: 81}
  - {group: "", kind: Service, name: web, sectionName: admin}
  - {group: "", kind: Service, name: gone}
  - {group: "", kind: Service, name: web, namespace: other}
  - {name: some-gateway}
  rules:
  - filters: [{type: ExtensionRef, extensionRef: {group: policy.sinew.dev, kind: HTTPFault, name: absent}}]
    backendRefs:
    - {name: web-v1, port: 80}
    - {name: web-v3, port: 80}
    - {name: web-v2, port: 81}
    - {group: example.com, kind: Bucket, name: b}
---
metadata: {name: fine, generation: 1}
spec:
  parentRefs: [{group: "", kind: Service, name: web}]
  rules: [{backendRefs: [{name: web-v1, port: 80, weight: 9}, {name: web-v2, port: 80}]}]
---
metadata: {name: inbound, generation: 2}
spec:
  parentRefs:
  - {group: policy.sinew.dev, kind: Server, name: web-http}
  - {group: policy.sinew.dev, kind: Server, name: missing}
  rules: [{matches: [{path: {value: /api}}], filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x, value: "1"}]}}]}]
---
metadata: {name: cross}
spec:
  parentRefs: [{group: "", kind: Service, name: web}]
  rules: [{backendRefs: [{name: web-v3, port: 80}, {name: web-v1, namespace: other, port: 80}]}]`)
	s := model.NewStore()
	var pol authzapi.Policies
	pol.Add(&authzapi.Server{Metadata: authzapi.Meta{Namespace: "shop", Name: "web-http"}})
	s.Update(model.Resources{Services: []*model.Service{service("web", 80, 9000), service("web-v1", 80), service("web-v2", 80)}, HTTPRoutes: rts, Policies: pol})
	out := map[string]any{}
	for _, rt := range s.Snapshot().Routes() {
		out[rt.Name] = ParentStatuses(s.Snapshot(), rt)
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "testdata/status.json", append(b, '\n'))
}
