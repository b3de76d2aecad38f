package integration

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

const jwtIssuer = "https://issuer.example"

// jwtKey signs tokens with one ES256 key named kid.
type jwtKey struct {
	key *ecdsa.PrivateKey
	kid string
}

func newJWTKey(t *testing.T, kid string) jwtKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return jwtKey{k, kid}
}

func (k jwtKey) jwks(t *testing.T) []byte {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.key.PublicKey, KeyID: k.kid, Algorithm: "ES256", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// token signs a token for subject sub, expiring at exp, with the claim team.
func (k jwtKey) token(t *testing.T, sub string, exp time.Time) string {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k.key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", k.kid))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jwt.Signed(sig).Claims(jwt.Claims{Issuer: jwtIssuer, Subject: sub, Audience: jwt.Audience{"srv"},
		Expiry: jwt.NewNumericDate(exp), NotBefore: jwt.NewNumericDate(time.Now().Add(-time.Minute))}).
		Claims(map[string]any{"team": "blue"}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// jwksServer serves a JWKS on a fixed loopback address; it can be stopped and started again on the same address.
type jwksServer struct {
	t    *testing.T
	addr string
	body atomic.Value // []byte
	srv  *http.Server
}

func startJWKSServer(t *testing.T, jwks []byte) *jwksServer {
	t.Helper()
	s := &jwksServer{t: t}
	s.body.Store(jwks)
	s.start(listen(t))
	s.addr = s.srv.Addr
	t.Cleanup(s.stop)
	return s
}

func (s *jwksServer) start(ln net.Listener) {
	s.srv = &http.Server{Addr: ln.Addr().String(), Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(s.body.Load().([]byte))
	})}
	go s.srv.Serve(ln) //nolint:errcheck
}

func (s *jwksServer) stop() { _ = s.srv.Close() }

func (s *jwksServer) restart(jwks []byte) {
	s.t.Helper()
	s.body.Store(jwks)
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		s.t.Fatalf("JWKS server restart on %s: %v", s.addr, err)
	}
	s.start(ln)
}

// headerApp answers 200 with the request's Authorization and X-Team headers in response headers.
func headerApp(t *testing.T) string {
	t.Helper()
	ln := listen(t)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("x-seen-authorization", r.Header.Get("Authorization"))
		w.Header().Set("x-seen-team", r.Header.Get("X-Team"))
		fmt.Fprint(w, "ok")
	})}
	go srv.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func jwtPolicy(jwksURL string) string {
	return `apiVersion: policy.sinew.dev/v1alpha1
kind: Server
metadata: {name: srv-http, namespace: test}
spec:
  workloadSelector: {matchLabels: {app: srv}}
  port: 8080
  proxyProtocol: HTTP/1
  accessPolicy: deny
---
apiVersion: policy.sinew.dev/v1alpha1
kind: JWTAuthentication
metadata: {name: tokens, namespace: test}
spec:
  issuers:
  - issuer: ` + jwtIssuer + `
    audiences: [srv]
    jwks: {remote: {uri: "` + jwksURL + `"}}
    claimsToHeaders: [{claim: team, header: X-Team}]
  principals: ["` + jwtIssuer + `/alice"]
  requiredClaims: [{name: team, values: [blue]}]
---
apiVersion: policy.sinew.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: srv-tokens, namespace: test}
spec:
  targetRef: {group: policy.sinew.dev, kind: Server, name: srv-http}
  requiredAuthenticationRefs:
  - {group: policy.sinew.dev, kind: JWTAuthentication, name: tokens}
`
}

type jwtResult struct {
	status              int
	wwwAuthenticate     string
	seenAuthz, seenTeam string
}

// getWithToken sends GET /hello through outbound with token as a bearer token (none when empty); the app is
// headerApp.
func getWithToken(outbound, token string) (jwtResult, error) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+outbound+"/hello", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return jwtResult{}, err
	}
	io.Copy(io.Discard, resp.Body) //nolint:errcheck
	resp.Body.Close()
	return jwtResult{resp.StatusCode, resp.Header.Get("WWW-Authenticate"), resp.Header.Get("x-seen-authorization"), resp.Header.Get("x-seen-team")}, nil
}

// expectWithToken waits until a request with token gets status, and returns what it got.
func expectWithToken(t *testing.T, outbound, what, token string, status int) jwtResult {
	t.Helper()
	var last jwtResult
	eventually(t, 15*time.Second, what, func() error {
		r, err := getWithToken(outbound, token)
		if err != nil {
			return err
		}
		last = r
		if r.status != status {
			return fmt.Errorf("status %d, want %d", r.status, status)
		}
		return nil
	})
	return last
}

// TestJWTAuthentication: a Server whose only authorization requires a token from an issuer whose JWKS the
// control plane fetches from a URL. A valid token for alice is admitted (the app sees the team claim as a header
// and not the token); no token and an expired one get 401 with WWW-Authenticate; bob's valid token gets 403.
// With the JWKS server down, the last good keys keep admitting alice; after a key rotation on a restarted JWKS
// server, a token signed with the new key is admitted once the control plane has refreshed.
func TestJWTAuthentication(t *testing.T) {
	t.Parallel()
	m := startMesh(t, meshOpts{jwksRefresh: 200 * time.Millisecond})
	pair := startPair(t, m, headerApp(t))
	key := newJWTKey(t, "k1")
	js := startJWKSServer(t, key.jwks(t))
	m.write("policy.yaml", jwtPolicy("http://"+js.addr+"/jwks.json"))

	expect := func(what, token string, status int) jwtResult {
		t.Helper()
		return expectWithToken(t, pair.outbound, what, token, status)
	}

	// A request without a token refused proves the policy is in force: until it is, the default policy admits
	// everything, tokens untouched.
	r := expect("no token refused", "", 401)
	if !strings.HasPrefix(r.wwwAuthenticate, "Bearer") {
		t.Errorf("WWW-Authenticate %q", r.wwwAuthenticate)
	}
	alice := key.token(t, "alice", time.Now().Add(time.Hour))
	r = expect("alice's token admitted", alice, 200)
	if r.seenTeam != "blue" || r.seenAuthz != "" {
		t.Errorf("the app saw X-Team %q and an Authorization header of %d bytes; want blue and no token", r.seenTeam, len(r.seenAuthz))
	}
	r = expect("an expired token refused", key.token(t, "alice", time.Now().Add(-time.Hour)), 401)
	if !strings.HasPrefix(r.wwwAuthenticate, "Bearer") {
		t.Errorf("WWW-Authenticate %q for an expired token", r.wwwAuthenticate)
	}
	expect("bob's token forbidden", key.token(t, "bob", time.Now().Add(time.Hour)), 403)

	// The JWKS server goes away: the control plane reports the failure and keeps pushing the last good keys.
	js.stop()
	eventually(t, 15*time.Second, "the failed fetch reported", func() error {
		resp, err := http.Get("http://" + m.cp.AdminAddr() + "/debug/model")
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), "the last good keys are kept") {
			return fmt.Errorf("no fetch failure among the problems: %s", grepLines(string(b), "JWTAuthentication"))
		}
		return nil
	})
	expect("alice still admitted with the last good keys", alice, 200)

	// Keys rotate: a restarted server publishes only the new key, and tokens signed with it are admitted.
	rotated := newJWTKey(t, "k2")
	js.restart(rotated.jwks(t))
	expect("a token of the rotated key admitted", rotated.token(t, "alice", time.Now().Add(time.Hour)), 200)
	expect("a token of the retired key refused", alice, 401)
}

// TestJWTUnknownKeyRefetch: the issuer rotates its keys between the control plane's refreshes (an hour apart
// here). The first token signed with the new key names a kid the proxy lacks; the proxy asks the control plane to
// fetch the keys again, and tokens of the new key are admitted from then on, while the old key's tokens are not.
func TestJWTUnknownKeyRefetch(t *testing.T) {
	t.Parallel()
	m := startMesh(t, meshOpts{jwksRefresh: time.Hour, jwksRefetch: 100 * time.Millisecond})
	pair := startPair(t, m, headerApp(t))
	key := newJWTKey(t, "k1")
	js := startJWKSServer(t, key.jwks(t))
	m.write("policy.yaml", jwtPolicy("http://"+js.addr+"/jwks.json"))

	expect := func(what, token string, status int) {
		t.Helper()
		expectWithToken(t, pair.outbound, what, token, status)
	}
	expect("no token refused: the policy is in force", "", 401)
	old := key.token(t, "alice", time.Now().Add(time.Hour))
	expect("alice's token of the first key admitted", old, 200)

	rotated := newJWTKey(t, "k2")
	js.body.Store(rotated.jwks(t))
	expect("a token of the rotated key admitted after a refetch", rotated.token(t, "alice", time.Now().Add(time.Hour)), 200)
	expect("a token of the retired key refused", old, 401)
	if got, err := getWithToken(pair.outbound, newJWTKey(t, "made-up").token(t, "alice", time.Now().Add(time.Hour))); err != nil || got.status != 401 {
		t.Errorf("a token of a key nobody publishes: %d, %v; want 401", got.status, err)
	}
}
