// Package destination serves Destination.Get: it resolves an authority or ip:port against the model into endpoint
// sets and streams deltas to each subscriber. Translation (model in, updates out) is pure; the server only
// subscribes, computes and enqueues. It must not block the model on a slow proxy.
package destination

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	destinationv1 "github.com/sinewmesh/sinew/api/destination/v1"
	"github.com/sinewmesh/sinew/controlplane/internal/model"
	"github.com/sinewmesh/sinew/controlplane/internal/policy/authz"
	authzapi "github.com/sinewmesh/sinew/controlplane/internal/policy/authz/api"
	"github.com/sinewmesh/sinew/internal/names"
)

// Weight is every endpoint's weight; balancing happens in the proxy.
const Weight = 10000

// Target is a parsed Get path.
type Target struct {
	// Addr is set for ip:port targets.
	Addr netip.Addr
	// Namespace and Service are set for service authorities; both empty for names that cannot be a service.
	Namespace, Service string
	Port               uint16
}

// ParseTarget reads "host:port". A host that is not an IP nor a service name of our cluster domain yields a
// Target that resolves to nothing, rather than an error: it may be an external name the proxy passes through.
func ParseTarget(path, clusterDomain string) (Target, error) {
	host, portStr, err := net.SplitHostPort(path)
	if err != nil {
		return Target{}, fmt.Errorf("path %q: want host:port: %w", path, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		return Target{}, fmt.Errorf("path %q: port must be 1-65535", path)
	}
	t := Target{Port: uint16(port)}
	if a, err := netip.ParseAddr(host); err == nil {
		t.Addr = a.Unmap()
		return t, nil
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	parts := strings.Split(host, ".")
	switch {
	case len(parts) == 2:
	case len(parts) == 3 && parts[2] == "svc":
	case len(parts) > 3 && parts[2] == "svc" && strings.Join(parts[3:], ".") == strings.TrimSuffix(strings.ToLower(clusterDomain), "."):
	default:
		return t, nil
	}
	if parts[0] != "" && parts[1] != "" {
		t.Service, t.Namespace = parts[0], parts[1]
	}
	return t, nil
}

// Resolution is what a target resolves to at one point in time.
type Resolution struct {
	// Exists is false when the target is unknown (the proxy falls back to the original destination).
	Exists bool
	// Endpoints by address.
	Endpoints map[string]*destinationv1.WeightedAddr
	SetLabels map[string]string
}

// ServiceOf finds the service a target names: by its name, or by one of its ClusterIPs (transparent capture hands
// the proxy the address the app dialled, so a ClusterIP resolves like its name). isService reports that the target
// is a service's name or ClusterIP at all; ok that the service is known and declares the port.
func ServiceOf(snap *model.Snapshot, t Target) (svc *model.Service, sp model.ServicePort, isService, ok bool) {
	switch {
	case t.Addr.IsValid():
		svc, isService = snap.ServiceByClusterIP(t.Addr)
	case t.Service != "":
		isService = true
		svc, ok = snap.Service(t.Namespace, t.Service)
		if !ok {
			return nil, model.ServicePort{}, true, false
		}
	}
	if svc == nil {
		return nil, model.ServicePort{}, isService, false
	}
	// Not a port of the service: as unknown as an unknown name.
	sp, ok = svc.Port(t.Port)
	return svc, sp, true, ok
}

// Resolve computes the target's endpoints in snap. trustDomain names the endpoints' identities.
func Resolve(snap *model.Snapshot, t Target, trustDomain string) Resolution {
	r := Resolution{Endpoints: map[string]*destinationv1.WeightedAddr{}}
	svc, sp, isService, ok := ServiceOf(snap, t)
	switch {
	case isService && ok:
		return resolveService(snap, svc, sp, trustDomain)
	case isService || !t.Addr.IsValid():
		return r
	}
	ep, ok := snap.WorkloadAt(t.Addr, t.Port)
	if !ok {
		return r
	}
	r.Exists = true
	r.SetLabels = map[string]string{"namespace": ep.Workload.Namespace}
	wa := weightedAddr(snap, ep, trustDomain)
	r.Endpoints[wa.Addr] = wa
	return r
}

func resolveService(snap *model.Snapshot, svc *model.Service, sp model.ServicePort, trustDomain string) Resolution {
	r := Resolution{Endpoints: map[string]*destinationv1.WeightedAddr{}}
	r.Exists = true
	r.SetLabels = map[string]string{"namespace": svc.Namespace, "service": svc.Name}
	for _, ep := range snap.Endpoints(svc, sp) {
		wa := weightedAddr(snap, ep, trustDomain)
		if _, dup := r.Endpoints[wa.Addr]; !dup { // endpoints come sorted; the first claim to an address wins
			r.Endpoints[wa.Addr] = wa
		}
	}
	return r
}

// NoTLSDisabled is the no_tls_reason of a meshed endpoint reached in plaintext because its port's mTLS mode is
// DISABLE; the client proxy reports it as its tls label, and viz edges shows it.
const NoTLSDisabled = "disabled"

// weightedAddr is how a client reaches one endpoint. A meshed workload's port is reached with mTLS at the proxy's
// mesh port, unless its mTLS mode is DISABLE and the proxy takes plaintext for that port: then in plaintext, with
// no identity and no_tls_reason "disabled". A STRICT or PERMISSIVE port is always mTLS: there is no path from
// STRICT to a plaintext endpoint (TestStrictNeverPlaintext).
func weightedAddr(snap *model.Snapshot, ep model.Endpoint, trustDomain string) *destinationv1.WeightedAddr {
	w := ep.Workload
	if w == nil {
		// An address without a workload (an external endpoint of a Kubernetes service): plain, no identity.
		wa := &destinationv1.WeightedAddr{Addr: netip.AddrPortFrom(ep.Address, ep.Port).String(), Weight: Weight, Zone: ep.Zone}
		if ep.Zone != "" {
			wa.MetricLabels = map[string]string{"zone": ep.Zone}
		}
		return wa
	}
	labels := map[string]string{
		"pod":            w.Name,
		"serviceaccount": w.ServiceAccount,
		"deployment":     w.Name,
	}
	if d := w.Labels[names.DeploymentLabel]; d != "" {
		labels["deployment"] = d
	} else if app := w.Labels["app"]; app != "" {
		labels["deployment"] = app
	}
	zone := ep.Zone
	if zone == "" {
		zone = w.Labels["topology.kubernetes.io/zone"]
	}
	if zone == "" {
		zone = w.Labels["zone"]
	}
	if zone != "" {
		labels["zone"] = zone
	}
	addr := ep.Address
	if !addr.IsValid() {
		addr = w.Address
	}
	wa := &destinationv1.WeightedAddr{Weight: Weight, MetricLabels: labels, Zone: zone}
	if !w.Meshed() {
		wa.Addr = netip.AddrPortFrom(addr, ep.Port).String()
		return wa
	}
	if authz.MTLSMode(snap, w, ep.Port) == authzapi.MTLSDisable {
		if port, ok := w.PlaintextPort(ep.Port); ok {
			wa.Addr = netip.AddrPortFrom(addr, port).String()
			wa.NoTlsReason = NoTLSDisabled
			if ep.Opaque {
				wa.ProtocolHint = &destinationv1.ProtocolHint{Protocol: &destinationv1.ProtocolHint_Opaque_{Opaque: &destinationv1.ProtocolHint_Opaque{}}}
			}
			return wa
		}
		// A port its proxy cannot take in plaintext (authz.Problems reports it): mTLS as usual.
	}
	wa.Addr = netip.AddrPortFrom(addr, w.MeshPort).String()
	wa.TargetPort = uint32(ep.Port)
	wa.TlsIdentity = &destinationv1.TlsIdentity{SpiffeId: model.SPIFFEID(trustDomain, w.Namespace, w.ServiceAccount)}
	if ep.Opaque {
		wa.ProtocolHint = &destinationv1.ProtocolHint{Protocol: &destinationv1.ProtocolHint_Opaque_{Opaque: &destinationv1.ProtocolHint_Opaque{}}}
	} else {
		wa.ProtocolHint = &destinationv1.ProtocolHint{Protocol: &destinationv1.ProtocolHint_H2_{H2: &destinationv1.ProtocolHint_H2{}}}
	}
	return wa
}

// Initial is the first message(s) of a stream: the full set, or NoEndpoints.
func Initial(r Resolution) []*destinationv1.Update {
	if len(r.Endpoints) == 0 {
		return []*destinationv1.Update{noEndpoints(r.Exists)}
	}
	return []*destinationv1.Update{add(r, sortedAddrs(r.Endpoints))}
}

// Diff is what turns a subscriber that saw prev into one that sees next: Remove for vanished addresses, Add for
// new or changed ones, and NoEndpoints when the set becomes empty or the target's existence changes while empty.
func Diff(prev, next Resolution) []*destinationv1.Update {
	var ups []*destinationv1.Update
	var removed []string
	for a := range prev.Endpoints {
		if _, ok := next.Endpoints[a]; !ok {
			removed = append(removed, a)
		}
	}
	if len(removed) > 0 {
		slices.Sort(removed)
		ups = append(ups, &destinationv1.Update{Update: &destinationv1.Update_Remove{Remove: &destinationv1.RemoveSet{Addrs: removed}}})
	}
	var changed []string
	for _, a := range sortedAddrs(next.Endpoints) {
		if old, ok := prev.Endpoints[a]; !ok || !proto.Equal(old, next.Endpoints[a]) {
			changed = append(changed, a)
		}
	}
	if len(changed) > 0 {
		ups = append(ups, add(next, changed))
	}
	if len(next.Endpoints) == 0 && (len(prev.Endpoints) > 0 || prev.Exists != next.Exists) {
		ups = append(ups, noEndpoints(next.Exists))
	}
	return ups
}

func add(r Resolution, addrs []string) *destinationv1.Update {
	set := &destinationv1.AddSet{MetricLabels: r.SetLabels}
	for _, a := range addrs {
		set.Addrs = append(set.Addrs, r.Endpoints[a])
	}
	return &destinationv1.Update{Update: &destinationv1.Update_Add{Add: set}}
}

func noEndpoints(exists bool) *destinationv1.Update {
	return &destinationv1.Update{Update: &destinationv1.Update_NoEndpoints{NoEndpoints: &destinationv1.NoEndpoints{Exists: exists}}}
}

func sortedAddrs(m map[string]*destinationv1.WeightedAddr) []string {
	out := make([]string, 0, len(m))
	for a := range m {
		out = append(out, a)
	}
	slices.Sort(out)
	return out
}
