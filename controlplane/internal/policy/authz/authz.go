// Package authz translates the inbound authorization kinds (Server, ServerAuthorization, AuthorizationPolicy,
// MeshTLSAuthentication, NetworkAuthentication, JWTAuthentication; their Go form is in api) and the default
// inbound policies into the InboundServer a proxy enforces on one port of a workload. Everything here is pure:
// model and fetched keys in, proto out; it never fetches. It never fails open: whatever it cannot honour (a
// reference to a missing object, a JWT issuer without keys, a requirement no client can meet) admits nobody and
// is reported by Problems.
package authz

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	policyv1 "github.com/sinewmesh/sinew/api/policy/v1"
	"github.com/sinewmesh/sinew/controlplane/internal/model"
	"github.com/sinewmesh/sinew/controlplane/internal/policy/authz/api"
	"github.com/sinewmesh/sinew/controlplane/internal/policy/routes"
	routesapi "github.com/sinewmesh/sinew/controlplane/internal/policy/routes/api"
	"github.com/sinewmesh/sinew/internal/meshtls"
	"github.com/sinewmesh/sinew/internal/names"
)

// The default inbound policies (names.InboundPolicies), for ports no Server selects and for a Server's
// accessPolicy.
const (
	AllUnauthenticated     = names.PolicyAllUnauthenticated
	AllAuthenticated       = names.PolicyAllAuthenticated
	ClusterUnauthenticated = names.PolicyClusterUnauthenticated
	ClusterAuthenticated   = names.PolicyClusterAuthenticated
	Deny                   = names.PolicyDeny
	Audit                  = names.PolicyAudit
)

// Label kinds of servers and authorizations.
const (
	KindServer              = "server"
	KindDefault             = "default"
	KindServerAuthorization = "serverauthorization"
	KindAuthorizationPolicy = "authorizationpolicy"
)

// Config is what the translation needs besides the model.
type Config struct {
	// TrustDomain of the mesh identities that service-account references stand for.
	TrustDomain string
	// DefaultPolicy applies to ports no Server selects, unless the workload's annotation says otherwise; ""
	// means all-unauthenticated.
	DefaultPolicy string
	// ClusterNetworks are the networks of the cluster-* policies; without any, those policies admit nobody.
	ClusterNetworks []netip.Prefix
	// ProbeNetworks are where kubelet probes may come from.
	ProbeNetworks []netip.Prefix
	// Keys are the JWKS the control plane fetched for JWTAuthentications (URLs, Secrets); nil: none yet.
	Keys *Keys
}

// Validate checks the policy name and the trust domain.
func (c Config) Validate() error {
	var errs []error
	if c.DefaultPolicy != "" && !slices.Contains(names.InboundPolicies, c.DefaultPolicy) {
		errs = append(errs, fmt.Errorf("default inbound policy %q: must be one of %s", c.DefaultPolicy, strings.Join(names.InboundPolicies, ", ")))
	}
	if err := names.CheckDNSName(c.TrustDomain); err != nil {
		errs = append(errs, fmt.Errorf("trust domain: %w", err))
	}
	return errors.Join(errs...)
}

// ParseNetworks reads a comma-separated list of networks (CIDR notation, or bare addresses); "" is none.
func ParseNetworks(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		p, err := api.ParseNetwork(s)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// Inbound is the policy of one port of a workload; w nil is a workload the model does not know, which gets the
// cluster's default policy.
func Inbound(snap *model.Snapshot, cfg Config, w *model.Workload, port uint16) *policyv1.InboundServer {
	var out *policyv1.InboundServer
	if srv, _ := serverFor(snap, w, port); srv != nil {
		out = translateServer(snap, cfg, srv)
	} else {
		policy := defaultPolicy(cfg, w)
		out = &policyv1.InboundServer{
			Protocol:       policyv1.Protocol_PROTOCOL_DETECT,
			Authorizations: defaultAuthorizations(cfg, policy),
			Labels:         map[string]string{"kind": KindDefault, "name": policy},
		}
	}
	out.MtlsMode = mtlsModes[MTLSMode(snap, w, port)]
	if w != nil && len(out.Routes) == 0 { // with routes, probes need a route of their own, as in Linkerd
		out.ProbePaths = probePaths(w, port)
		if len(out.ProbePaths) > 0 {
			out.ProbeNetworks = protoNetworks(plain(cfg.ProbeNetworks))
		}
	}
	return out
}

// mtlsModes are the contract's forms of the modes.
var mtlsModes = map[api.MTLSMode]policyv1.MTLSMode{
	api.MTLSStrict:     policyv1.MTLSMode_MTLS_MODE_STRICT,
	api.MTLSPermissive: policyv1.MTLSMode_MTLS_MODE_OPTIONAL,
	api.MTLSDisable:    policyv1.MTLSMode_MTLS_MODE_DISABLED,
}

// MTLSMode is the mTLS mode of a workload's port: the mtlsMode of the Server that applies to it (see serverFor),
// else the workload's config.sinew.dev/mtls-mode annotation, else PERMISSIVE. w nil is PERMISSIVE. The inbound
// policy (what the port's proxy admits) and the destination service (how meshed clients dial it) both ask here,
// so the two sides always agree.
func MTLSMode(snap *model.Snapshot, w *model.Workload, port uint16) api.MTLSMode {
	if w == nil {
		return api.DefaultMTLSMode
	}
	if snap.HasServerMTLSModes() {
		if srv, _ := serverFor(snap, w, port); srv != nil && srv.Spec.MTLSMode != "" {
			return srv.Spec.MTLSMode
		}
	}
	if m := w.MTLSModes.For(port); m != "" {
		return m
	}
	return api.DefaultMTLSMode
}

// defaultPolicy is the workload's own (from annotations) or the cluster's.
func defaultPolicy(cfg Config, w *model.Workload) string {
	if w != nil && slices.Contains(names.InboundPolicies, w.DefaultInboundPolicy) {
		return w.DefaultInboundPolicy
	}
	if cfg.DefaultPolicy != "" {
		return cfg.DefaultPolicy
	}
	return AllUnauthenticated
}

// defaultAuthorizations are the clients a default policy admits: nobody for deny (and for an unknown name).
func defaultAuthorizations(cfg Config, policy string) []*policyv1.Authorization {
	a := &policyv1.Authorization{
		Name:   KindDefault + ":" + policy,
		Labels: map[string]string{"kind": KindDefault, "name": policy},
	}
	switch policy {
	case AllUnauthenticated:
		a.Unauthenticated = true
	case AllAuthenticated:
		a.Identities = []string{"*"}
	case ClusterUnauthenticated, ClusterAuthenticated:
		if len(cfg.ClusterNetworks) == 0 {
			return nil // no cluster networks: nothing is in the cluster
		}
		a.Networks = protoNetworks(plain(cfg.ClusterNetworks))
		if policy == ClusterUnauthenticated {
			a.Unauthenticated = true
		} else {
			a.Identities = []string{"*"}
		}
	case Audit:
		a.Unauthenticated, a.Audit = true, true
	default: // deny
		return nil
	}
	return []*policyv1.Authorization{a}
}

var proxyProtocols = map[string]policyv1.Protocol{
	"":                  policyv1.Protocol_PROTOCOL_DETECT,
	api.ProtocolUnknown: policyv1.Protocol_PROTOCOL_DETECT,
	api.ProtocolHTTP1:   policyv1.Protocol_PROTOCOL_HTTP1,
	api.ProtocolHTTP2:   policyv1.Protocol_PROTOCOL_HTTP2,
	api.ProtocolGRPC:    policyv1.Protocol_PROTOCOL_GRPC,
	api.ProtocolOpaque:  policyv1.Protocol_PROTOCOL_OPAQUE,
	api.ProtocolTLS:     policyv1.Protocol_PROTOCOL_TLS,
}

// translateServer is a Server's policy: the authorizations that apply to it, then its access policy's.
func translateServer(snap *model.Snapshot, cfg Config, srv *api.Server) *policyv1.InboundServer {
	proto, ok := proxyProtocols[srv.Spec.ProxyProtocol]
	if !ok {
		proto = policyv1.Protocol_PROTOCOL_DETECT
	}
	out := &policyv1.InboundServer{
		Protocol: proto,
		Labels:   map[string]string{"kind": KindServer, "name": srv.Metadata.Name, "namespace": srv.Metadata.Namespace},
	}
	pol := snap.Policies()
	for _, sa := range pol.ServerAuthorizations {
		if authorizesServer(sa, srv) {
			if a, _ := translateServerAuthorization(cfg, sa); a != nil {
				out.Authorizations = append(out.Authorizations, a)
			}
		}
	}
	for _, ap := range pol.AuthorizationPolicies {
		if targetsServer(ap, srv) {
			addPolicy(pol, cfg, ap, out, &out.Authorizations)
		}
	}
	for _, rt := range snap.Routes() {
		if attachesToServer(rt, srv) {
			out.Routes = append(out.Routes, inboundRoute(pol, cfg, rt, out))
		}
	}
	sortAuthorizations(out.Authorizations)
	slices.SortFunc(out.JwtProviders, func(a, b *policyv1.JwtProvider) int { return strings.Compare(a.Name, b.Name) })
	if access := srv.Spec.AccessPolicy; access != "" && access != Deny {
		out.Authorizations = append(out.Authorizations, defaultAuthorizations(cfg, access)...)
	}
	out.RateLimit = translateRateLimit(snap, cfg, srv)
	return out
}

// addPolicy appends the authorization of an AuthorizationPolicy to dst, and the JWT providers it needs to the
// port's; a policy that admits nobody adds nothing.
func addPolicy(pol *api.Policies, cfg Config, ap *api.AuthorizationPolicy, out *policyv1.InboundServer, dst *[]*policyv1.Authorization) {
	a, providers, _ := translateAuthorizationPolicy(pol, cfg, ap)
	if a == nil {
		return
	}
	*dst = append(*dst, a)
	for _, p := range providers {
		if !slices.ContainsFunc(out.JwtProviders, func(q *policyv1.JwtProvider) bool { return q.Name == p.Name }) {
			out.JwtProviders = append(out.JwtProviders, p)
		}
	}
}

func sortAuthorizations(as []*policyv1.Authorization) {
	slices.SortFunc(as, func(a, b *policyv1.Authorization) int { return strings.Compare(a.Name, b.Name) })
}

// attachesToServer: one of the route's (an HTTPRoute's or a GRPCRoute's) parentRefs names srv, in the route's
// own namespace.
func attachesToServer(rt *routesapi.Route, srv *api.Server) bool {
	if rt.Namespace != srv.Metadata.Namespace {
		return false
	}
	for _, p := range rt.ParentRefs {
		if routesapi.ParentIsServer(p) && string(p.Name) == srv.Metadata.Name && (p.Namespace == nil || string(*p.Namespace) == rt.Namespace) {
			return true
		}
	}
	return false
}

// inboundRoute is an HTTPRoute or GRPCRoute on a Server: its rules' matches (a rule without matches matches
// everything; a gRPC method is a path match, as outbound) and the AuthorizationPolicies that target it. Filters
// and backends do not apply to inbound routes (Problems).
func inboundRoute(pol *api.Policies, cfg Config, rt *routesapi.Route, out *policyv1.InboundServer) *policyv1.HttpRoute {
	r := &policyv1.HttpRoute{Labels: routes.Labels(rt)}
	for _, rule := range rt.Rules {
		r.Rules = append(r.Rules, &policyv1.RouteRule{Matches: routes.Matches(rule)})
	}
	if len(r.Rules) == 0 {
		r.Rules = []*policyv1.RouteRule{{}}
	}
	for _, ap := range pol.AuthorizationPolicies {
		if targetsRoute(ap, rt) {
			addPolicy(pol, cfg, ap, out, &r.Authorizations)
		}
	}
	sortAuthorizations(r.Authorizations)
	return r
}

// targetsRoute: the policy's targetRef names the route (of its kind), in the policy's namespace.
func targetsRoute(ap *api.AuthorizationPolicy, rt *routesapi.Route) bool {
	t := ap.Spec.TargetRef
	return ap.Metadata.Namespace == rt.Namespace && t.Kind == rt.Kind && t.Name == rt.Name &&
		(t.Group == routesapi.Group || t.Group == api.Group)
}

// serverFor picks the Server of a workload's port: among those that select it, the oldest, then the first by
// name. The others are returned too, for reporting.
func serverFor(snap *model.Snapshot, w *model.Workload, port uint16) (*api.Server, []*api.Server) {
	if w == nil {
		return nil, nil
	}
	var matches []*api.Server
	for _, srv := range snap.Policies().Servers {
		if selectsWorkload(srv, w) && serverPort(srv, w) == port {
			matches = append(matches, srv)
		}
	}
	if len(matches) == 0 {
		return nil, nil
	}
	slices.SortFunc(matches, olderFirst)
	return matches[0], matches[1:]
}

func olderFirst(a, b *api.Server) int {
	if c := a.Metadata.CreationTimestamp.Compare(b.Metadata.CreationTimestamp); c != 0 {
		return c
	}
	return strings.Compare(a.Metadata.Name, b.Metadata.Name)
}

// selectsWorkload: a podSelector picks pods, a workloadSelector Workloads, each in the Server's namespace.
func selectsWorkload(srv *api.Server, w *model.Workload) bool {
	if srv.Metadata.Namespace != w.Namespace {
		return false
	}
	switch w.Kind {
	case model.KindPod:
		return srv.Spec.PodSelector.Matches(w.Labels)
	case model.KindWorkload:
		return srv.Spec.WorkloadSelector.Matches(w.Labels)
	}
	return false
}

// serverPort is the workload port a Server names: its number, or the workload's port of that name (0: none).
func serverPort(srv *api.Server, w *model.Workload) uint16 {
	if p := srv.Spec.Port; p.Name != "" {
		if wp, ok := w.PortByName(p.Name); ok {
			return wp.Port
		}
		return 0
	}
	if n := srv.Spec.Port.Number; n > 0 && n <= 65535 {
		return uint16(n)
	}
	return 0
}

func authorizesServer(sa *api.ServerAuthorization, srv *api.Server) bool {
	if sa.Metadata.Namespace != srv.Metadata.Namespace {
		return false
	}
	if ref := sa.Spec.Server; ref.Name != "" {
		return ref.Name == srv.Metadata.Name
	}
	return sa.Spec.Server.Selector.Matches(srv.Metadata.Labels)
}

func targetsServer(ap *api.AuthorizationPolicy, srv *api.Server) bool {
	if ap.Metadata.Namespace != srv.Metadata.Namespace {
		return false
	}
	switch t := ap.Spec.TargetRef; {
	case t.Kind == api.KindServer && t.Group == api.Group:
		return t.Name == srv.Metadata.Name
	case t.Kind == "Namespace" && t.Group == "":
		return t.Name == ap.Metadata.Namespace
	}
	return false // routes: targetsRoute
}

// translateServerAuthorization is the clients a ServerAuthorization admits; nil when it admits nobody (every
// identity it names is one the translation cannot express), with the reasons.
func translateServerAuthorization(cfg Config, sa *api.ServerAuthorization) (*policyv1.Authorization, []string) {
	ns := sa.Metadata.Namespace
	a := &policyv1.Authorization{
		Name:   KindServerAuthorization + ":" + sa.Metadata.Key(),
		Labels: map[string]string{"kind": KindServerAuthorization, "name": sa.Metadata.Name, "namespace": ns},
	}
	nets, ok := parseNetworks(sa.Spec.Client.Networks)
	if !ok {
		return nil, []string{"a network does not parse: it admits nobody"}
	}
	a.Networks = protoNetworks(nets)
	c := sa.Spec.Client
	switch m := c.MeshTLS; {
	case c.Unauthenticated:
		a.Unauthenticated = true
	case m == nil:
		return nil, []string{"no clients (neither unauthenticated nor meshTLS): it admits nobody"}
	case m.UnauthenticatedTLS:
		a.Identities = []string{"*"}
	case len(m.ServiceAccounts) > 0:
		for _, ref := range m.ServiceAccounts {
			a.Identities = append(a.Identities, meshtls.ID(cfg.TrustDomain, cmp.Or(ref.Namespace, ns), ref.Name))
		}
	default:
		var problems []string
		a.Identities, problems = identities(m.Identities)
		if len(a.Identities) == 0 {
			return nil, append(problems, "no identity it names can be honoured: it admits nobody")
		}
		a.Identities = normalizeIdentities(a.Identities)
		return a, problems
	}
	a.Identities = normalizeIdentities(a.Identities)
	return a, nil
}

// identities maps identities as documents write them to the contract's patterns: "*", exact SPIFFE IDs and
// SPIFFE prefixes ending in "*" pass; "*.<suffix>" (DNS-style names) has no SPIFFE meaning and is left out.
func identities(in []string) ([]string, []string) {
	var out, problems []string
	for _, id := range in {
		switch {
		case id == "*":
			out = append(out, id)
		case strings.HasPrefix(id, "spiffe://"):
			if !strings.HasSuffix(id, "*") {
				if _, _, _, err := meshtls.ParseID(id); err != nil {
					problems = append(problems, fmt.Sprintf("identity %q is not a mesh identity (spiffe://<trust-domain>/ns/<ns>/sa/<sa>), so no client has it", id))
				}
			}
			out = append(out, id)
		default:
			problems = append(problems, fmt.Sprintf("identity %q: only '*', SPIFFE IDs and SPIFFE prefixes ending in '*' are supported; left out", id))
		}
	}
	return out, problems
}

// translateAuthorizationPolicy combines the policy's required authentications into one authorization that
// admits only clients satisfying all of them: identities from MeshTLSAuthentications and ServiceAccounts
// (intersected when there are several), networks from NetworkAuthentications (intersected likewise), and a token
// from a JWTAuthentication (at most one), whose providers it returns too. Anything it cannot honour makes it admit
// nobody (nil), with the reasons.
func translateAuthorizationPolicy(pol *api.Policies, cfg Config, ap *api.AuthorizationPolicy) (*policyv1.Authorization, []*policyv1.JwtProvider, []string) {
	ns := ap.Metadata.Namespace
	var (
		idSets    [][]string
		netSets   [][]network
		jwt       *policyv1.JwtRequirement
		providers []*policyv1.JwtProvider
		problems  []string
	)
	nobody := func(why string) (*policyv1.Authorization, []*policyv1.JwtProvider, []string) {
		return nil, nil, append(problems, why+": the policy admits nobody")
	}
	for _, ref := range ap.Spec.RequiredAuthenticationRefs {
		refNS := cmp.Or(ref.Namespace, ns)
		key := refNS + "/" + ref.Name
		switch {
		case ref.Kind == api.KindMeshTLSAuthentication && ref.Group == api.Group:
			m := find(pol.MeshTLSAuthentications, refNS, ref.Name)
			if m == nil {
				return nobody(fmt.Sprintf("MeshTLSAuthentication %s does not exist", key))
			}
			ids, probs := meshTLSIdentities(cfg, m)
			for _, p := range probs {
				problems = append(problems, fmt.Sprintf("MeshTLSAuthentication %s: %s", key, p))
			}
			if len(ids) == 0 {
				return nobody(fmt.Sprintf("MeshTLSAuthentication %s names no identity that can be honoured", key))
			}
			idSets = append(idSets, ids)
		case ref.Kind == api.KindNetworkAuthentication && ref.Group == api.Group:
			n := find(pol.NetworkAuthentications, refNS, ref.Name)
			if n == nil {
				return nobody(fmt.Sprintf("NetworkAuthentication %s does not exist", key))
			}
			nets, ok := parseNetworks(n.Spec.Networks)
			if !ok || len(nets) == 0 {
				return nobody(fmt.Sprintf("NetworkAuthentication %s has no valid network", key))
			}
			netSets = append(netSets, nets)
		case ref.Kind == "ServiceAccount" && ref.Group == "":
			idSets = append(idSets, []string{meshtls.ID(cfg.TrustDomain, refNS, ref.Name)})
		case ref.Kind == api.KindJWTAuthentication && ref.Group == api.Group:
			if jwt != nil {
				return nobody("more than one JWTAuthentication is required (a request carries one token)")
			}
			j := find(pol.JWTAuthentications, refNS, ref.Name)
			if j == nil {
				return nobody(fmt.Sprintf("JWTAuthentication %s does not exist", key))
			}
			var probs []string
			providers, probs = jwtProviders(cfg, j)
			for _, p := range probs {
				problems = append(problems, fmt.Sprintf("JWTAuthentication %s: %s", key, p))
			}
			if len(providers) == 0 {
				return nobody(fmt.Sprintf("JWTAuthentication %s has no issuer with keys", key))
			}
			jwt = jwtRequirement(j, providers)
		default:
			return nobody(fmt.Sprintf("authentication kind %q (group %q) is not supported", ref.Kind, ref.Group))
		}
	}
	a := &policyv1.Authorization{
		Name:   KindAuthorizationPolicy + ":" + ap.Metadata.Key(),
		Labels: map[string]string{"kind": KindAuthorizationPolicy, "name": ap.Metadata.Name, "namespace": ns},
		Jwt:    jwt,
	}
	if len(idSets) == 0 {
		a.Unauthenticated = true
	} else {
		ids := idSets[0]
		for _, next := range idSets[1:] {
			ids = intersectIdentities(ids, next)
		}
		if len(ids) == 0 {
			return nobody("no identity satisfies every required MeshTLSAuthentication and ServiceAccount")
		}
		a.Identities = normalizeIdentities(ids)
	}
	if len(netSets) > 0 {
		nets := netSets[0]
		for _, next := range netSets[1:] {
			nets = intersectNetworks(nets, next)
		}
		if len(nets) == 0 {
			return nobody("no address is in every required NetworkAuthentication")
		}
		a.Networks = protoNetworks(nets)
	}
	return a, providers, problems
}

// meshTLSIdentities are the identity patterns of a MeshTLSAuthentication.
func meshTLSIdentities(cfg Config, m *api.MeshTLSAuthentication) ([]string, []string) {
	if len(m.Spec.IdentityRefs) == 0 {
		return identities(m.Spec.Identities)
	}
	var out []string
	for _, ref := range m.Spec.IdentityRefs {
		all := ref.Name == "" || ref.Name == "*"
		switch ref.Kind {
		case "ServiceAccount":
			ns := cmp.Or(ref.Namespace, m.Metadata.Namespace)
			if all {
				out = append(out, "spiffe://"+cfg.TrustDomain+"/ns/"+ns+"/sa/*")
			} else {
				out = append(out, meshtls.ID(cfg.TrustDomain, ns, ref.Name))
			}
		case "Namespace":
			if all {
				out = append(out, "spiffe://"+cfg.TrustDomain+"/*")
			} else {
				out = append(out, "spiffe://"+cfg.TrustDomain+"/ns/"+ref.Name+"/*")
			}
		}
	}
	return out, nil
}

// intersectIdentities is the patterns that match exactly the identities both lists match: "*" meets anything
// as that thing, a prefix meets an exact ID or a longer prefix it covers, and exact IDs meet themselves.
func intersectIdentities(a, b []string) []string {
	var out []string
	for _, x := range a {
		for _, y := range b {
			if z, ok := intersectIdentity(x, y); ok {
				out = append(out, z)
			}
		}
	}
	return normalizeIdentities(out)
}

func intersectIdentity(x, y string) (string, bool) {
	switch {
	case x == "*":
		return y, true
	case y == "*":
		return x, true
	}
	px, xPrefix := strings.CutSuffix(x, "*")
	py, yPrefix := strings.CutSuffix(y, "*")
	switch {
	case !xPrefix && !yPrefix:
		return x, x == y
	case xPrefix && !yPrefix:
		return y, strings.HasPrefix(y, px)
	case !xPrefix && yPrefix:
		return x, strings.HasPrefix(x, py)
	case strings.HasPrefix(px, py):
		return x, true
	case strings.HasPrefix(py, px):
		return y, true
	}
	return "", false
}

// normalizeIdentities sorts, de-duplicates and leaves out what another pattern covers ("*" covers everything,
// a prefix what starts with it).
func normalizeIdentities(ids []string) []string {
	if slices.Contains(ids, "*") {
		return []string{"*"}
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	var out []string
	for _, id := range ids {
		covered := false
		for _, other := range ids {
			if prefix, ok := strings.CutSuffix(other, "*"); ok && other != id && strings.HasPrefix(id, prefix) {
				covered = true
				break
			}
		}
		if !covered {
			out = append(out, id)
		}
	}
	return out
}

// network is an address range less exceptions inside it.
type network struct {
	prefix netip.Prefix
	except []netip.Prefix
}

func plain(ps []netip.Prefix) []network {
	out := make([]network, len(ps))
	for i, p := range ps {
		out[i] = network{prefix: p.Masked()}
	}
	return out
}

func parseNetworks(in []api.Network) ([]network, bool) {
	var out []network
	for _, n := range in {
		p, err := api.ParseNetwork(n.CIDR)
		if err != nil {
			return nil, false
		}
		nw := network{prefix: p}
		for _, e := range n.Except {
			ep, err := api.ParseNetwork(e)
			if err != nil {
				return nil, false // without the exception the network would admit more than it says
			}
			nw.except = append(nw.except, ep)
		}
		out = append(out, nw)
	}
	return out, true
}

// intersectNetworks is the ranges in both lists: for each overlapping pair, the narrower prefix less both
// pairs' exceptions.
func intersectNetworks(a, b []network) []network {
	var out []network
	for _, x := range a {
		for _, y := range b {
			if !x.prefix.Overlaps(y.prefix) {
				continue
			}
			n := network{prefix: x.prefix}
			if y.prefix.Bits() > x.prefix.Bits() {
				n.prefix = y.prefix
			}
			covered := false
			for _, e := range slices.Concat(x.except, y.except) {
				if !e.Overlaps(n.prefix) {
					continue
				}
				if e.Bits() <= n.prefix.Bits() {
					covered = true // the exception holds the whole range
					break
				}
				if !slices.Contains(n.except, e) {
					n.except = append(n.except, e)
				}
			}
			if !covered {
				out = append(out, n)
			}
		}
	}
	return out
}

func protoNetworks(nets []network) []*policyv1.Network {
	var out []*policyv1.Network
	for _, n := range nets {
		pn := &policyv1.Network{Cidr: n.prefix.String()}
		for _, e := range n.except {
			pn.Except = append(pn.Except, e.String())
		}
		out = append(out, pn)
	}
	return out
}

// probePaths are the paths of the workload's HTTP probes on port, sorted and unique.
func probePaths(w *model.Workload, port uint16) []string {
	var out []string
	for _, p := range w.Probes {
		if p.Port == port {
			out = append(out, p.Path)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

type named interface {
	*api.MeshTLSAuthentication | *api.NetworkAuthentication | *api.JWTAuthentication
	ObjectMeta() *api.Meta
}

func find[T named](list []T, ns, name string) T {
	for _, o := range list {
		if m := o.ObjectMeta(); m.Namespace == ns && m.Name == name {
			return o
		}
	}
	var zero T
	return zero
}
