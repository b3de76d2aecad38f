// Package model is the control plane's single, mode-blind view of the mesh: services, workloads and the endpoints
// they produce. Sources (local YAML files today, Kubernetes informers later) feed it whole resource sets; the
// identity, destination and policy servers read immutable snapshots of it. It must not know where resources came
// from, nor anything about gRPC or proxies.
package model

import (
	"context"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Protocol is how a port's traffic is treated.
type Protocol string

const (
	// ProtocolHTTP lets the proxies detect and upgrade HTTP (the default).
	ProtocolHTTP Protocol = "http"
	// ProtocolOpaque makes the proxies carry bytes without protocol detection.
	ProtocolOpaque Protocol = "opaque"
)

// Workload is one process (local mode) or pod (Kubernetes) that serves traffic.
type Workload struct {
	Namespace      string            `json:"namespace"`
	Name           string            `json:"name"`
	Labels         map[string]string `json:"labels,omitempty"`
	ServiceAccount string            `json:"serviceAccount"`
	Address        netip.Addr        `json:"address"`
	// MeshPort is the workload proxy's inbound mTLS port; zero means the workload is not meshed.
	MeshPort uint16         `json:"meshPort,omitempty"`
	Ports    []WorkloadPort `json:"ports,omitempty"`
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

// PortByName returns the declared port with that name.
func (w *Workload) PortByName(name string) (WorkloadPort, bool) {
	for _, wp := range w.Ports {
		if wp.Name != "" && wp.Name == name {
			return wp, true
		}
	}
	return WorkloadPort{}, false
}

// Service is a named, load-balanced set of workloads selected by labels.
type Service struct {
	Namespace string            `json:"namespace"`
	Name      string            `json:"name"`
	Selector  map[string]string `json:"selector,omitempty"`
	Ports     []ServicePort     `json:"ports"`
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

// Resources is the complete set of resources a source currently knows, plus the problems it has with its inputs.
type Resources struct {
	Services  []*Service
	Workloads []*Workload
	Errors    []SourceError
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
	Workload *Workload
	// Port is the application port on the workload (the resolved targetPort).
	Port uint16
	// Opaque is set when the service port or the workload port is opaque.
	Opaque bool
}

// Snapshot is an immutable view of the model. Never modify what it returns.
type Snapshot struct {
	version   uint64
	services  map[string]*Service
	workloads map[string]*Workload
	// workloadList is sorted by key, for deterministic choices.
	workloadList []*Workload
	errors       []SourceError
}

func newSnapshot(version uint64, r Resources) *Snapshot {
	s := &Snapshot{
		version:   version,
		services:  make(map[string]*Service, len(r.Services)),
		workloads: make(map[string]*Workload, len(r.Workloads)),
		errors:    slices.Clone(r.Errors),
	}
	for _, svc := range r.Services {
		s.services[svc.Key()] = svc
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

// Errors returns the sources' current problems.
func (s *Snapshot) Errors() []SourceError { return s.errors }

// Endpoints resolves a service port into the workload ports behind it, sorted by workload key. A numeric
// targetPort selects every matching workload (as in Kubernetes); a named one only workloads that declare it.
func (s *Snapshot) Endpoints(svc *Service, sp ServicePort) []Endpoint {
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
			opaque = opaque || wp.Protocol == ProtocolOpaque
		} else {
			port = sp.TargetPort.Number
			if wp, ok := w.PortByNumber(port); ok {
				opaque = opaque || wp.Protocol == ProtocolOpaque
			}
		}
		eps = append(eps, Endpoint{Workload: w, Port: port, Opaque: opaque})
	}
	return eps
}

// WorkloadAt finds the workload that listens on addr:port (a declared port). When several do, the first by
// namespace/name wins, so the answer is stable.
func (s *Snapshot) WorkloadAt(addr netip.Addr, port uint16) (Endpoint, bool) {
	addr = addr.Unmap()
	for _, w := range s.workloadList {
		if w.Address.Unmap() != addr {
			continue
		}
		if wp, ok := w.PortByNumber(port); ok {
			return Endpoint{Workload: w, Port: port, Opaque: wp.Protocol == ProtocolOpaque}, true
		}
	}
	return Endpoint{}, false
}
