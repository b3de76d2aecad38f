package gateway

import (
	"fmt"
	"strings"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sinewmesh/sinew/controlplane/internal/model"
	"github.com/sinewmesh/sinew/controlplane/internal/policy/routes/api"
)

// The route kinds an HTTP or HTTPS listener supports, in this order when allowedRoutes.kinds is not given.
var routeKinds = []gatewayv1.RouteGroupKind{
	{Group: ptr(gatewayv1.Group(api.Group)), Kind: api.KindHTTPRoute},
	{Group: ptr(gatewayv1.Group(api.Group)), Kind: api.KindGRPCRoute},
}

func ptr[T any](v T) *T { return &v }

// evaluateListener checks one listener on its own: protocol, TLS, certificates, route kinds. Conflicts between
// listeners are markConflicts'.
func evaluateListener(snap *model.Snapshot, gw *gatewayv1.Gateway, spec *gatewayv1.Listener) *listener {
	l := &listener{spec: spec, accepted: true}
	switch spec.Protocol {
	case gatewayv1.HTTPProtocolType, gatewayv1.HTTPSProtocolType:
	default:
		l.accepted = false
		l.acceptedReason = string(gatewayv1.ListenerReasonUnsupportedProtocol)
		l.acceptedMessage = fmt.Sprintf("protocol %s is not supported; sinew's gateway serves HTTP and HTTPS", spec.Protocol)
		return l // no kinds are supported: nothing attaches
	}
	l.supportedKinds, l.refsReason, l.refsMessage = kinds(spec)
	if spec.Protocol != gatewayv1.HTTPSProtocolType {
		return l
	}
	if spec.TLS == nil {
		l.accepted, l.acceptedReason, l.acceptedMessage = false, string(gatewayv1.ListenerReasonUnsupportedValue), "an HTTPS listener needs tls (mode Terminate, certificateRefs)"
		return l
	}
	if spec.TLS.Mode != nil && *spec.TLS.Mode != gatewayv1.TLSModeTerminate {
		l.accepted, l.acceptedReason = false, string(gatewayv1.ListenerReasonUnsupportedValue)
		l.acceptedMessage = fmt.Sprintf("tls.mode %s: an HTTPS listener terminates TLS (mode Terminate)", *spec.TLS.Mode)
		return l
	}
	certs, reason, msg := certificates(snap, gw, spec.TLS.CertificateRefs)
	l.certificates = certs
	if reason != "" {
		// A certificate that cannot be used keeps the listener from being served, and its reason wins over
		// the route kinds' (the graver failure).
		l.refsReason, l.refsMessage, l.certsInvalid = reason, msg, true
	}
	return l
}

// kinds is a listener's supported route kinds: those of allowedRoutes.kinds that it supports (HTTPRoute,
// GRPCRoute), or both when none are given; and, when some given kind is not supported, ResolvedRefs' reason
// InvalidRouteKinds with a message naming them.
func kinds(spec *gatewayv1.Listener) (supported []gatewayv1.RouteGroupKind, reason, msg string) {
	if spec.AllowedRoutes == nil || len(spec.AllowedRoutes.Kinds) == 0 {
		return append([]gatewayv1.RouteGroupKind(nil), routeKinds...), "", ""
	}
	supported = []gatewayv1.RouteGroupKind{}
	var bad []string
	for _, k := range spec.AllowedRoutes.Kinds {
		group := api.Group
		if k.Group != nil {
			group = string(*k.Group)
		}
		ok := group == api.Group && (k.Kind == api.KindHTTPRoute || k.Kind == api.KindGRPCRoute)
		if !ok {
			bad = append(bad, kindName(group, string(k.Kind)))
			continue
		}
		dup := false
		for _, s := range supported {
			dup = dup || s.Kind == k.Kind
		}
		if !dup {
			supported = append(supported, gatewayv1.RouteGroupKind{Group: ptr(gatewayv1.Group(api.Group)), Kind: k.Kind})
		}
	}
	if len(bad) > 0 {
		return supported, string(gatewayv1.ListenerReasonInvalidRouteKinds),
			fmt.Sprintf("route kinds %s are not supported by a %s listener (HTTPRoute, GRPCRoute are)", strings.Join(bad, ", "), spec.Protocol)
	}
	return supported, "", ""
}

func kindName(group, kind string) string {
	if group == "" {
		return kind
	}
	return kind + "." + group
}

// certificates resolves an HTTPS listener's certificateRefs to TLS Secrets: each must be a core Secret that
// exists and holds a usable key pair; one in another namespace needs a ReferenceGrant there. The reason is the
// first failing reference's (InvalidCertificateRef, RefNotPermitted), the message names each failure; certs
// are the usable ones.
func certificates(snap *model.Snapshot, gw *gatewayv1.Gateway, refs []gatewayv1.SecretObjectReference) (certs []*model.TLSSecret, reason, msg string) {
	var msgs []string
	fail := func(r gatewayv1.ListenerConditionReason, i int, format string, args ...any) {
		if reason == "" {
			reason = string(r)
		}
		msgs = append(msgs, fmt.Sprintf("tls.certificateRefs[%d]: %s", i, fmt.Sprintf(format, args...)))
	}
	if len(refs) == 0 {
		return nil, string(gatewayv1.ListenerReasonInvalidCertificateRef), "tls.certificateRefs: an HTTPS listener needs a certificate"
	}
	for i, ref := range refs {
		group, kind := "", "Secret"
		if ref.Group != nil {
			group = string(*ref.Group)
		}
		if ref.Kind != nil {
			kind = string(*ref.Kind)
		}
		if (group != "" && group != "core") || kind != "Secret" {
			fail(gatewayv1.ListenerReasonInvalidCertificateRef, i, "%s is not supported; only Secrets (of type kubernetes.io/tls)", kindName(group, kind))
			continue
		}
		ns := gw.Namespace
		if ref.Namespace != nil {
			ns = string(*ref.Namespace)
		}
		if ns != gw.Namespace && !refPermitted(snap, api.Group, KindGateway, gw.Namespace, "", "Secret", ns, string(ref.Name)) {
			fail(gatewayv1.ListenerReasonRefNotPermitted, i, "no ReferenceGrant in namespace %s allows Gateways of namespace %s to refer to Secret %s", ns, gw.Namespace, ref.Name)
			continue
		}
		sec, ok := snap.TLSSecret(ns, string(ref.Name))
		if !ok {
			fail(gatewayv1.ListenerReasonInvalidCertificateRef, i, "Secret %s/%s does not exist (or is not of type kubernetes.io/tls)", ns, ref.Name)
			continue
		}
		if err := sec.Check(); err != nil {
			fail(gatewayv1.ListenerReasonInvalidCertificateRef, i, "Secret %s/%s: %v", ns, ref.Name, err)
			continue
		}
		certs = append(certs, sec)
	}
	return certs, reason, strings.Join(msgs, "; ")
}

// markConflicts marks the listeners that cannot share their port: an HTTP and an HTTPS listener on one port
// (ProtocolConflict: the gateway cannot tell them apart before reading), or two of one protocol with the same
// host name (HostnameConflict). Every listener of a conflict is marked, so that neither wins by its position.
// Listeners that are not accepted take part in no conflict.
func markConflicts(ls []*listener) {
	for i, a := range ls {
		if !a.accepted {
			continue
		}
		for j, b := range ls {
			if i == j || !b.accepted || a.spec.Port != b.spec.Port {
				continue
			}
			switch {
			case a.spec.Protocol != b.spec.Protocol:
				a.conflictReason = string(gatewayv1.ListenerReasonProtocolConflict)
				a.conflictMessage = fmt.Sprintf("%s uses port %d with protocol %s", b.describe(), b.spec.Port, b.spec.Protocol)
			case a.hostname() == b.hostname() && a.conflictReason == "":
				a.conflictReason = string(gatewayv1.ListenerReasonHostnameConflict)
				a.conflictMessage = fmt.Sprintf("%s uses port %d with the same hostname %q", b.describe(), b.spec.Port, a.hostname())
			}
		}
	}
}
