package api

import (
	"encoding/json"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

const publicJWKS = `{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}`

const privateJWKS = `{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","d":"jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"}]}`

func TestJWTAuthenticationValidate(t *testing.T) {
	t.Parallel()
	inline, _ := json.Marshal(publicJWKS)
	private, _ := json.Marshal(privateJWKS)
	good := `issuers:
- issuer: https://issuer.example
  audiences: [web]
  jwks: {remote: {uri: "https://issuer.example/jwks.json"}}
  fromHeaders: [{name: X-Token}]
  fromParams: [token]
  fromCookies: [session]
  clockSkew: 30s
  claimsToHeaders: [{claim: email, header: X-Email}]
principals: ["https://issuer.example/alice"]
requiredClaims: [{name: role, values: [admin]}]`
	for _, tc := range []struct {
		name, spec string
		errs       []string
	}{
		{name: "good", spec: good},
		{name: "inline", spec: "issuers: [{issuer: i, audiences: [a], jwks: {inline: " + string(inline) + "}}]"},
		{name: "secret", spec: "issuers: [{issuer: i, audiences: [a], jwks: {secretRef: {name: keys}}}]"},
		{name: "no issuers", spec: "issuers: []", errs: []string{"spec.issuers: give 1 to 8 issuers, got 0"}},
		{name: "two key sources", spec: "issuers: [{issuer: i, audiences: [a], jwks: {secretRef: {name: keys}, remote: {uri: 'https://x'}}}]",
			errs: []string{"spec.issuers[0].jwks: give exactly one of remote, inline and secretRef"}},
		{name: "bad everything", spec: `issuers: [{issuer: "", audiences: [], jwks: {remote: {uri: "ftp://x"}}, clockSkew: 2d,
  fromHeaders: [{name: "a b"}], claimsToHeaders: [{claim: "", header: "x y"}]}]
principals: [nobody]
requiredClaims: [{name: "", values: []}]`, errs: []string{
			"spec.issuers[0].issuer: required", "spec.issuers[0].audiences: give 1 to 32", `spec.issuers[0].jwks.remote.uri: "ftp://x"`,
			`spec.issuers[0].clockSkew: "2d"`, `spec.issuers[0].fromHeaders[0].name: "a b"`, "spec.issuers[0].claimsToHeaders[0].claim: required",
			`spec.issuers[0].claimsToHeaders[0].header: "x y"`, `spec.principals[0]: "nobody" is not "<iss>/<sub>"`,
			"spec.requiredClaims[0].name: required", "spec.requiredClaims[0].values: give 1 to 64 values, got 0"}},
		{name: "private key inline", spec: "issuers: [{issuer: i, audiences: [a], jwks: {inline: " + string(private) + "}}]",
			errs: []string{`spec.issuers[0].jwks.inline: key "k1": holds a private or symmetric key`}},
		{name: "not a JWKS", spec: "issuers: [{issuer: i, audiences: [a], jwks: {inline: '{\"keys\": 1}'}}]",
			errs: []string{"spec.issuers[0].jwks.inline: not a JSON Web Key Set"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := &JWTAuthentication{}
			if err := yaml.UnmarshalStrict([]byte(tc.spec), &o.Spec); err != nil {
				t.Fatal(err)
			}
			err := o.Validate()
			if len(tc.errs) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate: nil, want %q", tc.errs)
			}
			for _, want := range tc.errs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Validate: %v\nwant it to contain %q", err, want)
				}
			}
		})
	}
}

func TestJWTIssuerKeySource(t *testing.T) {
	t.Parallel()
	is := JWTIssuer{JWKS: JWKS{SecretRef: &SecretKeyRef{Name: "keys"}}}
	if got, ok := is.KeySource("ns"); !ok || got != (KeySource{Namespace: "ns", Secret: "keys", Key: DefaultJWKSSecretKey}) {
		t.Errorf("secretRef: %+v %v", got, ok)
	}
	is = JWTIssuer{JWKS: JWKS{Remote: &RemoteJWKS{URI: "https://x/jwks"}}}
	if got, ok := is.KeySource("ns"); !ok || got.URL != "https://x/jwks" || got.String() != "https://x/jwks" {
		t.Errorf("remote: %+v %v", got, ok)
	}
	if _, ok := (&JWTIssuer{JWKS: JWKS{Inline: publicJWKS}}).KeySource("ns"); ok {
		t.Error("inline keys need no fetching")
	}
}
