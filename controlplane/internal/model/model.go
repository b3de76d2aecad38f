// Package model is the control plane's single, mode-blind view of the mesh: services, workloads, the endpoints
// they produce, the inbound authorization policies (their kinds live in policy/authz/api) and the Gateway API
// routes (policy/routes/api), and the ingress gateway's Gateways, GatewayClasses, ReferenceGrants, TLS Secrets
// and Namespaces (gateway.go). Sources (local YAML files, Kubernetes informers) feed it whole resource sets; the
// identity, destination and policy servers read immutable snapshots of it. It must not know where resources came
// from, nor anything about gRPC or proxies.
package model

import (
	"context"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	authzapi "github.com/sinewmesh/sinew/controlplane/internal/policy/authz/api"
	routesapi "github.com/sinewmesh/sinew/controlplane/internal/policy/routes/api"
)

// Protocol is how a port's traffic is treated.
type Protocol string

const (
	// ProtocolHTTP lets the proxies detect and upgrade HTTP (the default).
	ProtocolHTTP Protocol = "http"
	// ProtocolOpaque makes the proxies carry bytes without protocol detection.
	ProtocolOpaque Protocol = "opaque"
)

// Workload kinds: what a Server's podSelector (pods) or workloadSelector (sinew.dev Workloads) selects.
const (
	KindPod      = "Pod"
	KindWorkload = "Workload"
)

// Workload is one process (local mode) or pod (Kubernetes) that serves traffic.
type Workload struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Kind is KindPod or KindWorkload (local mode's processes); "" selects as neither.
	Kind           string            `json:"kind,omitempty"`
	Labels         map[string]string `json:"labels,omitempty"`
	ServiceAccount string            `json:"serviceAccount"`
	Address        netip.Addr        `json:"address"`
	// MeshPort is the workload proxy's inbound mTLS port; zero means the workload is not meshed.
	MeshPort uint16         `json:"meshPort,omitempty"`
	Ports    []WorkloadPort `json:"ports,omitempty"`
	// OpaquePorts are further ports (declared or not) whose traffic is opaque, e.g. from an annotation.
	OpaquePorts []PortRange `json:"opaquePorts,omitempty"`
	// UndeclaredPorts says the workload may listen on ports it does not declare (a Kubernetes pod's container
	// ports are informational), so an ip:port lookup accepts any port of its address.
	UndeclaredPorts bool `json:"undeclaredPorts,omitempty"`
	// ProxyPorts are the proxy's own ports (mesh, admin, tap) at the workload's address: never application ports.
	ProxyPorts []uint16 `json:"proxyPorts,omitempty"`
	// DefaultInboundPolicy is the inbound policy of its ports that no Server selects, from its own or its
	// namespace's annotation; "" means the control plane's default.
	DefaultInboundPolicy string `json:"defaultInboundPolicy,omitempty"`
	// Probes are the HTTP probes (kubelet liveness, readiness, startup) that reach the workload's ports.
	Probes []Probe `json:"probes,omitempty"`
	// MTLSModes are its ports' mTLS modes from its config.sinew.dev/mtls-mode annotation; a Server's mtlsMode
	// wins for its port (policy/authz.MTLSMode resolves both).
	MTLSModes authzapi.PortMTLSModes `json:"mtlsModes,omitzero"`
	// ExplicitInbound says that the proxy is reached only at MeshPort, without transparent capture (local mode):
	// a plaintext client connecting there reaches the first declared port, and the other ports take only mTLS.
	// Otherwise (a pod) a plaintext connection to any port is captured by the proxy.
	ExplicitInbound bool `json:"explicitInbound,omitempty"`
}

// PlaintextPort is where a client dials, at the workload's address, to reach port p of the meshed workload in
// plaintext through its proxy: p itself on a pod (the proxy captures it); on an ExplicitInbound workload MeshPort,
// and only for its first declared port (false for the others).
func (w *Workload) PlaintextPort(p uint16) (uint16, bool) {
	if !w.ExplicitInbound {
		return p, true
	}
	if len(w.Ports) == 0 || w.Ports[0].Port != p || w.MeshPort == 0 {
		return 0, false
	}
	return w.MeshPort, true
}

// Probe is an HTTP GET probe of one port of a workload.
type Probe struct {
	Port uint16 `json:"port"`
	Path string `json:"path"`
}

// PortRange is an inclusive range of ports; a single port has First == Last.
type PortRange struct {
	First uint16 `json:"first"`
	Last  uint16 `json:"last"`
}

// Contains reports whether p is in the range.
func (r PortRange) Contains(p uint16) bool { return r.First <= p && p <= r.Last }

// InRanges reports whether p is in any of the ranges.
func InRanges(ranges []PortRange, p uint16) bool {
	for _, r := range ranges {
		if r.Contains(p) {
			return true
		}
	}
	return false
}

// WorkloadPort is a port the workload's application listens on.
type WorkloadPort struct {
	Name     string   `json:"name,omitempty"`
	Port     uint16   `json:"port"`
	Protocol Protocol `json:"protocol"`
}

// Key is "namespace/name".
func (w *Workload) Key() string { return w.Namespace + "/" + w.Name }

// Meshed reports whether a proxy runs beside the workload.
func (w *Workload) Meshed() bool { return w.MeshPort != 0 }

// PortByNumber returns the declared port with that number.
func (w *Workload) PortByNumber(p uint16) (WorkloadPort, bool) {
	for _, wp := range w.Ports {
		if wp.Port == p {
			return wp, true
		}
	}
	return WorkloadPort{}, false
}

// Opaque reports whether traffic to port p of the workload is opaque: a declared opaque port, or one of
// OpaquePorts.
func (w *Workload) Opaque(p uint16) bool {
	if wp, ok := w.PortByNumber(p); ok && wp.Protocol == ProtocolOpaque {
		return true
	}
	return InRanges(w.OpaquePorts, p)
}

// PortByName returns the declared port with that name.
func (w *Workload) PortByName(name string) (WorkloadPort, bool) {
	for _, wp := range w.Ports {
		if wp.Name != "" && wp.Name == name {
			return wp, true
		}
	}
	return WorkloadPort{}, false
}

// Service is a named, load-balanced set of workloads: selected by labels (local mode), or listed explicitly
// (Kubernetes, where EndpointSlices say which pods are ready endpoints).
type Service struct {
	Namespace string            `json:"namespace"`
	Name      string            `json:"name"`
	Selector  map[string]string `json:"selector,omitempty"`
	Ports     []ServicePort     `json:"ports"`
	// ClusterIPs are virtual addresses that resolve like the service's name (a transparently captured
	// connection to one reaches the proxy as that ip:port).
	ClusterIPs []netip.Addr `json:"clusterIPs,omitempty"`
	// ExplicitEndpoints: the endpoints are Endpoints, and Selector is not evaluated.
	ExplicitEndpoints bool              `json:"explicit,omitempty"`
	Endpoints         []ServiceEndpoint `json:"explicitEndpoints,omitempty"`
	// Outbound is what the service asks of its clients' proxies (from its annotations): retries, timeouts and
	// failure accrual for every request to it.
	Outbound OutboundDefaults `json:"outbound,omitzero"`
}

// OutboundDefaults are a service's defaults for the requests its clients send it. A zero field is not configured:
// no retries, no timeout, no failure accrual.
type OutboundDefaults struct {
	Retry *Retry `json:"retry,omitempty"`
	// RequestTimeout bounds the whole request, retries included, until the response headers arrive.
	RequestTimeout Duration `json:"requestTimeout,omitzero"`
	// ResponseTimeout bounds each attempt at a backend until its response headers arrive.
	ResponseTimeout Duration `json:"responseTimeout,omitzero"`
	// IdleTimeout bounds how long a stream may go without a frame.
	IdleTimeout    Duration        `json:"idleTimeout,omitzero"`
	FailureAccrual *FailureAccrual `json:"failureAccrual,omitempty"`
}

// Retry says which failed attempts are retried, and how often.
type Retry struct {
	// Limit is the number of retries after the first attempt.
	Limit uint32 `json:"limit"`
	// HTTPStatuses are the statuses to retry, as inclusive ranges.
	HTTPStatuses []StatusRange `json:"httpStatuses,omitempty"`
	// GRPCCodes are the gRPC status codes to retry, by number (1 cancelled, 4 deadline-exceeded, …).
	GRPCCodes []uint32 `json:"grpcCodes,omitempty"`
	// PerTryTimeout cancels and retries an attempt that takes longer; zero: no per-attempt limit.
	PerTryTimeout Duration `json:"perTryTimeout,omitzero"`
}

// StatusRange is an inclusive range of HTTP statuses.
type StatusRange struct {
	First uint16 `json:"first"`
	Last  uint16 `json:"last"`
}

// FailureAccrual takes an endpoint out of balancing after ConsecutiveFailures failures in a row, for a penalty
// from MinPenalty doubling up to MaxPenalty, each varied at random by up to JitterRatio of itself.
type FailureAccrual struct {
	ConsecutiveFailures uint32   `json:"consecutiveFailures"`
	MinPenalty          Duration `json:"minPenalty"`
	MaxPenalty          Duration `json:"maxPenalty"`
	JitterRatio         float64  `json:"jitterRatio"`
}

// Duration is a time.Duration that /debug/model shows as text ("1m30s") rather than nanoseconds.
type Duration time.Duration

// MarshalText renders the duration as time.Duration does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// ServiceEndpoint is one explicit endpoint of a service port.
type ServiceEndpoint struct {
	// PortName is the name of the service port it backs ("" for the unnamed port of a single-port service).
	PortName string     `json:"portName,omitempty"`
	Address  netip.Addr `json:"address"`
	// Port is the resolved target port on Address.
	Port uint16 `json:"port"`
	// Workload names the workload behind the address, in the service's namespace; "" for an address that is no
	// workload (an external endpoint), which is then never meshed. An endpoint naming a workload the model does
	// not know (yet) is left out.
	Workload string `json:"workload,omitempty"`
	Zone     string `json:"zone,omitempty"`
}

// Key is "namespace/name".
func (s *Service) Key() string { return s.Namespace + "/" + s.Name }

// Port returns the service port with that number.
func (s *Service) Port(p uint16) (ServicePort, bool) {
	for _, sp := range s.Ports {
		if sp.Port == p {
			return sp, true
		}
	}
	return ServicePort{}, false
}

// Selects reports whether the service's selector matches the workload. An empty selector selects nothing, as in
// Kubernetes, where such services get their endpoints by other means.
func (s *Service) Selects(w *Workload) bool {
	if len(s.Selector) == 0 || w.Namespace != s.Namespace {
		return false
	}
	for k, v := range s.Selector {
		if got, ok := w.Labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// ServicePort maps a service port to a workload port.
type ServicePort struct {
	Name        string     `json:"name,omitempty"`
	Port        uint16     `json:"port"`
	TargetPort  TargetPort `json:"targetPort"`
	AppProtocol Protocol   `json:"appProtocol,omitempty"`
}

// TargetPort is a workload port number or a workload port name; exactly one is set.
type TargetPort struct {
	Number uint16
	Name   string
}

func (t TargetPort) String() string {
	if t.Name != "" {
		return t.Name
	}
	return strconv.Itoa(int(t.Number))
}

// MarshalText renders the port for debug output.
func (t TargetPort) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// SourceError is a problem a source found in its input (a file that does not parse, say). The source keeps the
// last good resources of that input, so the error does not remove anything from the model.
type SourceError struct {
	Source  string `json:"source"`
	Message string `json:"message"`
}

// ServiceAccount is an identity workloads may run as. Sources that know them (Kubernetes) list them so that
// policies naming service accounts can be checked; an empty list means the source does not track them.
type ServiceAccount struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// Resources is the complete set of resources a source currently knows, plus the problems it has with its inputs.
type Resources struct {
	Services        []*Service
	Workloads       []*Workload
	ServiceAccounts []ServiceAccount
	// Policies are the inbound authorization objects (Server, ServerAuthorization, …), validated.
	Policies authzapi.Policies
	// HTTPRoutes are the Gateway API HTTPRoutes, validated, in any order.
	HTTPRoutes []*routesapi.HTTPRoute
	// GRPCRoutes are the Gateway API GRPCRoutes, validated, in any order.
	GRPCRoutes []*routesapi.GRPCRoute
	// GatewayResources are the ingress gateway's objects: Gateways, GatewayClasses, ReferenceGrants, TLS
	// Secrets and Namespaces.
	GatewayResources
	Errors []SourceError
	// Files (local mode) maps each resource file's name to the SHA-256 (hex) of the content the source last read,
	// whether it loaded or was refused, so that a tool that writes a file can tell when the model has read it.
	Files map[string]string
}

// Sink receives a source's complete resource set every time it changes.
type Sink interface {
	Update(Resources)
}

// Source feeds the model. Run publishes the current resources to sink, then every change, until ctx is done.
type Source interface {
	Run(ctx context.Context, sink Sink) error
}

// SPIFFEID is the identity of a service account: spiffe://<trust-domain>/ns/<ns>/sa/<sa>.
func SPIFFEID(trustDomain, namespace, serviceAccount string) string {
	return "spiffe://" + trustDomain + "/ns/" + namespace + "/sa/" + serviceAccount
}

// Endpoint is one workload port that backs a service port (or an ip:port).
type Endpoint struct {
	// Workload is nil for an explicit endpoint that is only an address.
	Workload *Workload
	Address  netip.Addr
	// Port is the application port on the workload (the resolved targetPort).
	Port uint16
	// Opaque is set when the service port or the workload port is opaque.
	Opaque bool
	// Zone is the endpoint's topology zone when the source knows it.
	Zone string
}

// Key names the endpoint for humans: "namespace/workload:port", or "address:port" without a workload.
func (e Endpoint) Key() string {
	if e.Workload != nil {
		return e.Workload.Key() + ":" + itoa(e.Port)
	}
	return netip.AddrPortFrom(e.Address, e.Port).String()
}

// Snapshot is an immutable view of the model. Never modify what it returns.
type Snapshot struct {
	version   uint64
	services  map[string]*Service
	workloads map[string]*Workload
	// workloadList is sorted by key, for deterministic choices.
	workloadList    []*Workload
	clusterIPs      map[netip.Addr]*Service
	serviceAccounts map[ServiceAccount]struct{}
	policies        authzapi.Policies
	// httpRoutes are sorted oldest first, then by namespace/name: the order in which Gateway API breaks ties
	// between routes.
	httpRoutes []*routesapi.HTTPRoute
	grpcRoutes []*routesapi.GRPCRoute
	// routes are both kinds, in the same order (routesapi.Older).
	routes []*routesapi.Route
	// serverMTLSModes: some Server sets spec.mtlsMode (else the workloads' annotations alone decide).
	serverMTLSModes bool
	// gw indexes the ingress gateway's objects (gateway.go).
	gw     gatewayIndex
	errors []SourceError
	files  map[string]string
}

func newSnapshot(version uint64, r Resources) *Snapshot {
	s := &Snapshot{
		version:         version,
		services:        make(map[string]*Service, len(r.Services)),
		workloads:       make(map[string]*Workload, len(r.Workloads)),
		clusterIPs:      map[netip.Addr]*Service{},
		serviceAccounts: make(map[ServiceAccount]struct{}, len(r.ServiceAccounts)),
		policies:        r.Policies,
		errors:          slices.Clone(r.Errors),
		files:           maps.Clone(r.Files),
		httpRoutes:      slices.Clone(r.HTTPRoutes),
		grpcRoutes:      slices.Clone(r.GRPCRoutes),
		gw:              newGatewayIndex(r.GatewayResources),
	}
	slices.SortFunc(s.httpRoutes, func(a, b *routesapi.HTTPRoute) int {
		return olderRoute(&a.ObjectMeta, &b.ObjectMeta)
	})
	slices.SortFunc(s.grpcRoutes, func(a, b *routesapi.GRPCRoute) int {
		return olderRoute(&a.ObjectMeta, &b.ObjectMeta)
	})
	s.routes = make([]*routesapi.Route, 0, len(s.httpRoutes)+len(s.grpcRoutes))
	for _, rt := range s.httpRoutes {
		s.routes = append(s.routes, routesapi.FromHTTP(rt))
	}
	for _, rt := range s.grpcRoutes {
		s.routes = append(s.routes, routesapi.FromGRPC(rt))
	}
	slices.SortStableFunc(s.routes, routesapi.Older)
	for _, svc := range r.Services {
		s.services[svc.Key()] = svc
	}
	// Sources should not give two services one ClusterIP; if one does, the first by key keeps it, so the
	// answer does not depend on map order.
	keys := make([]string, 0, len(s.services))
	for k := range s.services {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, ip := range s.services[k].ClusterIPs {
			if _, taken := s.clusterIPs[ip.Unmap()]; !taken {
				s.clusterIPs[ip.Unmap()] = s.services[k]
			}
		}
	}
	for _, sa := range r.ServiceAccounts {
		s.serviceAccounts[sa] = struct{}{}
	}
	for _, srv := range r.Policies.Servers {
		s.serverMTLSModes = s.serverMTLSModes || srv.Spec.MTLSMode != ""
	}
	for _, w := range r.Workloads {
		s.workloads[w.Key()] = w
	}
	for _, w := range s.workloads {
		s.workloadList = append(s.workloadList, w)
	}
	slices.SortFunc(s.workloadList, func(a, b *Workload) int { return strings.Compare(a.Key(), b.Key()) })
	return s
}

// Version increases with every update of the store.
func (s *Snapshot) Version() uint64 { return s.version }

// Service looks a service up by namespace and name.
func (s *Snapshot) Service(namespace, name string) (*Service, bool) {
	svc, ok := s.services[namespace+"/"+name]
	return svc, ok
}

// Workload looks a workload up by namespace and name.
func (s *Snapshot) Workload(namespace, name string) (*Workload, bool) {
	w, ok := s.workloads[namespace+"/"+name]
	return w, ok
}

// ServiceByClusterIP looks a service up by one of its ClusterIPs.
func (s *Snapshot) ServiceByClusterIP(addr netip.Addr) (*Service, bool) {
	svc, ok := s.clusterIPs[addr.Unmap()]
	return svc, ok
}

// ServiceAccount reports whether the source knows the service account (always false for sources that do not
// track service accounts).
func (s *Snapshot) ServiceAccount(namespace, name string) bool {
	_, ok := s.serviceAccounts[ServiceAccount{Namespace: namespace, Name: name}]
	return ok
}

// Policies returns the inbound authorization objects. Never modify them.
func (s *Snapshot) Policies() *authzapi.Policies { return &s.policies }

// HTTPRoutes returns every HTTPRoute, oldest first, then by namespace/name. Never modify them.
func (s *Snapshot) HTTPRoutes() []*routesapi.HTTPRoute { return s.httpRoutes }

// GRPCRoutes returns every GRPCRoute, oldest first, then by namespace/name. Never modify them.
func (s *Snapshot) GRPCRoutes() []*routesapi.GRPCRoute { return s.grpcRoutes }

// Routes returns every route of both kinds as the translations read them, oldest first, then by
// namespace/name (routesapi.Older). Never modify them.
func (s *Snapshot) Routes() []*routesapi.Route { return s.routes }

// olderRoute orders routes oldest first, then by namespace/name: the order in which Gateway API breaks ties.
func olderRoute(a, b *metav1.ObjectMeta) int {
	if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
		return c
	}
	return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
}

// HasServerMTLSModes reports whether any Server sets spec.mtlsMode, so that callers resolving a port's mTLS mode
// can skip looking for its Server otherwise.
func (s *Snapshot) HasServerMTLSModes() bool { return s.serverMTLSModes }

// Workloads returns every workload, sorted by namespace/name. Never modify them.
func (s *Snapshot) Workloads() []*Workload { return s.workloadList }

// Errors returns the sources' current problems.
func (s *Snapshot) Errors() []SourceError { return s.errors }

// Endpoints resolves a service port into the workload ports behind it, sorted by workload key (explicit
// endpoints: by key, then address). A numeric targetPort selects every matching workload (as in Kubernetes); a
// named one only workloads that declare it.
func (s *Snapshot) Endpoints(svc *Service, sp ServicePort) []Endpoint {
	if svc.ExplicitEndpoints {
		return s.explicitEndpoints(svc, sp)
	}
	var eps []Endpoint
	for _, w := range s.workloadList {
		if !svc.Selects(w) {
			continue
		}
		var (
			port   uint16
			opaque = sp.AppProtocol == ProtocolOpaque
		)
		if sp.TargetPort.Name != "" {
			wp, ok := w.PortByName(sp.TargetPort.Name)
			if !ok {
				continue
			}
			port = wp.Port
		} else {
			port = sp.TargetPort.Number
		}
		opaque = opaque || w.Opaque(port)
		eps = append(eps, Endpoint{Workload: w, Address: w.Address, Port: port, Opaque: opaque})
	}
	return eps
}

func (s *Snapshot) explicitEndpoints(svc *Service, sp ServicePort) []Endpoint {
	var eps []Endpoint
	for _, se := range svc.Endpoints {
		if se.PortName != sp.Name || se.Port == 0 || !se.Address.IsValid() {
			continue
		}
		ep := Endpoint{Address: se.Address, Port: se.Port, Opaque: sp.AppProtocol == ProtocolOpaque, Zone: se.Zone}
		if se.Workload != "" {
			w, ok := s.workloads[svc.Namespace+"/"+se.Workload]
			if !ok {
				continue // not known yet; the endpoint appears when the workload does
			}
			ep.Workload = w
			ep.Opaque = ep.Opaque || w.Opaque(se.Port)
		}
		eps = append(eps, ep)
	}
	slices.SortFunc(eps, func(a, b Endpoint) int {
		if c := strings.Compare(a.Key(), b.Key()); c != 0 {
			return c
		}
		return a.Address.Compare(b.Address)
	})
	return eps
}

// WorkloadAt finds the workload that listens on addr:port: one that declares the port, else one with
// UndeclaredPorts at that address. When several qualify, the first by namespace/name wins, so the answer is
// stable.
func (s *Snapshot) WorkloadAt(addr netip.Addr, port uint16) (Endpoint, bool) {
	addr = addr.Unmap()
	var fallback *Workload
	for _, w := range s.workloadList {
		if w.Address.Unmap() != addr {
			continue
		}
		if _, ok := w.PortByNumber(port); ok {
			return Endpoint{Workload: w, Address: w.Address, Port: port, Opaque: w.Opaque(port)}, true
		}
		if w.UndeclaredPorts && fallback == nil && port != w.MeshPort && !slices.Contains(w.ProxyPorts, port) {
			fallback = w
		}
	}
	if fallback != nil {
		return Endpoint{Workload: fallback, Address: fallback.Address, Port: port, Opaque: fallback.Opaque(port)}, true
	}
	return Endpoint{}, false
}
