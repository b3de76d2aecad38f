package api

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// JWTAuthentication accepts HTTP requests that carry a JSON Web Token from one of its issuers; an
// AuthorizationPolicy that requires it admits only such requests, with the principals and claims it lists.
type JWTAuthentication struct {
	APIVersion string                `json:"apiVersion,omitempty"`
	Kind       string                `json:"kind,omitempty"`
	Metadata   Meta                  `json:"metadata"`
	Spec       JWTAuthenticationSpec `json:"spec"`
}

// JWTAuthenticationSpec lists the issuers (a token of any one will do) and what the token must say.
type JWTAuthenticationSpec struct {
	Issuers []JWTIssuer `json:"issuers"`
	// Principals are the "iss/sub" pairs admitted; empty: any subject.
	Principals []string `json:"principals,omitempty"`
	// RequiredClaims must each hold one of their values.
	RequiredClaims []ClaimRequirement `json:"requiredClaims,omitempty"`
}

// JWTIssuer is one issuer: its keys, the audiences it must name, and where its tokens are.
type JWTIssuer struct {
	Issuer    string   `json:"issuer"`
	Audiences []string `json:"audiences"`
	JWKS      JWKS     `json:"jwks"`
	// FromHeaders, FromParams and FromCookies are where the token is, tried in that order; none given: the
	// Authorization header with the prefix "Bearer ".
	FromHeaders []TokenHeader `json:"fromHeaders,omitempty"`
	FromParams  []string      `json:"fromParams,omitempty"`
	FromCookies []string      `json:"fromCookies,omitempty"`
	// ClockSkew is the tolerance for exp and nbf (Go duration); "": 60s.
	ClockSkew string `json:"clockSkew,omitempty"`
	// ClaimsToHeaders copies claims into request headers for the application.
	ClaimsToHeaders []ClaimToHeader `json:"claimsToHeaders,omitempty"`
	// ForwardToken passes the token on to the application; by default the proxy removes it.
	ForwardToken bool `json:"forwardToken,omitempty"`
}

// JWKS is where an issuer's public keys come from: exactly one of Remote, Inline and SecretRef.
type JWKS struct {
	Remote    *RemoteJWKS   `json:"remote,omitempty"`
	Inline    string        `json:"inline,omitempty"`
	SecretRef *SecretKeyRef `json:"secretRef,omitempty"`
}

// RemoteJWKS is a JWKS URL that the control plane fetches and refreshes.
type RemoteJWKS struct {
	URI string `json:"uri"`
}

// SecretKeyRef is one key of a Secret in the JWTAuthentication's namespace (Kubernetes mode).
type SecretKeyRef struct {
	Name string `json:"name"`
	// Key defaults to DefaultJWKSSecretKey.
	Key string `json:"key,omitempty"`
}

// DefaultJWKSSecretKey is the Secret key a secretRef reads when it names none.
const DefaultJWKSSecretKey = "jwks"

// TokenHeader is a header carrying the token after Prefix.
type TokenHeader struct {
	Name   string `json:"name"`
	Prefix string `json:"prefix,omitempty"`
}

// ClaimToHeader copies a claim into a request header.
type ClaimToHeader struct {
	Claim  string `json:"claim"`
	Header string `json:"header"`
}

// ClaimRequirement is a claim that must hold one of Values.
type ClaimRequirement struct {
	Name   string   `json:"name"`
	Values []string `json:"values"`
}

// DefaultClockSkew is the tolerance for exp and nbf when clockSkew is not given.
const DefaultClockSkew = time.Minute

// KeySource names keys the control plane fetches: a JWKS URL, or a key of a Secret. It is comparable, so the
// fetcher and the translation key their maps by it.
type KeySource struct {
	URL                    string
	Namespace, Secret, Key string
}

// String names the source for people; a URL's password, if any, is redacted.
func (s KeySource) String() string {
	if s.URL != "" {
		if u, err := url.Parse(s.URL); err == nil {
			return u.Redacted()
		}
		return s.URL
	}
	return fmt.Sprintf("secret %s/%s key %s", s.Namespace, s.Secret, s.Key)
}

// Handle names the source opaquely, for proxies that ask for it to be fetched again (JwtProvider.key_source):
// a URL may hold credentials, and a proxy needs no more than a name to send back.
func (s KeySource) Handle() string {
	h := sha256.Sum256([]byte(s.URL + "\x00" + s.Namespace + "\x00" + s.Secret + "\x00" + s.Key))
	return hex.EncodeToString(h[:12])
}

// KeySource is where the issuer's keys are fetched from; false for inline keys, which need no fetching.
func (is *JWTIssuer) KeySource(namespace string) (KeySource, bool) {
	switch {
	case is.JWKS.Remote != nil:
		return KeySource{URL: is.JWKS.Remote.URI}, true
	case is.JWKS.SecretRef != nil:
		key := is.JWKS.SecretRef.Key
		if key == "" {
			key = DefaultJWKSSecretKey
		}
		return KeySource{Namespace: namespace, Secret: is.JWKS.SecretRef.Name, Key: key}, true
	}
	return KeySource{}, false
}

// ObjectKind implements Object.
func (*JWTAuthentication) ObjectKind() string { return KindJWTAuthentication }

// ObjectMeta implements Object.
func (o *JWTAuthentication) ObjectMeta() *Meta { return &o.Metadata }

var _ Object = (*JWTAuthentication)(nil)

var (
	headerNameRE = regexp.MustCompile("^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
	durationRE   = regexp.MustCompile(`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`)
)

// Validate implements Object, as the CRD's schema and CEL rules do.
func (o *JWTAuthentication) Validate() error {
	var errs []error
	s := &o.Spec
	if n := len(s.Issuers); n < 1 || n > 8 {
		errs = append(errs, fmt.Errorf("spec.issuers: give 1 to 8 issuers, got %d", n))
	}
	for i := range s.Issuers {
		errs = append(errs, s.Issuers[i].validate(fmt.Sprintf("spec.issuers[%d]", i))...)
	}
	if len(s.Principals) > 64 {
		errs = append(errs, fmt.Errorf("spec.principals: at most 64, got %d", len(s.Principals)))
	}
	for i, p := range s.Principals {
		if iss, sub, ok := strings.Cut(p, "/"); !ok || iss == "" || sub == "" {
			errs = append(errs, fmt.Errorf("spec.principals[%d]: %q is not \"<iss>/<sub>\"", i, p))
		}
	}
	if len(s.RequiredClaims) > 32 {
		errs = append(errs, fmt.Errorf("spec.requiredClaims: at most 32, got %d", len(s.RequiredClaims)))
	}
	for i, c := range s.RequiredClaims {
		f := fmt.Sprintf("spec.requiredClaims[%d]", i)
		if c.Name == "" {
			errs = append(errs, fmt.Errorf("%s.name: required", f))
		}
		if len(c.Values) == 0 || len(c.Values) > 64 {
			errs = append(errs, fmt.Errorf("%s.values: give 1 to 64 values, got %d", f, len(c.Values)))
		}
	}
	return join(errs)
}

func (is *JWTIssuer) validate(f string) []error {
	var errs []error
	if is.Issuer == "" || len(is.Issuer) > 2048 {
		errs = append(errs, fmt.Errorf("%s.issuer: required, at most 2048 characters", f))
	}
	if n := len(is.Audiences); n < 1 || n > 32 {
		errs = append(errs, fmt.Errorf("%s.audiences: give 1 to 32 audiences, got %d", f, n))
	}
	for i, a := range is.Audiences {
		if a == "" {
			errs = append(errs, fmt.Errorf("%s.audiences[%d]: empty", f, i))
		}
	}
	set := 0
	for _, b := range []bool{is.JWKS.Remote != nil, is.JWKS.Inline != "", is.JWKS.SecretRef != nil} {
		if b {
			set++
		}
	}
	if set != 1 {
		errs = append(errs, fmt.Errorf("%s.jwks: give exactly one of remote, inline and secretRef", f))
	}
	if r := is.JWKS.Remote; r != nil {
		if u, err := url.Parse(r.URI); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || len(r.URI) > 2048 {
			errs = append(errs, fmt.Errorf("%s.jwks.remote.uri: %q is not an https:// (or http://) URL", f, r.URI))
		}
	}
	if is.JWKS.Inline != "" {
		if err := CheckJWKS([]byte(is.JWKS.Inline)); err != nil {
			errs = append(errs, fmt.Errorf("%s.jwks.inline: %v", f, err))
		}
	}
	if r := is.JWKS.SecretRef; r != nil && r.Name == "" {
		errs = append(errs, fmt.Errorf("%s.jwks.secretRef.name: required", f))
	}
	if len(is.FromHeaders)+len(is.FromParams)+len(is.FromCookies) > 8 {
		errs = append(errs, fmt.Errorf("%s: at most 8 token locations (fromHeaders, fromParams, fromCookies)", f))
	}
	for i, h := range is.FromHeaders {
		if !headerNameRE.MatchString(h.Name) {
			errs = append(errs, fmt.Errorf("%s.fromHeaders[%d].name: %q is not a header name", f, i, h.Name))
		}
	}
	for i, p := range is.FromParams {
		if p == "" {
			errs = append(errs, fmt.Errorf("%s.fromParams[%d]: empty", f, i))
		}
	}
	for i, c := range is.FromCookies {
		if c == "" {
			errs = append(errs, fmt.Errorf("%s.fromCookies[%d]: empty", f, i))
		}
	}
	if is.ClockSkew != "" {
		if d, err := time.ParseDuration(is.ClockSkew); err != nil || !durationRE.MatchString(is.ClockSkew) || d > time.Hour {
			errs = append(errs, fmt.Errorf("%s.clockSkew: %q is not a duration of at most 1h (60s, 2m)", f, is.ClockSkew))
		}
	}
	for i, c := range is.ClaimsToHeaders {
		if c.Claim == "" {
			errs = append(errs, fmt.Errorf("%s.claimsToHeaders[%d].claim: required", f, i))
		}
		if !headerNameRE.MatchString(c.Header) {
			errs = append(errs, fmt.Errorf("%s.claimsToHeaders[%d].header: %q is not a header name", f, i, c.Header))
		}
	}
	return errs
}

// ErrPrivateKey: a key set holds a private or symmetric key, which must never be handed to proxies.
var ErrPrivateKey = errors.New("holds a private or symmetric key")

// CheckJWKS checks that b is a JSON Web Key Set of public keys only, with at least one key.
func CheckJWKS(b []byte) error {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(b, &set); err != nil {
		return fmt.Errorf("not a JSON Web Key Set: %v", err)
	}
	if len(set.Keys) == 0 {
		return errors.New("no keys")
	}
	for _, k := range set.Keys {
		if !k.IsPublic() {
			return fmt.Errorf("key %q: %w", k.KeyID, ErrPrivateKey)
		}
	}
	return nil
}
