package authz

import (
	"slices"
	"testing"

	"github.com/sinewmesh/sinew/controlplane/internal/policy/authz/api"
	"github.com/sinewmesh/sinew/internal/golden"
)

const testJWKS = `{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}`

// jwtAuthn has three issuers: keys from a URL, inline, and from a Secret.
const jwtAuthn = `
---
kind: JWTAuthentication
metadata: {name: tokens}
spec:
  issuers:
  - issuer: https://auth.example
    audiences: [web]
    jwks: {remote: {uri: "https://auth.example/jwks.json"}}
    fromHeaders: [{name: X-Token}]
    fromParams: [access_token]
    fromCookies: [session]
    clockSkew: 30s
    claimsToHeaders: [{claim: email, header: X-Email}]
  - issuer: https://inline.example
    audiences: [web, api]
    jwks:
      inline: '` + testJWKS + `'
    forwardToken: true
  - issuer: https://secret.example
    audiences: [web]
    jwks: {secretRef: {name: jwks}}
  principals: [https://auth.example/alice]
  requiredClaims: [{name: role, values: [admin, ops]}]
`

// tokenOnly is an AuthorizationPolicy on web-http that needs a token of jwtAuthn's issuers and nothing else.
const tokenOnly = `
---
kind: AuthorizationPolicy
metadata: {name: token-only}
spec:
  targetRef: {group: policy.sinew.dev, kind: Server, name: web-http}
  requiredAuthenticationRefs:
  - {group: policy.sinew.dev, kind: JWTAuthentication, name: tokens}
`

// TestJWTTranslation: an AuthorizationPolicy requiring a JWTAuthentication becomes an authorization with a JWT
// requirement naming one provider per issuer whose keys are at hand, beside the identities and networks of its
// other references; the port lists those providers once. Issuers without keys are left out and reported; a
// policy left without any admits nobody.
func TestJWTTranslation(t *testing.T) {
	t.Parallel()
	remote := api.KeySource{URL: "https://auth.example/jwks.json"}
	secret := api.KeySource{Namespace: "emojivoto", Secret: "jwks", Key: "jwks"}
	fetched := &Keys{Sets: map[api.KeySource][]byte{remote: []byte(testJWKS)}}
	for _, tc := range []struct {
		name     string
		keys     *Keys
		docs     string
		problems []string
	}{
		{name: "jwt-providers", keys: fetched, docs: webServer + jwtAuthn + tokenOnly + `---
kind: AuthorizationPolicy
metadata: {name: token-and-identity}
spec:
  targetRef: {group: policy.sinew.dev, kind: Server, name: web-http}
  requiredAuthenticationRefs:
  - {group: policy.sinew.dev, kind: JWTAuthentication, name: tokens}
  - {kind: ServiceAccount, name: vote-bot}
  - {group: policy.sinew.dev, kind: NetworkAuthentication, name: pods}
---
kind: NetworkAuthentication
metadata: {name: pods}
spec: {networks: [{cidr: 10.0.0.0/8}]}
`, problems: []string{
			"AuthorizationPolicy emojivoto/token-and-identity: JWTAuthentication emojivoto/tokens: issuers[2] (https://secret.example): no keys from secret emojivoto/jwks key jwks (not fetched yet); the issuer is left out",
			"AuthorizationPolicy emojivoto/token-only: JWTAuthentication emojivoto/tokens: issuers[2] (https://secret.example): no keys from secret emojivoto/jwks key jwks (not fetched yet); the issuer is left out",
		}},
		{name: "jwt-last-good-keys", docs: webServer + jwtAuthn + tokenOnly + ``, keys: &Keys{
			Sets:   map[api.KeySource][]byte{remote: []byte(testJWKS), secret: []byte(testJWKS)},
			Errors: map[api.KeySource]string{remote: "GET https://auth.example/jwks.json: 503 Service Unavailable"},
		}, problems: []string{
			"JWTAuthentication emojivoto/tokens: issuers[0]: fetching keys from https://auth.example/jwks.json: GET https://auth.example/jwks.json: 503 Service Unavailable; the last good keys are kept",
		}},
		{name: "jwt-without-keys-admits-nobody", docs: webServer + `
---
kind: JWTAuthentication
metadata: {name: remote-only}
spec:
  issuers: [{issuer: https://auth.example, audiences: [web], jwks: {remote: {uri: "https://auth.example/jwks.json"}}}]
---
kind: JWTAuthentication
metadata: {name: inline}
spec:
  issuers:
  - issuer: https://inline.example
    audiences: [web]
    jwks:
      inline: '` + testJWKS + `'
---
kind: AuthorizationPolicy
metadata: {name: no-keys}
spec:
  targetRef: {group: policy.sinew.dev, kind: Server, name: web-http}
  requiredAuthenticationRefs:
  - {group: policy.sinew.dev, kind: JWTAuthentication, name: remote-only}
---
kind: AuthorizationPolicy
metadata: {name: two-tokens}
spec:
  targetRef: {group: policy.sinew.dev, kind: Server, name: web-http}
  requiredAuthenticationRefs:
  - {group: policy.sinew.dev, kind: JWTAuthentication, name: inline}
  - {group: policy.sinew.dev, kind: JWTAuthentication, name: inline}
`, keys: &Keys{Errors: map[api.KeySource]string{remote: "dial tcp: connection refused"}}, problems: []string{
			"AuthorizationPolicy emojivoto/no-keys: JWTAuthentication emojivoto/remote-only has no issuer with keys: the policy admits nobody",
			"AuthorizationPolicy emojivoto/no-keys: JWTAuthentication emojivoto/remote-only: issuers[0] (https://auth.example): no keys from https://auth.example/jwks.json (dial tcp: connection refused); the issuer is left out",
			"AuthorizationPolicy emojivoto/two-tokens: more than one JWTAuthentication is required (a request carries one token): the policy admits nobody",
			"JWTAuthentication emojivoto/remote-only: issuers[0]: fetching keys from https://auth.example/jwks.json: dial tcp: connection refused; no keys yet",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig
			cfg.Keys = tc.keys
			snap := snapshot(policies(t, tc.docs), web())
			w, _ := snap.Workload("emojivoto", "web-1")
			golden.Check(t, "testdata/"+tc.name+".json", render(t, Inbound(snap, cfg, w, 8080)))
			got := Problems(snap, cfg)
			want := slices.Clone(tc.problems)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("problems:\n got %q\nwant %q", got, want)
			}
		})
	}
}
