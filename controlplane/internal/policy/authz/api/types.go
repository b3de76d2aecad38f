// Package api holds the Go form of the inbound authorization kinds of group policy.sinew.dev (Server,
// ServerAuthorization, AuthorizationPolicy, MeshTLSAuthentication, NetworkAuthentication, JWTAuthentication,
// HTTPLocalRateLimitPolicy), and HTTPFault, which routes refer to, as the CRDs in
// charts/sinew-crds define them, and their validation. Both sources decode documents into these types (local
// YAML files strictly, Kubernetes objects through JSON) and hand them to the model unchanged; the translation into
// proxy policy lives in the parent package authz. It must not import the model, client-go or anything that
// knows where the objects came from.
package api

import (
	"time"
)

// Group and Version of the kinds; APIVersion is how documents spell both.
const (
	Group      = "policy.sinew.dev"
	Version    = "v1alpha1"
	APIVersion = Group + "/" + Version
)

// The kinds, as documents name them.
const (
	KindServer                = "Server"
	KindServerAuthorization   = "ServerAuthorization"
	KindAuthorizationPolicy   = "AuthorizationPolicy"
	KindMeshTLSAuthentication = "MeshTLSAuthentication"
	KindNetworkAuthentication = "NetworkAuthentication"
	KindJWTAuthentication     = "JWTAuthentication"
)

// Kinds are the kinds this package reads, with the resource (plural) names the API server serves them under.
var Kinds = []struct{ Kind, Resource string }{
	{KindServer, "servers"},
	{KindServerAuthorization, "serverauthorizations"},
	{KindAuthorizationPolicy, "authorizationpolicies"},
	{KindMeshTLSAuthentication, "meshtlsauthentications"},
	{KindNetworkAuthentication, "networkauthentications"},
	{KindHTTPLocalRateLimitPolicy, "httplocalratelimitpolicies"},
	{KindJWTAuthentication, "jwtauthentications"},
	{KindHTTPFault, "httpfaults"},
}

// Meta is the part of an object's metadata the translation reads.
type Meta struct {
	Name      string            `json:"name"`
	Namespace string            `json:"namespace,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
	// Annotations are accepted (documents carry them) and not read.
	Annotations map[string]string `json:"annotations,omitempty"`
	// CreationTimestamp orders overlapping Servers (the oldest wins); zero in local mode, where the name decides.
	CreationTimestamp time.Time `json:"creationTimestamp,omitzero"`
}

// Key is "namespace/name".
func (m *Meta) Key() string { return m.Namespace + "/" + m.Name }

// Object is one of the kinds.
type Object interface {
	// ObjectKind is the object's kind (KindServer, …).
	ObjectKind() string
	ObjectMeta() *Meta
	// Validate checks the spec as the CRD's schema and CEL rules do; errors carry field paths.
	Validate() error
}

// New returns an empty object of kind to decode into; false for a kind this package does not read.
func New(kind string) (Object, bool) {
	switch kind {
	case KindServer:
		return &Server{}, true
	case KindServerAuthorization:
		return &ServerAuthorization{}, true
	case KindAuthorizationPolicy:
		return &AuthorizationPolicy{}, true
	case KindMeshTLSAuthentication:
		return &MeshTLSAuthentication{}, true
	case KindNetworkAuthentication:
		return &NetworkAuthentication{}, true
	case KindHTTPLocalRateLimitPolicy:
		return &HTTPLocalRateLimitPolicy{}, true
	case KindJWTAuthentication:
		return &JWTAuthentication{}, true
	case KindHTTPFault:
		return &HTTPFault{}, true
	}
	return nil, false
}

// Server names one port of the pods (or Workloads) its selector picks in its namespace.
type Server struct {
	APIVersion string     `json:"apiVersion,omitempty"`
	Kind       string     `json:"kind,omitempty"`
	Metadata   Meta       `json:"metadata"`
	Spec       ServerSpec `json:"spec"`
}

// ServerSpec is a Server's spec; exactly one of PodSelector and WorkloadSelector is set.
type ServerSpec struct {
	PodSelector      *LabelSelector `json:"podSelector,omitempty"`
	WorkloadSelector *LabelSelector `json:"workloadSelector,omitempty"`
	Port             Port           `json:"port"`
	// ProxyProtocol: unknown (detect, the default), HTTP/1, HTTP/2, gRPC, opaque or TLS.
	ProxyProtocol string `json:"proxyProtocol,omitempty"`
	// AccessPolicy is what clients no authorization admits get: deny (the default) or one of the default inbound
	// policies.
	AccessPolicy string `json:"accessPolicy,omitempty"`
	// MTLSMode is the port's mTLS mode: STRICT, PERMISSIVE or DISABLE; "" leaves it to the workload's
	// config.sinew.dev/mtls-mode annotation (else PERMISSIVE). Set, it wins over the annotation.
	MTLSMode MTLSMode `json:"mtlsMode,omitempty"`
}

// Proxy protocols.
const (
	ProtocolUnknown = "unknown"
	ProtocolHTTP1   = "HTTP/1"
	ProtocolHTTP2   = "HTTP/2"
	ProtocolGRPC    = "gRPC"
	ProtocolOpaque  = "opaque"
	ProtocolTLS     = "TLS"
)

// Port is a port number or a port name, as Kubernetes' IntOrString.
type Port struct {
	Number int
	Name   string
}

// ServerAuthorization admits a set of clients to one Server, or to the Servers its selector picks.
type ServerAuthorization struct {
	APIVersion string                  `json:"apiVersion,omitempty"`
	Kind       string                  `json:"kind,omitempty"`
	Metadata   Meta                    `json:"metadata"`
	Spec       ServerAuthorizationSpec `json:"spec"`
}

// ServerAuthorizationSpec says which Servers and which clients.
type ServerAuthorizationSpec struct {
	Server ServerRef `json:"server"`
	Client Client    `json:"client"`
}

// ServerRef picks Servers of the namespace by name or by label selector (exactly one).
type ServerRef struct {
	Name     string         `json:"name,omitempty"`
	Selector *LabelSelector `json:"selector,omitempty"`
}

// Client says who may connect: meshed clients by identity (MeshTLS) or any client (Unauthenticated), from
// Networks (empty: anywhere).
type Client struct {
	Networks        []Network `json:"networks,omitempty"`
	Unauthenticated bool      `json:"unauthenticated,omitempty"`
	MeshTLS         *MeshTLS  `json:"meshTLS,omitempty"`
}

// MeshTLS picks meshed clients; exactly one field is set.
type MeshTLS struct {
	UnauthenticatedTLS bool                `json:"unauthenticatedTLS,omitempty"`
	Identities         []string            `json:"identities,omitempty"`
	ServiceAccounts    []ServiceAccountRef `json:"serviceAccounts,omitempty"`
}

// ServiceAccountRef names a service account; Namespace defaults to the referring object's.
type ServiceAccountRef struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
}

// Network is an address range in CIDR form less the ranges in Except. A bare address is that one host.
type Network struct {
	CIDR   string   `json:"cidr"`
	Except []string `json:"except,omitempty"`
}

// AuthorizationPolicy admits the clients that satisfy every required authentication to its target.
type AuthorizationPolicy struct {
	APIVersion string                  `json:"apiVersion,omitempty"`
	Kind       string                  `json:"kind,omitempty"`
	Metadata   Meta                    `json:"metadata"`
	Spec       AuthorizationPolicySpec `json:"spec"`
}

// AuthorizationPolicySpec is the target and the authentications.
type AuthorizationPolicySpec struct {
	TargetRef                  TargetRef `json:"targetRef"`
	RequiredAuthenticationRefs []Ref     `json:"requiredAuthenticationRefs"`
}

// TargetRef names what a policy applies to, in the policy's namespace.
type TargetRef struct {
	Group string `json:"group,omitempty"`
	Kind  string `json:"kind"`
	Name  string `json:"name"`
}

// Ref names an object, by group, kind, name and (where the kind allows it) namespace.
type Ref struct {
	Group     string `json:"group,omitempty"`
	Kind      string `json:"kind"`
	Name      string `json:"name,omitempty"`
	Namespace string `json:"namespace,omitempty"`
}

// MeshTLSAuthentication is a set of mesh identities: listed, or by service account or namespace.
type MeshTLSAuthentication struct {
	APIVersion string                    `json:"apiVersion,omitempty"`
	Kind       string                    `json:"kind,omitempty"`
	Metadata   Meta                      `json:"metadata"`
	Spec       MeshTLSAuthenticationSpec `json:"spec"`
}

// MeshTLSAuthenticationSpec has exactly one of Identities and IdentityRefs.
type MeshTLSAuthenticationSpec struct {
	Identities   []string `json:"identities,omitempty"`
	IdentityRefs []Ref    `json:"identityRefs,omitempty"`
}

// NetworkAuthentication is a set of client networks.
type NetworkAuthentication struct {
	APIVersion string                    `json:"apiVersion,omitempty"`
	Kind       string                    `json:"kind,omitempty"`
	Metadata   Meta                      `json:"metadata"`
	Spec       NetworkAuthenticationSpec `json:"spec"`
}

// NetworkAuthenticationSpec lists the networks.
type NetworkAuthenticationSpec struct {
	Networks []Network `json:"networks"`
}

// ObjectKind implements Object.
func (*Server) ObjectKind() string { return KindServer }

// ObjectKind implements Object.
func (*ServerAuthorization) ObjectKind() string { return KindServerAuthorization }

// ObjectKind implements Object.
func (*AuthorizationPolicy) ObjectKind() string { return KindAuthorizationPolicy }

// ObjectKind implements Object.
func (*MeshTLSAuthentication) ObjectKind() string { return KindMeshTLSAuthentication }

// ObjectKind implements Object.
func (*NetworkAuthentication) ObjectKind() string { return KindNetworkAuthentication }

// ObjectMeta implements Object.
func (o *Server) ObjectMeta() *Meta { return &o.Metadata }

// ObjectMeta implements Object.
func (o *ServerAuthorization) ObjectMeta() *Meta { return &o.Metadata }

// ObjectMeta implements Object.
func (o *AuthorizationPolicy) ObjectMeta() *Meta { return &o.Metadata }

// ObjectMeta implements Object.
func (o *MeshTLSAuthentication) ObjectMeta() *Meta { return &o.Metadata }

// ObjectMeta implements Object.
func (o *NetworkAuthentication) ObjectMeta() *Meta { return &o.Metadata }

var (
	_ Object = (*Server)(nil)
	_ Object = (*ServerAuthorization)(nil)
	_ Object = (*AuthorizationPolicy)(nil)
	_ Object = (*MeshTLSAuthentication)(nil)
	_ Object = (*NetworkAuthentication)(nil)
)

// Policies is every object of the kinds a source knows, in no particular order.
type Policies struct {
	Servers                []*Server                   `json:"servers,omitempty"`
	ServerAuthorizations   []*ServerAuthorization      `json:"serverAuthorizations,omitempty"`
	AuthorizationPolicies  []*AuthorizationPolicy      `json:"authorizationPolicies,omitempty"`
	MeshTLSAuthentications []*MeshTLSAuthentication    `json:"meshTLSAuthentications,omitempty"`
	NetworkAuthentications []*NetworkAuthentication    `json:"networkAuthentications,omitempty"`
	RateLimits             []*HTTPLocalRateLimitPolicy `json:"httpLocalRateLimitPolicies,omitempty"`
	JWTAuthentications     []*JWTAuthentication        `json:"jwtAuthentications,omitempty"`
	HTTPFaults             []*HTTPFault                `json:"httpFaults,omitempty"`
}

// Add appends o to its kind's list.
func (p *Policies) Add(o Object) {
	switch o := o.(type) {
	case *Server:
		p.Servers = append(p.Servers, o)
	case *ServerAuthorization:
		p.ServerAuthorizations = append(p.ServerAuthorizations, o)
	case *AuthorizationPolicy:
		p.AuthorizationPolicies = append(p.AuthorizationPolicies, o)
	case *MeshTLSAuthentication:
		p.MeshTLSAuthentications = append(p.MeshTLSAuthentications, o)
	case *NetworkAuthentication:
		p.NetworkAuthentications = append(p.NetworkAuthentications, o)
	case *HTTPLocalRateLimitPolicy:
		p.RateLimits = append(p.RateLimits, o)
	case *JWTAuthentication:
		p.JWTAuthentications = append(p.JWTAuthentications, o)
	case *HTTPFault:
		p.HTTPFaults = append(p.HTTPFaults, o)
	}
}

// Each calls f with every object, kind by kind in the order of Kinds.
func (p *Policies) Each(f func(Object)) {
	for _, o := range p.Servers {
		f(o)
	}
	for _, o := range p.ServerAuthorizations {
		f(o)
	}
	for _, o := range p.AuthorizationPolicies {
		f(o)
	}
	for _, o := range p.MeshTLSAuthentications {
		f(o)
	}
	for _, o := range p.NetworkAuthentications {
		f(o)
	}
	for _, o := range p.RateLimits {
		f(o)
	}
	for _, o := range p.JWTAuthentications {
		f(o)
	}
	for _, o := range p.HTTPFaults {
		f(o)
	}
}

// Len is the number of objects.
func (p *Policies) Len() int {
	return len(p.Servers) + len(p.ServerAuthorizations) + len(p.AuthorizationPolicies) +
		len(p.MeshTLSAuthentications) + len(p.NetworkAuthentications) + len(p.RateLimits) + len(p.JWTAuthentications) +
		len(p.HTTPFaults)
}
