package authz

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"google.golang.org/protobuf/types/known/durationpb"

	policyv1 "github.com/sinewmesh/sinew/api/policy/v1"
)

const issuer = "https://issuer.example"

type signer struct {
	key *ecdsa.PrivateKey
	kid string
}

func newSigner(t *testing.T, kid string) signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return signer{k, kid}
}

func (s signer) jwks(t *testing.T) []byte {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &s.key.PublicKey, KeyID: s.kid, Algorithm: "ES256", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// token signs claims; std fills iss, aud, sub, exp and nbf unless set.
func (s signer) token(t *testing.T, std jwt.Claims, extra map[string]any) string {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: s.key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", s.kid))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jwt.Signed(sig).Claims(std).Claims(extra).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func valid(sub string) jwt.Claims {
	now := time.Now()
	return jwt.Claims{Issuer: issuer, Subject: sub, Audience: jwt.Audience{"web"}, Expiry: jwt.NewNumericDate(now.Add(time.Hour)),
		NotBefore: jwt.NewNumericDate(now.Add(-time.Minute))}
}

// jwtServer: one provider (header Authorization: Bearer, or the query parameter access_token), claim "team" copied
// to X-Team; an authorization that needs a token of subject alice or bob with team "blue" in it.
func jwtServer(t *testing.T, s signer, keep bool) *Server {
	t.Helper()
	srv, problems := Compile(&policyv1.InboundServer{
		Labels: map[string]string{"kind": "server", "name": "web-http"},
		JwtProviders: []*policyv1.JwtProvider{{
			Name: "idp", Issuer: issuer, Audiences: []string{"web"}, Jwks: s.jwks(t), KeepToken: keep,
			ClockSkew: durationpb.New(30 * time.Second),
			Sources: []*policyv1.TokenSource{
				{Source: &policyv1.TokenSource_Header{Header: &policyv1.HeaderSource{Name: "Authorization", Prefix: "Bearer "}}},
				{Source: &policyv1.TokenSource_QueryParam{QueryParam: "access_token"}},
				{Source: &policyv1.TokenSource_Cookie{Cookie: "session"}},
			},
			ClaimHeaders: []*policyv1.ClaimHeader{{Claim: "team", Header: "X-Team"}, {Claim: "sub", Header: "X-User"}},
		}},
		Authorizations: []*policyv1.Authorization{{Name: "jwt", Unauthenticated: true, Labels: map[string]string{"kind": "authorizationpolicy", "name": "people"},
			Jwt: &policyv1.JwtRequirement{Providers: []string{"idp"}, Principals: []string{issuer + "/alice", issuer + "/bob"},
				Claims: []*policyv1.ClaimMatch{{Name: "team", Values: []string{"blue"}}}}}},
	})
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	return srv
}

func bearer(tok string) *http.Request {
	r, _ := http.NewRequest("GET", "http://web/api", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	return r
}

func TestJWT(t *testing.T) {
	s := newSigner(t, "k1")
	srv := jwtServer(t, s, false)
	c := Client{addr("10.0.0.1"), ""}
	blue := map[string]any{"team": []string{"red", "blue"}}
	now := time.Now()

	r := bearer(s.token(t, valid("alice"), blue))
	r.Header.Set("X-Team", "forged")
	d := srv.Decide(c, r, now)
	if d.Authz == nil || d.Authz.Name != "people" {
		t.Fatalf("a valid token: %+v", d)
	}
	srv.StripClaimHeaders(r)
	d.Provider.Apply(r, d.Token)
	if r.Header.Get("Authorization") != "" || r.Header.Get("X-Team") != "red,blue" || r.Header.Get("X-User") != "alice" {
		t.Errorf("after admission: Authorization %q, X-Team %q, X-User %q; want the token removed and the claims copied",
			r.Header.Get("Authorization"), r.Header.Get("X-Team"), r.Header.Get("X-User"))
	}

	other := newSigner(t, "k1") // the same key id, another key
	expired := valid("alice")
	expired.Expiry = jwt.NewNumericDate(now.Add(-time.Minute))
	slightlyExpired := valid("alice")
	slightlyExpired.Expiry = jwt.NewNumericDate(now.Add(-10 * time.Second))
	early := valid("alice")
	early.NotBefore = jwt.NewNumericDate(now.Add(time.Hour))
	wrongAud := valid("alice")
	wrongAud.Audience = jwt.Audience{"api"}
	wrongIss := valid("alice")
	wrongIss.Issuer = "https://evil.example"
	noReq, _ := http.NewRequest("GET", "http://web/api", nil)
	for _, c2 := range []struct {
		name string
		r    *http.Request
		want string // "ok", "401", "403"
	}{
		{"no token", noReq, "401"},
		{"garbage", bearer("not.a.jwt"), "401"},
		{"another key with the same kid", bearer(other.token(t, valid("alice"), blue)), "401"},
		{"unknown kid", bearer(newSigner(t, "k9").token(t, valid("alice"), blue)), "401"},
		{"expired", bearer(s.token(t, expired, blue)), "401"},
		{"expired within the clock skew", bearer(s.token(t, slightlyExpired, blue)), "ok"},
		{"not valid yet", bearer(s.token(t, early, blue)), "401"},
		{"wrong audience", bearer(s.token(t, wrongAud, blue)), "401"},
		{"wrong issuer", bearer(s.token(t, wrongIss, blue)), "401"},
		{"another subject", bearer(s.token(t, valid("mallory"), blue)), "403"},
		{"without the claim", bearer(s.token(t, valid("bob"), map[string]any{"team": "red"})), "403"},
		{"bob, team blue as a string", bearer(s.token(t, valid("bob"), map[string]any{"team": "blue"})), "ok"},
	} {
		d := srv.Decide(c, c2.r, now)
		got := "ok"
		switch {
		case d.Authz != nil:
		case d.Unauthenticated():
			got = "401"
		default:
			got = "403"
		}
		if got != c2.want {
			t.Errorf("%s: %s (%v), want %s", c2.name, got, d.TokenErr, c2.want)
		}
	}

	// Query parameter and cookie sources; the token is removed from where it was.
	tok := s.token(t, valid("alice"), blue)
	rq, _ := http.NewRequest("GET", "http://web/api?access_token="+tok+"&page=2", nil)
	if d := srv.Decide(c, rq, now); d.Authz == nil {
		t.Fatalf("token in the query: %v", d.TokenErr)
	} else if d.Provider.Apply(rq, d.Token); rq.URL.RawQuery != "page=2" {
		t.Errorf("query after admission %q, want the token removed", rq.URL.RawQuery)
	}
	rc, _ := http.NewRequest("GET", "http://web/api", nil)
	rc.Header.Set("Cookie", "theme=dark; session="+tok)
	if d := srv.Decide(c, rc, now); d.Authz == nil {
		t.Fatalf("token in a cookie: %v", d.TokenErr)
	} else if d.Provider.Apply(rc, d.Token); rc.Header.Get("Cookie") != "theme=dark" {
		t.Errorf("cookies after admission %q, want the session cookie removed", rc.Header.Get("Cookie"))
	}
	// keep_token passes it on.
	kept := jwtServer(t, s, true)
	rk := bearer(tok)
	if d := kept.Decide(c, rk, now); d.Authz == nil {
		t.Fatal(d.TokenErr)
	} else if d.Provider.Apply(rk, d.Token); rk.Header.Get("Authorization") == "" {
		t.Error("keep_token: the token was removed")
	}
	// A token requirement never admits an opaque connection.
	if a := srv.Admit(c); a != nil {
		t.Errorf("TCP admitted by %s", authzName(a))
	}
}

// TestJWTRefusesAlgorithmConfusion: a token "signed" with HS256 using the public key as the secret, or unsigned,
// is refused.
func TestJWTRefusesAlgorithmConfusion(t *testing.T) {
	s := newSigner(t, "k1")
	srv := jwtServer(t, s, false)
	pub, _ := json.Marshal(jose.JSONWebKey{Key: &s.key.PublicKey})
	hs, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: pub}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	forged, err := jwt.Signed(hs).Claims(valid("alice")).Claims(map[string]any{"team": "blue"}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	if d := srv.Decide(Client{addr("10.0.0.1"), ""}, bearer(forged), time.Now()); d.Authz != nil || !errors.Is(d.TokenErr, ErrInvalidToken) {
		t.Errorf("HS256 with the public key: %+v", d)
	}
}

func TestJWTProviderProblems(t *testing.T) {
	_, problems := Compile(&policyv1.InboundServer{
		JwtProviders: []*policyv1.JwtProvider{{Name: "broken", Issuer: issuer, Jwks: []byte("{")}},
		Authorizations: []*policyv1.Authorization{{Name: "needs-broken", Unauthenticated: true,
			Jwt: &policyv1.JwtRequirement{Providers: []string{"broken"}}}},
	})
	if len(problems) != 2 {
		t.Errorf("problems %q, want the broken JWKS and the authorization left without a provider", problems)
	}
}

// BenchmarkJWTCached is a request with a token verified before (the common case: a client reuses its token).
func BenchmarkJWTCached(b *testing.B) {
	t := &testing.T{}
	s := newSigner(t, "k1")
	srv := jwtServer(t, s, true)
	r := bearer(s.token(t, valid("alice"), map[string]any{"team": "blue"}))
	c := Client{addr("10.0.0.1"), ""}
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if srv.Decide(c, r, now).Authz == nil {
			b.Fatal("refused")
		}
	}
}

// TestJWTUnknownKeyAsksForRefresh: a token naming a key the provider lacks is refused and makes the provider ask
// for its key source to be fetched again, naming the kid; inline keys (no key source) ask nobody.
func TestJWTUnknownKeyAsksForRefresh(t *testing.T) {
	known, rotated := newSigner(t, "k1"), newSigner(t, "k2")
	for _, tc := range []struct {
		name, source string
		want         []string
	}{
		{"fetched keys", "src-1", []string{"src-1 k2"}},
		{"inline keys", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, problems := Compile(&policyv1.InboundServer{
				JwtProviders:   []*policyv1.JwtProvider{{Name: "idp", Issuer: issuer, Jwks: known.jwks(t), KeySource: tc.source}},
				Authorizations: []*policyv1.Authorization{{Name: "tokens", Unauthenticated: true, Jwt: &policyv1.JwtRequirement{Providers: []string{"idp"}}}},
			})
			if len(problems) > 0 {
				t.Fatal(problems)
			}
			var asked []string
			srv.SetKeyRefresher(func(source, kid string) { asked = append(asked, source+" "+kid) })
			if d := srv.Decide(Client{}, bearer(known.token(t, valid("alice"), nil)), time.Now()); d.Authz == nil {
				t.Fatalf("a token of the known key refused: %+v", d)
			}
			d := srv.Decide(Client{}, bearer(rotated.token(t, valid("alice"), nil)), time.Now())
			if d.Authz != nil || !errors.Is(d.TokenErr, ErrInvalidToken) {
				t.Errorf("a token of an unknown key: %+v, want refused as invalid", d)
			}
			if !slices.Equal(asked, tc.want) {
				t.Errorf("asked for %q, want %q", asked, tc.want)
			}
		})
	}
}
