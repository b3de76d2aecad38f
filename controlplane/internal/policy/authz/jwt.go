package authz

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	policyv1 "github.com/sinewmesh/sinew/api/policy/v1"
	"github.com/sinewmesh/sinew/controlplane/internal/policy/authz/api"
)

// Keys are the JSON Web Key Sets the control plane has fetched (JWKS URLs, Secrets), by where they come from.
// The translation only reads them; the jwks package fetches. A value is immutable once handed over.
type Keys struct {
	// Sets are the last good key sets.
	Sets map[api.KeySource][]byte
	// Errors say why the last fetch of a source failed; a source may have both a set (the last good one) and an
	// error.
	Errors map[api.KeySource]string
}

func (k *Keys) set(src api.KeySource) ([]byte, bool) {
	if k == nil {
		return nil, false
	}
	b, ok := k.Sets[src]
	return b, ok
}

func (k *Keys) err(src api.KeySource) string {
	if k == nil {
		return ""
	}
	return k.Errors[src]
}

// ProviderName is the name of the JwtProvider of a JWTAuthentication's i-th issuer, unique within a port.
func ProviderName(j *api.JWTAuthentication, i int) string {
	return fmt.Sprintf("%s/%d", j.Metadata.Key(), i)
}

// jwtProviders are the providers of a JWTAuthentication's issuers whose keys are at hand; an issuer whose fetched
// keys are not (not fetched yet, fetch failed with no good keys before, Secret missing) is left out, with a
// problem.
func jwtProviders(cfg Config, j *api.JWTAuthentication) ([]*policyv1.JwtProvider, []string) {
	var (
		out      []*policyv1.JwtProvider
		problems []string
	)
	for i := range j.Spec.Issuers {
		is := &j.Spec.Issuers[i]
		p := &policyv1.JwtProvider{
			Name:      ProviderName(j, i),
			Issuer:    is.Issuer,
			Audiences: is.Audiences,
			KeepToken: is.ForwardToken,
		}
		if src, fetched := is.KeySource(j.Metadata.Namespace); fetched {
			b, ok := cfg.Keys.set(src)
			if !ok {
				why := "not fetched yet"
				if e := cfg.Keys.err(src); e != "" {
					why = e
				}
				problems = append(problems, fmt.Sprintf("issuers[%d] (%s): no keys from %s (%s); the issuer is left out", i, is.Issuer, src, why))
				continue
			}
			p.Jwks, p.KeySource = b, src.Handle()
		} else {
			p.Jwks = []byte(is.JWKS.Inline)
		}
		for _, h := range is.FromHeaders {
			p.Sources = append(p.Sources, &policyv1.TokenSource{Source: &policyv1.TokenSource_Header{Header: &policyv1.HeaderSource{Name: h.Name, Prefix: h.Prefix}}})
		}
		for _, q := range is.FromParams {
			p.Sources = append(p.Sources, &policyv1.TokenSource{Source: &policyv1.TokenSource_QueryParam{QueryParam: q}})
		}
		for _, c := range is.FromCookies {
			p.Sources = append(p.Sources, &policyv1.TokenSource{Source: &policyv1.TokenSource_Cookie{Cookie: c}})
		}
		for _, c := range is.ClaimsToHeaders {
			p.ClaimHeaders = append(p.ClaimHeaders, &policyv1.ClaimHeader{Claim: c.Claim, Header: c.Header})
		}
		if is.ClockSkew != "" {
			d, err := time.ParseDuration(is.ClockSkew)
			if err != nil {
				d = api.DefaultClockSkew // validation refuses it; never reached
			}
			p.ClockSkew = durationpb.New(d)
		}
		out = append(out, p)
	}
	return out, problems
}

// jwtRequirement is what a token must satisfy for a JWTAuthentication: a valid token of one of the providers,
// with an admitted principal and the required claims.
func jwtRequirement(j *api.JWTAuthentication, providers []*policyv1.JwtProvider) *policyv1.JwtRequirement {
	req := &policyv1.JwtRequirement{Principals: j.Spec.Principals}
	for _, p := range providers {
		req.Providers = append(req.Providers, p.Name)
	}
	for _, c := range j.Spec.RequiredClaims {
		req.Claims = append(req.Claims, &policyv1.ClaimMatch{Name: c.Name, Values: c.Values})
	}
	return req
}

// keyProblems reports the JWTAuthentications' key sources whose last fetch failed, whether or not older keys are
// still in use.
func keyProblems(pol *api.Policies, cfg Config) []string {
	var out []string
	for _, j := range pol.JWTAuthentications {
		for i := range j.Spec.Issuers {
			src, fetched := j.Spec.Issuers[i].KeySource(j.Metadata.Namespace)
			if !fetched {
				continue
			}
			if e := cfg.Keys.err(src); e != "" {
				state := "no keys yet"
				if _, ok := cfg.Keys.set(src); ok {
					state = "the last good keys are kept"
				}
				out = append(out, fmt.Sprintf("%s %s: issuers[%d]: fetching keys from %s: %s; %s",
					api.KindJWTAuthentication, j.Metadata.Key(), i, src, e, state))
			}
		}
	}
	return out
}
