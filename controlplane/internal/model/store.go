package model

import (
	"slices"
	"strings"
	"sync"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	authzapi "github.com/sinewmesh/sinew/controlplane/internal/policy/authz/api"
	routesapi "github.com/sinewmesh/sinew/controlplane/internal/policy/routes/api"
)

// Store holds the current snapshot and tells subscribers when it changes. It is the Sink sources write to.
type Store struct {
	mu   sync.Mutex
	snap *Snapshot
	subs map[chan struct{}]struct{}
}

var _ Sink = (*Store)(nil)

// NewStore returns an empty store.
func NewStore() *Store {
	return &Store{snap: newSnapshot(0, Resources{}), subs: make(map[chan struct{}]struct{})}
}

// Snapshot returns the current snapshot.
func (s *Store) Snapshot() *Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snap
}

// Update replaces the model with r and notifies subscribers. It never blocks on them.
func (s *Store) Update(r Resources) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.snap = newSnapshot(s.snap.version+1, r)
	for ch := range s.subs {
		select {
		case ch <- struct{}{}:
		default: // a notification is already pending; the subscriber will read the newest snapshot
		}
	}
}

// Subscribe returns a channel that receives a value after each update (bursts coalesce into one pending value)
// and a function that ends the subscription.
func (s *Store) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	s.subs[ch] = struct{}{}
	s.mu.Unlock()
	return ch, func() {
		s.mu.Lock()
		delete(s.subs, ch)
		s.mu.Unlock()
	}
}

// DebugView is the JSON shape of /debug/model.
type DebugView struct {
	Version   uint64         `json:"version"`
	Services  []DebugService `json:"services"`
	Workloads []*Workload    `json:"workloads"`
	// ServiceAccounts is omitted for sources that do not track them.
	ServiceAccounts []ServiceAccount `json:"serviceAccounts,omitempty"`
	// Policies are the inbound authorization objects as the sources decoded them; omitted when there are none.
	Policies *authzapi.Policies `json:"policies,omitempty"`
	// HTTPRoutes are the Gateway API HTTPRoutes as the sources decoded them; omitted when there are none.
	HTTPRoutes []*routesapi.HTTPRoute `json:"httpRoutes,omitempty"`
	// GRPCRoutes are the Gateway API GRPCRoutes as the sources decoded them; omitted when there are none.
	GRPCRoutes []*routesapi.GRPCRoute `json:"grpcRoutes,omitempty"`
	// Gateways, GatewayClasses and ReferenceGrants are the Gateway API objects as the sources decoded them;
	// omitted when there are none.
	Gateways        []*gatewayv1.Gateway             `json:"gateways,omitempty"`
	GatewayClasses  []*gatewayv1.GatewayClass        `json:"gatewayClasses,omitempty"`
	ReferenceGrants []*gatewayv1beta1.ReferenceGrant `json:"referenceGrants,omitempty"`
	// TLSSecrets names the TLS Secrets the model holds ("namespace/name"): never their data.
	TLSSecrets []string `json:"tlsSecrets,omitempty"`
	// Namespaces are the namespaces the source lists, with their labels.
	Namespaces []*Namespace `json:"namespaces,omitempty"`
	// PolicyProblems are what the translation of Policies and routes ignores or cannot honour (overlapping
	// Servers, references to missing objects, kinds and filters not supported yet); the owner of the translation
	// fills them in.
	PolicyProblems []string      `json:"policyProblems,omitempty"`
	Errors         []SourceError `json:"errors"`
	// Files (local mode): each resource file's content digest as last read; see Resources.Files.
	Files map[string]string `json:"files,omitempty"`
}

// DebugService is a service with its resolved endpoints per port.
type DebugService struct {
	*Service
	Endpoints map[string][]string `json:"endpoints"`
}

// Debug renders the snapshot for humans and tools.
func (s *Snapshot) Debug() DebugView {
	v := DebugView{Version: s.version, Workloads: slices.Clone(s.workloadList), Errors: s.errors, Files: s.files}
	if s.policies.Len() > 0 {
		v.Policies = &s.policies
	}
	v.HTTPRoutes = s.httpRoutes
	v.GRPCRoutes = s.grpcRoutes
	v.Gateways, v.GatewayClasses, v.ReferenceGrants = s.gw.gateways, s.gw.classList, s.gw.referenceGrants
	v.Namespaces = s.gw.namespaceList
	for _, sec := range s.gw.secretList {
		v.TLSSecrets = append(v.TLSSecrets, sec.Key())
	}
	if v.Workloads == nil {
		v.Workloads = []*Workload{}
	}
	if v.Errors == nil {
		v.Errors = []SourceError{}
	}
	for sa := range s.serviceAccounts {
		v.ServiceAccounts = append(v.ServiceAccounts, sa)
	}
	slices.SortFunc(v.ServiceAccounts, func(a, b ServiceAccount) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	v.Services = []DebugService{}
	for _, svc := range s.services {
		ds := DebugService{Service: svc, Endpoints: map[string][]string{}}
		for _, sp := range svc.Ports {
			eps := []string{}
			for _, ep := range s.Endpoints(svc, sp) {
				eps = append(eps, ep.Key())
			}
			ds.Endpoints[itoa(sp.Port)] = eps
		}
		v.Services = append(v.Services, ds)
	}
	slices.SortFunc(v.Services, func(a, b DebugService) int { return strings.Compare(a.Key(), b.Key()) })
	return v
}

func itoa(p uint16) string { return TargetPort{Number: p}.String() }
