package authz

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	policyv1 "github.com/sinewmesh/sinew/api/policy/v1"
)

// Token errors. Each answers 401 with WWW-Authenticate; the token itself is never logged or returned.
var (
	ErrNoToken      = errors.New("no token")
	ErrInvalidToken = errors.New("invalid token")
)

// signatureAlgorithms are the JWS algorithms a provider's tokens may use; "none" and HMAC are never accepted
// (keys in a JWKS are public).
var signatureAlgorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA,
}

// Provider verifies the tokens of one issuer.
type Provider struct {
	Name        string
	issuer      string
	audiences   []string
	keys        jose.JSONWebKeySet
	sources     []*policyv1.TokenSource
	claimHeader []*policyv1.ClaimHeader
	keepToken   bool
	skew        time.Duration
	keySource   string                   // where the control plane fetches the keys; "" for inline keys
	refresh     func(source, kid string) // asks for keySource to be fetched again; nil: nobody to ask

	mu    sync.Mutex
	cache map[string]*Token // verified tokens by their text, until they expire
}

// Token is a verified token's claims.
type Token struct {
	Issuer, Subject string
	claims          map[string]any
	expiry          time.Time
	notBefore       time.Time
}

const tokenCacheSize = 1024

func compileProvider(p *policyv1.JwtProvider) (*Provider, error) {
	pr := &Provider{
		Name: p.GetName(), issuer: p.GetIssuer(), audiences: p.GetAudiences(), sources: p.GetSources(),
		claimHeader: p.GetClaimHeaders(), keepToken: p.GetKeepToken(), skew: time.Minute, cache: map[string]*Token{},
		keySource: p.GetKeySource(),
	}
	if d := p.GetClockSkew(); d != nil {
		pr.skew = d.AsDuration()
	}
	if err := json.Unmarshal(p.GetJwks(), &pr.keys); err != nil {
		return nil, fmt.Errorf("JWT provider %s: JWKS: %w", pr.Name, err)
	}
	for _, k := range pr.keys.Keys {
		if !k.IsPublic() {
			return nil, fmt.Errorf("JWT provider %s: key %q is not a public key", pr.Name, k.KeyID)
		}
	}
	if pr.issuer == "" {
		return nil, fmt.Errorf("JWT provider %s: no issuer", pr.Name)
	}
	if len(pr.sources) == 0 {
		pr.sources = []*policyv1.TokenSource{{Source: &policyv1.TokenSource_Header{Header: &policyv1.HeaderSource{Name: "Authorization", Prefix: "Bearer "}}}}
	}
	return pr, nil
}

// SetKeyRefresher gives the server's providers whose keys the control plane fetches someone to ask for a fetch
// when a token names a key they lack. Call it before the server is used.
func (s *Server) SetKeyRefresher(refresh func(source, kid string)) {
	for _, p := range s.providers {
		p.refresh = refresh
	}
}

// token finds the provider's token in r: its text and where it was.
func (p *Provider) token(r *http.Request) (string, *policyv1.TokenSource) {
	for _, s := range p.sources {
		switch src := s.GetSource().(type) {
		case *policyv1.TokenSource_Header:
			v := r.Header.Get(src.Header.GetName())
			if v == "" {
				continue
			}
			pre := src.Header.GetPrefix()
			if len(v) < len(pre) || !strings.EqualFold(v[:len(pre)], pre) {
				continue
			}
			return strings.TrimSpace(v[len(pre):]), s
		case *policyv1.TokenSource_QueryParam:
			if v := r.URL.Query().Get(src.QueryParam); v != "" {
				return v, s
			}
		case *policyv1.TokenSource_Cookie:
			if c, err := r.Cookie(src.Cookie); err == nil && c.Value != "" {
				return c.Value, s
			}
		}
	}
	return "", nil
}

// Verify checks raw: signature by a key of the set, issuer, audience, expiry and not-before (with the clock skew).
func (p *Provider) Verify(raw string, now time.Time) (*Token, error) {
	p.mu.Lock()
	t, ok := p.cache[raw]
	p.mu.Unlock()
	if ok {
		if err := t.timely(now, p.skew); err != nil {
			return nil, err
		}
		return t, nil
	}
	parsed, err := jwt.ParseSigned(raw, signatureAlgorithms)
	if err != nil {
		return nil, fmt.Errorf("%w: malformed", ErrInvalidToken)
	}
	if len(parsed.Headers) != 1 {
		return nil, fmt.Errorf("%w: %d signatures", ErrInvalidToken, len(parsed.Headers))
	}
	kid := parsed.Headers[0].KeyID
	keys := p.keys.Key(kid)
	if kid == "" {
		keys = p.keys.Keys
	}
	if len(keys) == 0 {
		// The issuer may have rotated its keys since the control plane last fetched them: ask for a fetch, so
		// that the next requests with such tokens verify (this one is refused; the new keys take a round trip).
		if p.refresh != nil && p.keySource != "" && kid != "" {
			p.refresh(p.keySource, kid)
		}
		return nil, fmt.Errorf("%w: unknown key id", ErrInvalidToken)
	}
	var std jwt.Claims
	claims := map[string]any{}
	verified := false
	for _, k := range keys {
		if err := parsed.Claims(k.Key, &std, &claims); err == nil {
			verified = true
			break
		}
	}
	if !verified {
		return nil, fmt.Errorf("%w: signature does not verify", ErrInvalidToken)
	}
	if std.Issuer != p.issuer {
		return nil, fmt.Errorf("%w: issuer %q, want %q", ErrInvalidToken, std.Issuer, p.issuer)
	}
	if len(p.audiences) > 0 && !slices.ContainsFunc(p.audiences, std.Audience.Contains) {
		return nil, fmt.Errorf("%w: audience %v, want one of %v", ErrInvalidToken, []string(std.Audience), p.audiences)
	}
	if std.Expiry == nil {
		return nil, fmt.Errorf("%w: no expiry", ErrInvalidToken)
	}
	t = &Token{Issuer: std.Issuer, Subject: std.Subject, claims: claims, expiry: std.Expiry.Time()}
	if std.NotBefore != nil {
		t.notBefore = std.NotBefore.Time()
	}
	if err := t.timely(now, p.skew); err != nil {
		return nil, err
	}
	p.mu.Lock()
	if len(p.cache) >= tokenCacheSize {
		clear(p.cache)
	}
	p.cache[raw] = t
	p.mu.Unlock()
	return t, nil
}

func (t *Token) timely(now time.Time, skew time.Duration) error {
	if now.After(t.expiry.Add(skew)) {
		return fmt.Errorf("%w: expired", ErrInvalidToken)
	}
	if !t.notBefore.IsZero() && now.Add(skew).Before(t.notBefore) {
		return fmt.Errorf("%w: not valid yet", ErrInvalidToken)
	}
	return nil
}

// claimStrings is a claim's values as strings: a string, a number, a bool, or a list of them.
func (t *Token) claimStrings(name string) []string {
	var out []string
	var add func(v any)
	add = func(v any) {
		switch v := v.(type) {
		case string:
			out = append(out, v)
		case float64:
			out = append(out, strconv.FormatFloat(v, 'f', -1, 64))
		case bool:
			out = append(out, strconv.FormatBool(v))
		case []any:
			for _, e := range v {
				add(e)
			}
		}
	}
	add(t.claims[name])
	return out
}

// jwtRequirement is an authorization's token requirement, compiled.
type jwtRequirement struct {
	providers  []*Provider
	principals map[string]bool
	claims     []*policyv1.ClaimMatch
}

// check says whether the request's token satisfies the requirement: nil, or ErrNoToken/ErrInvalidToken (401),
// or ErrDenied-like mismatch (errTokenNotAllowed, 403).
func (j *jwtRequirement) check(r *http.Request, now time.Time) (*Token, *Provider, error) {
	var firstErr error
	for _, p := range j.providers {
		raw, _ := p.token(r)
		if raw == "" {
			continue
		}
		t, err := p.Verify(raw, now)
		if err != nil {
			firstErr = cmpErr(firstErr, err)
			continue
		}
		if len(j.principals) > 0 && !j.principals[t.Issuer+"/"+t.Subject] {
			firstErr = cmpErr(firstErr, errTokenNotAllowed)
			continue
		}
		ok := true
		for _, c := range j.claims {
			if !slices.ContainsFunc(t.claimStrings(c.GetName()), func(v string) bool { return slices.Contains(c.GetValues(), v) }) {
				ok = false
				break
			}
		}
		if !ok {
			firstErr = cmpErr(firstErr, errTokenNotAllowed)
			continue
		}
		return t, p, nil
	}
	if firstErr == nil {
		firstErr = ErrNoToken
	}
	return nil, nil, firstErr
}

// errTokenNotAllowed: a valid token whose principal or claims the authorization does not admit (403).
var errTokenNotAllowed = errors.New("token not allowed")

// cmpErr keeps the more telling of two token errors: a valid-but-not-allowed token beats an invalid one.
func cmpErr(have, next error) error {
	if have == nil || errors.Is(next, errTokenNotAllowed) {
		return next
	}
	return have
}

// Apply prepares an admitted request for the application: the claims the provider copies into headers, and the
// token removed unless the provider keeps it.
func (p *Provider) Apply(r *http.Request, t *Token) {
	for _, ch := range p.claimHeader {
		if vs := t.claimStrings(ch.GetClaim()); len(vs) > 0 {
			r.Header.Set(ch.GetHeader(), strings.Join(vs, ","))
		}
	}
	if p.keepToken {
		return
	}
	_, src := p.token(r)
	switch s := src.GetSource().(type) {
	case *policyv1.TokenSource_Header:
		r.Header.Del(s.Header.GetName())
	case *policyv1.TokenSource_QueryParam:
		q := r.URL.Query()
		q.Del(s.QueryParam)
		r.URL.RawQuery = q.Encode()
	case *policyv1.TokenSource_Cookie:
		var keep []string
		for _, c := range r.Cookies() {
			if c.Name != s.Cookie {
				keep = append(keep, c.String())
			}
		}
		r.Header.Del("Cookie")
		if len(keep) > 0 {
			r.Header.Set("Cookie", strings.Join(keep, "; "))
		}
	}
}

// StripClaimHeaders removes, from a request no token admitted, the headers the port's providers fill from claims:
// a client must not be able to set them itself.
func (s *Server) StripClaimHeaders(r *http.Request) {
	for _, p := range s.providers {
		for _, ch := range p.claimHeader {
			r.Header.Del(ch.GetHeader())
		}
	}
}
