package kube

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/sinewmesh/sinew/controlplane/internal/model"
	authzapi "github.com/sinewmesh/sinew/controlplane/internal/policy/authz/api"
	"github.com/sinewmesh/sinew/controlplane/internal/source/svcdefaults"
	"github.com/sinewmesh/sinew/internal/names"
	"github.com/sinewmesh/sinew/internal/ports"
)

// DefaultOpaquePorts are names.DefaultOpaquePorts as the model's ranges: opaque unless a pod, Service or namespace
// annotation replaces the list.
var DefaultOpaquePorts = func() []model.PortRange {
	rs, err := ParsePortList(names.DefaultOpaquePorts, nil)
	if err != nil {
		panic("names.DefaultOpaquePorts: " + err.Error())
	}
	return rs
}()

// httpAppProtocols are the Service appProtocol values whose traffic is HTTP (detected as usual); any other
// non-empty value is opaque, since the proxy cannot know how to read it.
var httpAppProtocols = map[string]bool{
	"http": true, "http2": true, "grpc": true, "grpc-web": true, "kubernetes.io/h2c": true, "kubernetes.io/ws": true,
}

// ParsePortList reads an opaque-ports style list (internal/ports: ports, inclusive ranges, and port names that
// byName resolves) into the model's ranges, in the order written.
func ParsePortList(value string, byName func(string) (uint16, bool)) ([]model.PortRange, error) {
	rs, err := ports.Parse(value, byName)
	if err != nil {
		return nil, err
	}
	var out []model.PortRange
	for _, r := range rs {
		out = append(out, model.PortRange{First: r.From, Last: r.To})
	}
	return out, nil
}

// opaquePorts picks the most specific annotation (object, then namespace) or the defaults. A bad annotation is
// reported and skipped, so the next level applies.
func opaquePorts(obj, ns map[string]string, byName func(string) (uint16, bool), defaults []model.PortRange) ([]model.PortRange, []string) {
	var problems []string
	for _, level := range []struct {
		what        string
		annotations map[string]string
		byName      func(string) (uint16, bool)
	}{{"", obj, byName}, {"namespace ", ns, nil}} {
		v, ok := level.annotations[names.AnnOpaquePorts]
		if !ok {
			continue
		}
		ranges, err := ParsePortList(v, level.byName)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%sannotation %s: %v", level.what, names.AnnOpaquePorts, err))
			continue
		}
		return ranges, problems
	}
	return defaults, problems
}

func isTCP(p corev1.Protocol) bool { return p == "" || p == corev1.ProtocolTCP }

// podContainers are the pod's long-running containers: app containers and native sidecars.
func podContainers(pod *corev1.Pod) []corev1.Container {
	cs := slices.Clone(pod.Spec.Containers)
	for _, c := range pod.Spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			cs = append(cs, c)
		}
	}
	return cs
}

// gatewayProxy reports whether a sinew-proxy container is an ingress gateway's (inject.GatewayPodTemplate):
// SINEW_PROXY_MODE=gateway.
func gatewayProxy(c corev1.Container) bool {
	for _, e := range c.Env {
		if e.Name == "SINEW_PROXY_MODE" {
			return e.Value == "gateway"
		}
	}
	return false
}

// TranslatePod turns a pod into a workload; nil when the pod is not one (no IP yet, or finished, which frees its
// IP for another pod). Problems with its annotations are returned and otherwise ignored.
func TranslatePod(pod *corev1.Pod, ns *corev1.Namespace, defaultOpaque []model.PortRange) (*model.Workload, []string) {
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed || pod.Status.PodIP == "" {
		return nil, nil
	}
	addr, err := netip.ParseAddr(pod.Status.PodIP)
	if err != nil {
		return nil, []string{fmt.Sprintf("status.podIP %q: %v", pod.Status.PodIP, err)}
	}
	w := &model.Workload{
		Namespace:      pod.Namespace,
		Name:           pod.Name,
		Kind:           model.KindPod,
		Labels:         pod.Labels,
		ServiceAccount: cmp.Or(pod.Spec.ServiceAccountName, "default"),
		Address:        addr.Unmap(),
		// A host-network pod shares the node's address with others; only its declared ports identify it.
		UndeclaredPorts: !pod.Spec.HostNetwork,
	}
	byName := map[string]uint16{}
	containers := podContainers(pod)
	for _, c := range containers {
		ports := c.Ports
		if c.Name == names.ProxyContainer {
			w.MeshPort = names.ProxyInboundPort
			if gatewayProxy(c) {
				// No mesh inbound listener: clients reach the listeners directly, in plaintext or the
				// listener's own TLS, as a local-mode gateway's.
				w.MeshPort = 0
			}
			ports = nil
			for _, p := range c.Ports {
				if p.ContainerPort <= 0 || p.ContainerPort > 65535 {
					continue
				}
				switch p.Name {
				case names.ProxyInboundPortName:
					if w.MeshPort != 0 {
						w.MeshPort = uint16(p.ContainerPort)
					}
				case names.ProxyAdminPortName, names.ProxyTapPortName:
				default:
					// A gateway proxy (inject.GatewayPodTemplate) serves its listeners itself: those are the
					// workload's ports, which Servers select and clients reach, not the proxy's own.
					ports = append(ports, p)
					continue
				}
				w.ProxyPorts = append(w.ProxyPorts, uint16(p.ContainerPort))
			}
		}
		for _, p := range ports {
			if !isTCP(p.Protocol) || p.ContainerPort <= 0 || p.ContainerPort > 65535 {
				continue
			}
			w.Ports = append(w.Ports, model.WorkloadPort{Name: p.Name, Port: uint16(p.ContainerPort), Protocol: model.ProtocolHTTP})
			if p.Name != "" {
				byName[p.Name] = uint16(p.ContainerPort)
			}
		}
	}
	var nsAnn map[string]string
	if ns != nil {
		nsAnn = ns.Annotations
	}
	lookup := func(name string) (uint16, bool) { p, ok := byName[name]; return p, ok }
	opaque, problems := opaquePorts(pod.Annotations, nsAnn, lookup, defaultOpaque)
	w.OpaquePorts = opaque
	for i, p := range w.Ports {
		if model.InRanges(w.OpaquePorts, p.Port) {
			w.Ports[i].Protocol = model.ProtocolOpaque
		}
	}
	var policyProblems []string
	w.DefaultInboundPolicy, policyProblems = defaultInboundPolicy(pod.Annotations, nsAnn)
	problems = append(problems, policyProblems...)
	var mtlsProblems []string
	w.MTLSModes, mtlsProblems = mtlsModes(pod.Annotations, nsAnn, lookup)
	problems = append(problems, mtlsProblems...)
	w.Probes = probes(containers)
	return w, problems
}

// defaultInboundPolicy is the pod's annotation, else its namespace's; "" leaves the control plane's default. A
// bad value is reported and skipped, so the next level applies.
func defaultInboundPolicy(pod, ns map[string]string) (string, []string) {
	var problems []string
	for _, level := range []struct {
		what        string
		annotations map[string]string
	}{{"", pod}, {"namespace ", ns}} {
		v, ok := level.annotations[names.AnnDefaultInboundPolicy]
		if !ok {
			continue
		}
		if v = strings.TrimSpace(v); slices.Contains(names.InboundPolicies, v) {
			return v, problems
		}
		problems = append(problems, fmt.Sprintf("%sannotation %s: %q is not one of %s", level.what, names.AnnDefaultInboundPolicy, v,
			strings.Join(names.InboundPolicies, ", ")))
	}
	return "", problems
}

// mtlsModes reads config.sinew.dev/mtls-mode from the pod, else from its namespace (where port names are errors:
// they belong to pods). What does not parse is reported, and the ports it names get the default, PERMISSIVE
// (authzapi.ParseMTLSAnnotation): a pod cannot be refused like a local file, and a typo must not cut it off from
// its plaintext clients. A Server's mtlsMode still wins for its port.
func mtlsModes(pod, ns map[string]string, byName func(string) (uint16, bool)) (authzapi.PortMTLSModes, []string) {
	what, v, ok := "", pod[names.AnnMTLSMode], false
	if _, ok = pod[names.AnnMTLSMode]; !ok {
		if v, ok = ns[names.AnnMTLSMode]; !ok {
			return authzapi.PortMTLSModes{}, nil
		}
		what, byName = "namespace ", nil
	}
	modes, errs := authzapi.ParseMTLSAnnotation(v, byName)
	var problems []string
	for _, err := range errs {
		problems = append(problems, fmt.Sprintf("%sannotation %s: %v", what, names.AnnMTLSMode, err))
	}
	return modes, problems
}

// probes are the HTTP GET probes of the app containers (the proxy's own are on its admin port): the port by
// number or by the name the same container gives it, the path without its query.
func probes(containers []corev1.Container) []model.Probe {
	var out []model.Probe
	for _, c := range containers {
		if c.Name == names.ProxyContainer {
			continue
		}
		for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
			if p == nil || p.HTTPGet == nil {
				continue
			}
			var port uint16
			switch hp := p.HTTPGet.Port; hp.Type {
			case intstr.Int:
				if hp.IntVal > 0 && hp.IntVal <= 65535 {
					port = uint16(hp.IntVal)
				}
			case intstr.String:
				for _, cp := range c.Ports {
					if cp.Name == hp.StrVal && cp.ContainerPort > 0 && cp.ContainerPort <= 65535 {
						port = uint16(cp.ContainerPort)
					}
				}
			}
			if port == 0 {
				continue
			}
			path, _, _ := strings.Cut(p.HTTPGet.Path, "?")
			if !strings.HasPrefix(path, "/") {
				path = "/" + path
			}
			if !slices.Contains(out, model.Probe{Port: port, Path: path}) {
				out = append(out, model.Probe{Port: port, Path: path})
			}
		}
	}
	return out
}

// TranslateService turns a Service and its EndpointSlices into a model service with explicit endpoints: the ready
// endpoints of its TCP ports, and its outbound defaults from its annotations (svcdefaults; a bad one is a problem). ExternalName services are not services of the mesh (nil): their names resolve
// through DNS to something outside.
func TranslateService(svc *corev1.Service, endpointSlices []*discoveryv1.EndpointSlice, ns *corev1.Namespace, defaultOpaque []model.PortRange) (*model.Service, []string) {
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		return nil, nil
	}
	var problems []string
	out := &model.Service{Namespace: svc.Namespace, Name: svc.Name, Selector: svc.Spec.Selector, ExplicitEndpoints: true}
	ips := svc.Spec.ClusterIPs
	if len(ips) == 0 && svc.Spec.ClusterIP != "" {
		ips = []string{svc.Spec.ClusterIP}
	}
	for _, ip := range ips {
		if ip == "" || ip == corev1.ClusterIPNone {
			continue
		}
		a, err := netip.ParseAddr(ip)
		if err != nil {
			problems = append(problems, fmt.Sprintf("spec.clusterIPs: %q: %v", ip, err))
			continue
		}
		out.ClusterIPs = append(out.ClusterIPs, a.Unmap())
	}

	byName := map[string]uint16{}
	for _, p := range svc.Spec.Ports {
		if p.Name != "" && p.Port > 0 && p.Port <= 65535 {
			byName[p.Name] = uint16(p.Port)
		}
	}
	var nsAnn map[string]string
	if ns != nil {
		nsAnn = ns.Annotations
	}
	opaque, probs := opaquePorts(svc.Annotations, nsAnn, func(n string) (uint16, bool) { p, ok := byName[n]; return p, ok }, defaultOpaque)
	problems = append(problems, probs...)
	var defaultsErrs []error
	out.Outbound, defaultsErrs = svcdefaults.Parse(svc.Annotations)
	for _, err := range defaultsErrs {
		problems = append(problems, err.Error())
	}

	portNames := map[string]bool{}
	for _, p := range svc.Spec.Ports {
		if !isTCP(p.Protocol) || p.Port <= 0 || p.Port > 65535 {
			continue
		}
		sp := model.ServicePort{Name: p.Name, Port: uint16(p.Port), AppProtocol: model.ProtocolHTTP}
		switch {
		case p.TargetPort.Type == intstr.String && p.TargetPort.StrVal != "":
			sp.TargetPort.Name = p.TargetPort.StrVal
		case p.TargetPort.Type == intstr.Int && p.TargetPort.IntVal > 0 && p.TargetPort.IntVal <= 65535:
			sp.TargetPort.Number = uint16(p.TargetPort.IntVal)
		default: // unset: the port itself
			sp.TargetPort.Number = uint16(p.Port)
		}
		switch ap := p.AppProtocol; {
		case ap == nil || *ap == "":
			if model.InRanges(opaque, sp.Port) {
				sp.AppProtocol = model.ProtocolOpaque
			}
		case !httpAppProtocols[*ap]:
			sp.AppProtocol = model.ProtocolOpaque
		}
		out.Ports = append(out.Ports, sp)
		portNames[p.Name] = true
	}

	type epKey struct {
		portName string
		addr     netip.Addr
		port     uint16
	}
	seen := map[epKey]bool{}
	// Ready endpoints take the traffic. A port with none falls back to endpoints that are terminating but still
	// serving, as kube-proxy does: while every pod of a Service is going away (scaled to a new Deployment, or a
	// single replica replaced before its successor is ready), requests keep reaching pods that still answer.
	var terminating []model.ServiceEndpoint
	hasReady := map[string]bool{}
	for _, es := range endpointSlices {
		if es.AddressType != discoveryv1.AddressTypeIPv4 && es.AddressType != discoveryv1.AddressTypeIPv6 {
			continue // FQDN endpoints name something outside the mesh
		}
		for _, ep := range es.Endpoints {
			// nil means ready (the API's rule for unknown readiness).
			ready := ep.Conditions.Ready == nil || *ep.Conditions.Ready
			serving := ep.Conditions.Serving != nil && *ep.Conditions.Serving &&
				ep.Conditions.Terminating != nil && *ep.Conditions.Terminating
			if !ready && !serving {
				continue
			}
			if len(ep.Addresses) == 0 {
				continue
			}
			addr, err := netip.ParseAddr(ep.Addresses[0])
			if err != nil {
				problems = append(problems, fmt.Sprintf("EndpointSlice %s: address %q: %v", es.Name, ep.Addresses[0], err))
				continue
			}
			workload := ""
			if ref := ep.TargetRef; ref != nil && ref.Kind == "Pod" && (ref.Namespace == "" || ref.Namespace == svc.Namespace) {
				workload = ref.Name
			}
			zone := ""
			if ep.Zone != nil {
				zone = *ep.Zone
			}
			for _, p := range es.Ports {
				if p.Port == nil || *p.Port <= 0 || *p.Port > 65535 || (p.Protocol != nil && !isTCP(*p.Protocol)) {
					continue
				}
				name := ""
				if p.Name != nil {
					name = *p.Name
				}
				if !portNames[name] {
					continue
				}
				k := epKey{name, addr.Unmap(), uint16(*p.Port)}
				if seen[k] { // slices may overlap while the controller moves endpoints between them
					continue
				}
				seen[k] = true
				se := model.ServiceEndpoint{PortName: name, Address: k.addr, Port: k.port, Workload: workload, Zone: zone}
				if !ready {
					terminating = append(terminating, se)
					continue
				}
				hasReady[name] = true
				out.Endpoints = append(out.Endpoints, se)
			}
		}
	}
	for _, se := range terminating {
		if !hasReady[se.PortName] {
			out.Endpoints = append(out.Endpoints, se)
		}
	}
	slices.SortFunc(out.Endpoints, func(a, b model.ServiceEndpoint) int {
		return cmp.Or(strings.Compare(a.PortName, b.PortName), a.Address.Compare(b.Address), cmp.Compare(a.Port, b.Port))
	})
	return out, problems
}
