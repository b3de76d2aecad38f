// Package authz is the proxy's inbound authorization: the policy of each inbound port, as the policy service
// streams it (WatchInbound), compiled once per answer into a Server, and the decision for a client's connection
// or request. It knows nothing of HTTP handling or metrics' transport; the forward package asks it and answers
// 403 or refuses the connection. Decisions never fail open: a port whose policy never arrived admits nobody.
package authz

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	policyv1 "github.com/sinewmesh/sinew/api/policy/v1"
	"github.com/sinewmesh/sinew/internal/names"
	"github.com/sinewmesh/sinew/proxy/internal/policy"
)

// Client is who is asking: the address the connection came from and, for a peer proxy's mTLS connection, the
// client's verified mesh identity (empty otherwise).
type Client struct {
	Addr netip.Addr
	ID   string
}

// Server is one port's compiled policy.
type Server struct {
	Kind, Name string // srv_kind, srv_name: "server" and its name, or "default" and the default policy's name
	Protocol   policyv1.Protocol
	// Strict: the port's mTLS mode is STRICT, so only meshed clients are admitted (kubelet probes aside).
	Strict bool
	// Limiter is the port's local rate limit on admitted HTTP requests; nil for none.
	Limiter   *Limiter
	authzSet  // the port's own authorizations: its connections, and requests on every route
	providers []*Provider
	denials   [2]sync.Map // HTTP, TCP: Conn -> deny counter
	notFound  sync.Map    // Conn -> route-not-found counter
	// routes matches requests to the port's inbound routes (HTTPRoutes on its Server), nil when it has none;
	// routeOf is each matched route's authorizations.
	routes     *policy.Outbound
	routeOf    map[*policy.Route]*Route
	probePaths map[string]bool
	probeNets  []network
}

// authzSet is a list of authorizations in the policy's order (the first that admits a client is the one
// counted), also indexed: those naming exact identities by identity, the rest (unauthenticated, any identity,
// prefixes, tokens) in order. A decision costs one map lookup however many identities there are.
type authzSet struct {
	authzs  []*Authorization
	byID    map[string][]*Authorization
	generic []*Authorization
}

// Route is one inbound route of a port (an HTTPRoute on its Server). The requests it matches are admitted by
// its own authorizations or the port's.
type Route struct {
	Name string // route_name
	authzSet
	denials sync.Map // Conn -> deny counter
}

// RouteDefault is the route_name of requests on a port without routes, RouteProbe that of kubelet probes.
const (
	RouteDefault = "default"
	RouteProbe   = "probe"
)

// Authorization is one way in: the client's address in one of its networks (any when none), and either any
// client or a meshed client with one of its identities.
type Authorization struct {
	Kind, Name string // authz_kind, authz_name
	// Audit: admitted only by an audit access policy; logged and counted as such.
	Audit           bool
	jwt             *jwtRequirement // the token a request must also carry; such an authorization admits no TCP
	idx             int
	route           string      // route_name of the requests it admits
	counters        [2]sync.Map // HTTP, TCP: Conn -> allow counter
	name            string
	nets            []network
	unauthenticated bool
	anyID           bool
	ids             map[string]bool
	prefixes        []string
}

type network struct {
	prefix netip.Prefix
	except []netip.Prefix
}

func (n network) contains(a netip.Addr) bool {
	if !n.prefix.Contains(a) {
		return false
	}
	for _, e := range n.except {
		if e.Contains(a) {
			return false
		}
	}
	return true
}

func inNetworks(nets []network, a netip.Addr) bool {
	if len(nets) == 0 {
		return true
	}
	a = a.Unmap()
	for _, n := range nets {
		if n.contains(a) {
			return true
		}
	}
	return false
}

// Probe is the authorization of kubelet probes: GET and HEAD to the workload's probe paths on a port whose
// Server has no routes.
var Probe = &Authorization{Kind: "default", Name: "probe", name: "default:probe", route: RouteProbe}

// Admit returns the authorization that admits c, or nil when none does. A port in STRICT mTLS mode admits no
// plaintext client, whatever its authorizations say.
func (s *Server) Admit(c Client) *Authorization {
	return s.decide(c, nil, time.Time{}).Authz
}

// AdmitRequest is Admit for an HTTP request: probes first, then the authorizations, tokens included.
func (s *Server) AdmitRequest(c Client, r *http.Request) *Authorization {
	return s.Decide(c, r, time.Now()).Authz
}

// Decision is how a request was authorized.
type Decision struct {
	// Authz admitted the request; nil when it is refused.
	Authz *Authorization
	// Token and Provider: the token that satisfied Authz's requirement, if it had one.
	Token    *Token
	Provider *Provider
	// TokenErr, for a refused request that an authorization would have admitted with a (valid, allowed) token:
	// ErrNoToken or ErrInvalidToken (answer 401), or a valid token that is not allowed (403).
	TokenErr error
	// Route is the inbound route the request matched; nil on a port without routes.
	Route *Route
	// NoRoute: the port has routes and none matches the request (answer 404).
	NoRoute bool
}

// Unauthenticated reports whether a refusal should ask the client for a token (401) rather than forbid (403).
func (d Decision) Unauthenticated() bool {
	return d.Authz == nil && (errors.Is(d.TokenErr, ErrNoToken) || errors.Is(d.TokenErr, ErrInvalidToken))
}

// Decide authorizes an HTTP request at now. On a port with routes, the request's route (Gateway API precedence)
// decides with its authorizations and the port's, and a request no route matches is refused (NoRoute).
// Otherwise probes come first, then the port's authorizations in order. An authorization that requires a token
// admits only with a valid one that its principals and claims allow.
func (s *Server) Decide(c Client, r *http.Request, now time.Time) Decision {
	if s.routes != nil {
		rule := s.routes.Match(r)
		if rule == nil {
			return Decision{NoRoute: true}
		}
		rt := s.routeOf[rule.Route]
		if s.Strict && c.ID == "" {
			return Decision{Route: rt}
		}
		d := rt.decide(c, r, now)
		d.Route = rt
		return d
	}
	if len(s.probePaths) > 0 && (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
		s.probePaths[r.URL.Path] && inNetworks(s.probeNets, c.Addr) {
		return Decision{Authz: Probe}
	}
	return s.decide(c, r, now)
}

// decide finds the first authorization, in the policy's order, that admits c; r is nil for a connection, which no
// authorization requiring a token admits. Exact identities come from the index, the rest from the ordered scan,
// which stops at the indexed match.
func (s *Server) decide(c Client, r *http.Request, now time.Time) Decision {
	if s.Strict && c.ID == "" {
		return Decision{}
	}
	return s.authzSet.decide(c, r, now)
}

// decide is the first authorization of the set, in order, that admits c (and r's token, when it needs one).
func (s *authzSet) decide(c Client, r *http.Request, now time.Time) Decision {
	var best *Authorization
	if c.ID != "" {
		for _, a := range s.byID[c.ID] {
			if inNetworks(a.nets, c.Addr) {
				best = a
				break
			}
		}
	}
	var tokenErr error
	for _, a := range s.generic {
		if best != nil && a.idx > best.idx {
			break
		}
		if !a.admitsClient(c) {
			continue
		}
		if a.jwt == nil {
			return Decision{Authz: a}
		}
		if r == nil {
			continue
		}
		t, p, err := a.jwt.check(r, now)
		if err == nil {
			return Decision{Authz: a, Token: t, Provider: p}
		}
		tokenErr = cmpErr(tokenErr, err)
	}
	if best != nil {
		return Decision{Authz: best}
	}
	return Decision{TokenErr: tokenErr}
}

// admitsClient reports whether the client's address and identity satisfy a; a token requirement is decide's.
func (a *Authorization) admitsClient(c Client) bool {
	if !inNetworks(a.nets, c.Addr) {
		return false
	}
	if a.unauthenticated {
		return true
	}
	if c.ID == "" {
		return false
	}
	if a.anyID || a.ids[c.ID] {
		return true
	}
	for _, p := range a.prefixes {
		if strings.HasPrefix(c.ID, p) {
			return true
		}
	}
	return false
}

// Compile turns the policy service's answer into a Server. Parts it cannot use (a malformed network) are left out
// and reported; leaving out a network narrows what an authorization admits, never widens it: an authorization
// whose every network is malformed admits nobody.
func Compile(msg *policyv1.InboundServer) (*Server, []string) {
	var problems []string
	s := &Server{
		Kind:     msg.GetLabels()["kind"],
		Name:     msg.GetLabels()["name"],
		Protocol: msg.GetProtocol(),
		Strict:   msg.GetMtlsMode() == policyv1.MTLSMode_MTLS_MODE_STRICT,
		Limiter:  compileLimiter(msg.GetRateLimit()),
	}
	if s.Kind == "" {
		s.Kind = "default"
	}
	for _, p := range msg.GetProbePaths() {
		if s.probePaths == nil {
			s.probePaths = map[string]bool{}
		}
		s.probePaths[p] = true
	}
	var bad bool
	s.probeNets, bad = compileNetworks(msg.GetProbeNetworks(), "probe networks", &problems)
	if bad && len(s.probeNets) == 0 {
		s.probePaths = nil // no valid probe network: no probe is admitted
	}
	providers := map[string]*Provider{}
	for _, jp := range msg.GetJwtProviders() {
		p, err := compileProvider(jp)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		providers[p.Name] = p
		s.providers = append(s.providers, p)
	}
	compileAuthorizations(&s.authzSet, msg.GetAuthorizations(), RouteDefault, providers, &problems)
	if len(msg.GetRoutes()) > 0 {
		s.compileRoutes(msg, providers, &problems)
	}
	return s, problems
}

// compileAuthorizations adds the authorizations of msgs to set, for requests on the route named route.
func compileAuthorizations(set *authzSet, msgs []*policyv1.Authorization, route string, providers map[string]*Provider, problems *[]string) {
	for i, a := range msgs {
		ca := &Authorization{
			Kind:            a.GetLabels()["kind"],
			Name:            a.GetLabels()["name"],
			Audit:           a.GetAudit(),
			name:            a.GetName(),
			unauthenticated: a.GetUnauthenticated(),
			route:           route,
		}
		if ca.name == "" {
			ca.name = fmt.Sprintf("#%d", i)
		}
		if ca.Name == "" {
			ca.Name = ca.name
		}
		if ca.Audit {
			ca.Name = "audit"
		}
		nets, bad := compileNetworks(a.GetNetworks(), "authorization "+ca.name, problems)
		if bad && len(nets) == 0 {
			continue // it named networks, none usable: it admits nobody
		}
		ca.nets = nets
		if req := a.GetJwt(); req != nil {
			ca.jwt = &jwtRequirement{claims: req.GetClaims()}
			for _, name := range req.GetProviders() {
				if p := providers[name]; p != nil {
					ca.jwt.providers = append(ca.jwt.providers, p)
				} else {
					*problems = append(*problems, fmt.Sprintf("authorization %s: JWT provider %q is missing or unusable", ca.name, name))
				}
			}
			if len(ca.jwt.providers) == 0 {
				continue // no usable provider: no token can satisfy it, so it admits nobody
			}
			for _, pr := range req.GetPrincipals() {
				if ca.jwt.principals == nil {
					ca.jwt.principals = map[string]bool{}
				}
				ca.jwt.principals[pr] = true
			}
		}
		for _, id := range a.GetIdentities() {
			switch {
			case id == "*":
				ca.anyID = true
			case strings.HasSuffix(id, "*"):
				ca.prefixes = append(ca.prefixes, strings.TrimSuffix(id, "*"))
			case id != "":
				if ca.ids == nil {
					ca.ids = map[string]bool{}
				}
				ca.ids[id] = true
			}
		}
		set.add(ca)
	}
}

// compileRoutes compiles the port's inbound routes: their matches (with the outbound routes' matcher, so
// precedence is the Gateway API's) and, per route, its own authorizations then the port's. A rule with a match the
// proxy cannot compile is left out, so its requests are not found rather than admitted by mistake.
func (s *Server) compileRoutes(msg *policyv1.InboundServer, providers map[string]*Provider, problems *[]string) {
	o, errs := policy.Translate("inbound", &policyv1.OutboundPolicy{Routes: msg.GetRoutes()})
	for _, err := range errs {
		*problems = append(*problems, "routes: "+err.Error())
	}
	s.routes, s.routeOf = &policy.Outbound{}, map[*policy.Route]*Route{}
	for _, r := range o.Routes {
		i := slices.IndexFunc(msg.GetRoutes(), func(m *policyv1.HttpRoute) bool { return maps.Equal(m.GetLabels(), r.Labels) })
		if i < 0 {
			continue // Translate's default route: every route was left out, so no request is on a route
		}
		rt := &Route{Name: r.Labels["name"]}
		if rt.Name == "" {
			rt.Name = fmt.Sprintf("#%d", i)
		}
		compileAuthorizations(&rt.authzSet, msg.GetRoutes()[i].GetAuthorizations(), rt.Name, providers, problems)
		compileAuthorizations(&rt.authzSet, msg.GetAuthorizations(), rt.Name, providers, problems)
		s.routes.Routes = append(s.routes.Routes, r)
		s.routeOf[r] = rt
	}
}

// add appends a to the set and indexes it.
func (s *authzSet) add(a *Authorization) {
	a.idx = len(s.authzs)
	s.authzs = append(s.authzs, a)
	if a.unauthenticated || a.anyID || len(a.prefixes) > 0 || a.jwt != nil {
		s.generic = append(s.generic, a)
		return
	}
	for id := range a.ids {
		if s.byID == nil {
			s.byID = map[string][]*Authorization{}
		}
		s.byID[id] = append(s.byID[id], a)
	}
}

func compileNetworks(in []*policyv1.Network, what string, problems *[]string) (out []network, bad bool) {
	for _, n := range in {
		p, err := netip.ParsePrefix(n.GetCidr())
		if err != nil {
			*problems = append(*problems, fmt.Sprintf("%s: network %q: %v", what, n.GetCidr(), err))
			bad = true
			continue
		}
		nw := network{prefix: p.Masked()}
		ok := true
		for _, e := range n.GetExcept() {
			ep, err := netip.ParsePrefix(e)
			if err != nil {
				// Without the exception the network would admit more than it says: drop the whole network.
				*problems = append(*problems, fmt.Sprintf("%s: network %s: exception %q: %v", what, n.GetCidr(), e, err))
				bad, ok = true, false
				break
			}
			nw.except = append(nw.except, ep.Masked())
		}
		if ok {
			out = append(out, nw)
		}
	}
	return out, bad
}

// Default policy names, as the control plane and the annotation config.sinew.dev/default-inbound-policy spell
// them.
const (
	AllUnauthenticated     = names.PolicyAllUnauthenticated
	AllAuthenticated       = names.PolicyAllAuthenticated
	ClusterUnauthenticated = names.PolicyClusterUnauthenticated
	ClusterAuthenticated   = names.PolicyClusterAuthenticated
	Deny                   = names.PolicyDeny
	Audit                  = names.PolicyAudit
)

// DefaultPolicy is the Server of a default inbound policy, for a proxy without a policy service; clusterNets are
// the cluster's networks for the cluster-* policies.
func DefaultPolicy(name string, clusterNets []netip.Prefix) (*Server, error) {
	s := &Server{Kind: "default", Name: name, Protocol: policyv1.Protocol_PROTOCOL_DETECT}
	a := &Authorization{Kind: "default", Name: name, name: "default:" + name}
	var nets []network
	for _, p := range clusterNets {
		nets = append(nets, network{prefix: p.Masked()})
	}
	switch name {
	case AllUnauthenticated:
		a.unauthenticated = true
	case AllAuthenticated:
		a.anyID = true
	case ClusterUnauthenticated:
		a.unauthenticated, a.nets = true, nets
	case ClusterAuthenticated:
		a.anyID, a.nets = true, nets
	case Deny:
		return s, nil
	case Audit:
		a.unauthenticated, a.Audit, a.Name = true, true, "audit"
	default:
		return nil, fmt.Errorf("unknown default inbound policy %q (want one of %s, %s, %s, %s, %s, %s)", name,
			AllUnauthenticated, AllAuthenticated, ClusterUnauthenticated, ClusterAuthenticated, Deny, Audit)
	}
	if (name == ClusterUnauthenticated || name == ClusterAuthenticated) && len(nets) == 0 {
		return nil, fmt.Errorf("default inbound policy %s needs the cluster's networks", name)
	}
	s.add(a)
	return s, nil
}

// View is a Server as /debug/config shows it.
type View struct {
	Kind           string      `json:"srvKind"`
	Name           string      `json:"srvName"`
	Protocol       string      `json:"protocol"`
	Strict         bool        `json:"mtlsStrict,omitempty"`
	Authorizations []AuthzView `json:"authorizations"`
	ProbePaths     []string    `json:"probePaths,omitempty"`
	ProbeNetworks  []string    `json:"probeNetworks,omitempty"`
	RateLimit      *LimitView  `json:"rateLimit,omitempty"`
	// Routes are the port's inbound routes with the authorizations of their own (the port's apply too).
	Routes []RouteView `json:"routes,omitempty"`
}

// RouteView is an inbound route as /debug/config shows it.
type RouteView struct {
	Name           string      `json:"routeName"`
	Authorizations []AuthzView `json:"authorizations"`
}

// LimitView is a port's rate limit as /debug/config shows it.
type LimitView struct {
	Name        string `json:"name"`
	TotalRPS    uint32 `json:"totalRps,omitempty"`
	IdentityRPS uint32 `json:"identityRps,omitempty"`
	Overrides   int    `json:"overrides,omitempty"`
}

// AuthzView is an Authorization as /debug/config shows it.
type AuthzView struct {
	Kind            string   `json:"authzKind"`
	Name            string   `json:"authzName"`
	Audit           bool     `json:"audit,omitempty"`
	Networks        []string `json:"networks,omitempty"`
	Unauthenticated bool     `json:"unauthenticated,omitempty"`
	Identities      []string `json:"identities,omitempty"`
}

func (n network) String() string {
	if len(n.except) == 0 {
		return n.prefix.String()
	}
	ex := make([]string, len(n.except))
	for i, e := range n.except {
		ex[i] = e.String()
	}
	return n.prefix.String() + " except " + strings.Join(ex, ", ")
}

// View describes s.
func (s *Server) View() View {
	v := View{Kind: s.Kind, Name: s.Name, Protocol: s.Protocol.String(), Strict: s.Strict, Authorizations: views(s.authzs)}
	for p := range s.probePaths {
		v.ProbePaths = append(v.ProbePaths, p)
	}
	slices.Sort(v.ProbePaths)
	for _, n := range s.probeNets {
		v.ProbeNetworks = append(v.ProbeNetworks, n.String())
	}
	if l := s.Limiter; l != nil {
		v.RateLimit = &LimitView{Name: l.Name, TotalRPS: l.msg.GetTotalRps(), IdentityRPS: l.msg.GetIdentityRps(), Overrides: len(l.overrides)}
	}
	if s.routes != nil {
		for _, r := range s.routes.Routes {
			rt := s.routeOf[r]
			// A route's set ends with the port's authorizations, which the view shows once, above.
			own := rt.authzs[:len(rt.authzs)-len(s.authzs)]
			v.Routes = append(v.Routes, RouteView{Name: rt.Name, Authorizations: views(own)})
		}
	}
	return v
}

// views describes authorizations.
func views(as []*Authorization) []AuthzView {
	out := []AuthzView{}
	for _, a := range as {
		av := AuthzView{Kind: a.Kind, Name: a.Name, Audit: a.Audit, Unauthenticated: a.unauthenticated}
		for _, n := range a.nets {
			av.Networks = append(av.Networks, n.String())
		}
		if a.anyID {
			av.Identities = append(av.Identities, "*")
		}
		av.Identities = append(av.Identities, slices.Sorted(maps.Keys(a.ids))...)
		for _, p := range a.prefixes {
			av.Identities = append(av.Identities, p+"*")
		}
		out = append(out, av)
	}
	return out
}
