package gateway

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"
)

// The kinds' syntax, as the CRDs' schemas give it.
var (
	sectionNameRE    = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	hostnameRE       = regexp.MustCompile(`^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	protocolRE       = regexp.MustCompile(`^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$|[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/[A-Za-z0-9]+$`)
	controllerNameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/[A-Za-z0-9\/\-._~%!$&'()*+,;=:]+$`)
)

// Validate checks a Gateway as the CRD's schema and CEL rules do, so that local-mode files, which no API server
// checks, are refused for the same mistakes; errors carry field paths. What depends on other objects (a
// Secret that does not exist) is not checked here: the listener's status and Problems say it.
func Validate(gw *gatewayv1.Gateway) error {
	var errs []string
	add := func(field, format string, args ...any) {
		errs = append(errs, field+": "+fmt.Sprintf(format, args...))
	}
	if gw.Spec.GatewayClassName == "" {
		add("spec.gatewayClassName", "required")
	}
	ls := gw.Spec.Listeners
	if len(ls) == 0 || len(ls) > 64 {
		add("spec.listeners", "1 to 64 listeners, got %d", len(ls))
	}
	for i, l := range ls {
		field := fmt.Sprintf("spec.listeners[%d]", i)
		if !sectionNameRE.MatchString(string(l.Name)) || len(l.Name) > 253 {
			add(field+".name", "%q is not a listener name (lower-case letters, digits, '-' and '.')", l.Name)
		}
		if l.Port < 1 || l.Port > 65535 {
			add(field+".port", "must be 1-65535, got %d", l.Port)
		}
		if l.Protocol == "" {
			add(field+".protocol", "required")
		} else if !protocolRE.MatchString(string(l.Protocol)) {
			add(field+".protocol", "%q is not a protocol", l.Protocol)
		}
		if h := l.Hostname; h != nil {
			if !hostnameRE.MatchString(string(*h)) || len(*h) > 253 {
				add(field+".hostname", "%q is not a host name (lower case; a wildcard only as the first label, *.example.com)", *h)
			} else if _, err := netip.ParseAddr(string(*h)); err == nil {
				add(field+".hostname", "%q is an IP address; a listener's hostname is a name", *h)
			}
			if l.Protocol == gatewayv1.TCPProtocolType || l.Protocol == gatewayv1.UDPProtocolType {
				add(field+".hostname", "must not be specified for protocol %s", l.Protocol)
			}
		}
		switch l.Protocol {
		case gatewayv1.HTTPProtocolType, gatewayv1.TCPProtocolType, gatewayv1.UDPProtocolType:
			if l.TLS != nil {
				add(field+".tls", "must not be specified for protocol %s", l.Protocol)
			}
		case gatewayv1.HTTPSProtocolType:
			if l.TLS != nil && l.TLS.Mode != nil && *l.TLS.Mode != gatewayv1.TLSModeTerminate {
				add(field+".tls.mode", "must be Terminate for protocol HTTPS, got %s", *l.TLS.Mode)
			}
		}
		if t := l.TLS; t != nil {
			mode := gatewayv1.TLSModeTerminate
			if t.Mode != nil {
				mode = *t.Mode
			}
			if mode != gatewayv1.TLSModeTerminate && mode != gatewayv1.TLSModePassthrough {
				add(field+".tls.mode", "must be Terminate or Passthrough, got %s", mode)
			}
			if mode == gatewayv1.TLSModeTerminate && len(t.CertificateRefs) == 0 && len(t.Options) == 0 {
				add(field+".tls", "certificateRefs or options must be specified when mode is Terminate")
			}
			for j, ref := range t.CertificateRefs {
				if ref.Name == "" {
					add(fmt.Sprintf("%s.tls.certificateRefs[%d].name", field, j), "required")
				}
			}
		}
		if ar := l.AllowedRoutes; ar != nil && ar.Namespaces != nil {
			nf := field + ".allowedRoutes.namespaces"
			if from := ar.Namespaces.From; from != nil {
				switch *from {
				case gatewayv1.NamespacesFromAll, gatewayv1.NamespacesFromSame, gatewayv1.NamespacesFromSelector, gatewayv1.NamespacesFromNone:
				default:
					add(nf+".from", "must be All, Same, Selector or None, got %q", *from)
				}
				if *from == gatewayv1.NamespacesFromSelector && ar.Namespaces.Selector == nil {
					add(nf+".selector", "required when from is Selector")
				}
			}
			if ar.Namespaces.Selector != nil {
				if _, err := metav1.LabelSelectorAsSelector(ar.Namespaces.Selector); err != nil {
					add(nf+".selector", "%v", err)
				}
			}
		}
		if ar := l.AllowedRoutes; ar != nil && len(ar.Kinds) > 8 {
			add(field+".allowedRoutes.kinds", "at most 8, got %d", len(ar.Kinds))
		}
		for j := range i {
			o := ls[j]
			if o.Name == l.Name {
				add(field+".name", "%q is also spec.listeners[%d]'s: listener names must be unique", l.Name, j)
			}
			if o.Port == l.Port && o.Protocol == l.Protocol && hostnameOf(o.Hostname) == hostnameOf(l.Hostname) {
				add(field, "port %d, protocol %s and hostname %q are also spec.listeners[%d]'s: each combination must be unique",
					l.Port, l.Protocol, hostnameOf(l.Hostname), j)
			}
		}
	}
	return joinErrors(errs)
}

func hostnameOf(h *gatewayv1.Hostname) string {
	if h == nil {
		return ""
	}
	return string(*h)
}

// ValidateClass checks a GatewayClass as its CRD does.
func ValidateClass(c *gatewayv1.GatewayClass) error {
	var errs []string
	switch cn := string(c.Spec.ControllerName); {
	case cn == "":
		errs = append(errs, "spec.controllerName: required")
	case !controllerNameRE.MatchString(cn) || len(cn) > 253:
		errs = append(errs, fmt.Sprintf("spec.controllerName: %q is not a domain-prefixed path (example.com/gateway-controller)", cn))
	}
	return joinErrors(errs)
}

// ValidateReferenceGrant checks a ReferenceGrant as its CRD does.
func ValidateReferenceGrant(g *gatewayv1beta1.ReferenceGrant) error {
	var errs []string
	if n := len(g.Spec.From); n == 0 || n > 16 {
		errs = append(errs, fmt.Sprintf("spec.from: 1 to 16 entries, got %d", n))
	}
	for i, f := range g.Spec.From {
		if f.Kind == "" {
			errs = append(errs, fmt.Sprintf("spec.from[%d].kind: required", i))
		}
		if f.Namespace == "" {
			errs = append(errs, fmt.Sprintf("spec.from[%d].namespace: required", i))
		}
	}
	if n := len(g.Spec.To); n == 0 || n > 16 {
		errs = append(errs, fmt.Sprintf("spec.to: 1 to 16 entries, got %d", n))
	}
	for i, t := range g.Spec.To {
		if t.Kind == "" {
			errs = append(errs, fmt.Sprintf("spec.to[%d].kind: required", i))
		}
	}
	return joinErrors(errs)
}

// joinErrors puts field errors on one line, so that a log line or a file error names them all.
func joinErrors(errs []string) error {
	if len(errs) == 0 {
		return nil
	}
	return errors.New(strings.Join(errs, "; "))
}
