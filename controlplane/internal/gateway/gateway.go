// Package gateway decides what sinew's ingress gateway (decision 0006) serves and what the Gateway API status
// says about it: which Gateways are sinew's (their GatewayClass's controllerName is names.GatewayController),
// which of their listeners are valid, which routes attach to which listener (parentRefs, allowedRoutes, host
// name intersection), the GatewayConfig that WatchGateway streams to the gateway's proxies, and the conditions of
// Gateways, listeners and routes' Gateway parents. Attachment is computed once here for both the proxies and the
// status, so they cannot disagree.
//
// It is pure: model in, proto and conditions out (it remembers the last snapshot's attachments, which an
// immutable snapshot cannot invalidate). It does no I/O, writes no status (the controller does) and never logs
// key material. Route rules translate with the mesh routes' code (policy/routes).
package gateway

import (
	"slices"
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	policyv1 "github.com/sinewmesh/sinew/api/policy/v1"
	"github.com/sinewmesh/sinew/controlplane/internal/model"
	"github.com/sinewmesh/sinew/internal/names"
)

// Labels of a GatewayConfig, as the gateway proxy's metrics carry them.
const (
	LabelKind      = "kind"
	LabelName      = "name"
	LabelNamespace = "namespace"
	KindGateway    = "Gateway"
)

// OurClass reports whether a GatewayClass is sinew's.
func OurClass(c *gatewayv1.GatewayClass) bool {
	return c != nil && string(c.Spec.ControllerName) == names.GatewayController
}

// Ours reports whether a Gateway is sinew's: its GatewayClass exists and is sinew's.
func Ours(snap *model.Snapshot, gw *gatewayv1.Gateway) bool {
	c, ok := snap.GatewayClass(string(gw.Spec.GatewayClassName))
	return ok && OurClass(c)
}

// Config is the configuration of the Gateway namespace/name for its proxies: its programmed listeners (valid,
// not conflicted, certificates resolved), in spec order, each with its certificates (PEM, from the Secrets)
// and the routes attached to it, oldest first, each with the host names it serves there. Exists is false
// (and there are no listeners) for a Gateway the model does not hold or that is not sinew's.
func Config(snap *model.Snapshot, clusterDomain, namespace, name string) *policyv1.GatewayConfig {
	out := &policyv1.GatewayConfig{Labels: map[string]string{LabelKind: KindGateway, LabelName: name, LabelNamespace: namespace}}
	gw, ok := snap.Gateway(namespace, name)
	if !ok || !Ours(snap, gw) {
		return out
	}
	out.Exists = true
	c := attached(snap, gw)
	ev, routes := c.ev, c.ra
	if gatewayAccepted(ev).Status != metav1.ConditionTrue {
		return out // nothing of it is served (Status says why)
	}
	for i, l := range ev.listeners {
		if !l.programmable() {
			continue
		}
		pl := &policyv1.GatewayListener{
			Name:     string(l.spec.Name),
			Port:     uint32(l.spec.Port),
			Protocol: policyv1.ListenerProtocol_LISTENER_PROTOCOL_HTTP,
			Hostname: l.hostname(),
		}
		if l.spec.Protocol == gatewayv1.HTTPSProtocolType {
			pl.Protocol = policyv1.ListenerProtocol_LISTENER_PROTOCOL_HTTPS
			for _, sec := range l.certificates {
				pl.Certificates = append(pl.Certificates, &policyv1.Certificate{
					Name: sec.Key(), ChainPem: slices.Clone(sec.Chain), KeyPem: slices.Clone(sec.PrivateKey),
				})
			}
		}
		for _, a := range routes.byListener[i] {
			pl.Routes = append(pl.Routes, a.translate(snap, clusterDomain))
		}
		out.Listeners = append(out.Listeners, pl)
	}
	return out
}

// Ports are the distinct ports of the Gateway's programmed listeners, ascending: those its proxies listen on.
func Ports(snap *model.Snapshot, gw *gatewayv1.Gateway) []int32 {
	var out []int32
	ev := evaluate(snap, gw)
	if gatewayAccepted(ev).Status != metav1.ConditionTrue {
		return nil
	}
	for _, l := range ev.listeners {
		if l.programmable() && !slices.Contains(out, int32(l.spec.Port)) {
			out = append(out, int32(l.spec.Port))
		}
	}
	slices.Sort(out)
	return out
}

// CertificateSecrets are the Secrets ("namespace/name") that the listeners of gw reference as certificates,
// whether or not they may: the ones a source must read for it (it may drop other TLS Secrets). It needs no
// model, so that a source can filter with it as objects arrive.
func CertificateSecrets(gw *gatewayv1.Gateway) []string {
	var out []string
	for _, l := range gw.Spec.Listeners {
		if l.TLS == nil {
			continue
		}
		for _, ref := range l.TLS.CertificateRefs {
			if (ref.Group != nil && *ref.Group != "" && *ref.Group != "core") || (ref.Kind != nil && *ref.Kind != "Secret") {
				continue
			}
			ns := gw.Namespace
			if ref.Namespace != nil {
				ns = string(*ref.Namespace)
			}
			if key := ns + "/" + string(ref.Name); !slices.Contains(out, key) {
				out = append(out, key)
			}
		}
	}
	return out
}

// evaluation is what a Gateway's listeners are, before routes attach.
type evaluation struct {
	gw        *gatewayv1.Gateway
	listeners []*listener
}

// listener is one listener of a Gateway with its validity: each condition's reason and message, the route
// kinds it supports and, for HTTPS, its usable certificates.
type listener struct {
	spec           *gatewayv1.Listener
	supportedKinds []gatewayv1.RouteGroupKind
	// accepted: the listener is valid and supported (false: acceptedReason says why).
	accepted                        bool
	acceptedReason, acceptedMessage string
	// conflicted: another listener on its port makes it unservable (HostnameConflict, ProtocolConflict).
	conflictReason, conflictMessage string
	// refsReason is "" when every reference resolves; certsInvalid says whether the failure is its
	// certificates' (which keeps it from being served) rather than its route kinds'.
	refsReason, refsMessage string
	certsInvalid            bool
	certificates            []*model.TLSSecret
}

// programmable reports whether the listener can be served: accepted, not conflicted, its certificates usable.
func (l *listener) programmable() bool {
	return l.accepted && l.conflictReason == "" && !l.certsInvalid
}

func (l *listener) hostname() string {
	if l.spec.Hostname == nil {
		return ""
	}
	return string(*l.spec.Hostname)
}

// describe names a listener for problems and messages: `listener "https" (port 443)`.
func (l *listener) describe() string {
	return "listener " + strconv.Quote(string(l.spec.Name)) + " (port " + strconv.Itoa(int(l.spec.Port)) + ")"
}

func evaluate(snap *model.Snapshot, gw *gatewayv1.Gateway) *evaluation {
	ev := &evaluation{gw: gw}
	for i := range gw.Spec.Listeners {
		ev.listeners = append(ev.listeners, evaluateListener(snap, gw, &gw.Spec.Listeners[i]))
	}
	markConflicts(ev.listeners)
	return ev
}

// condition builds a condition without transition time: the status writer keeps the live one while the status
// stays, and sets it when it changes.
func condition[T, R ~string](t T, ok bool, reason R, msg string, generation int64) metav1.Condition {
	status := metav1.ConditionTrue
	if !ok {
		status = metav1.ConditionFalse
	}
	return metav1.Condition{Type: string(t), Status: status, Reason: string(reason), Message: msg, ObservedGeneration: generation}
}
