package api

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"github.com/sinewmesh/sinew/internal/names"
)

var portNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)

// Validate implements Object.
func (o *Server) Validate() error {
	var errs []error
	s := &o.Spec
	switch {
	case s.PodSelector != nil && s.WorkloadSelector != nil:
		errs = append(errs, errors.New("spec: give exactly one of podSelector and workloadSelector, not both"))
	case s.PodSelector == nil && s.WorkloadSelector == nil:
		errs = append(errs, errors.New("spec: give exactly one of podSelector (pods) and workloadSelector (Workloads)"))
	case s.PodSelector != nil:
		errs = append(errs, s.PodSelector.validate("spec.podSelector")...)
	default:
		errs = append(errs, s.WorkloadSelector.validate("spec.workloadSelector")...)
	}
	switch p := s.Port; {
	case p.Name != "":
		if len(p.Name) > 15 || !portNameRE.MatchString(p.Name) || !strings.ContainsAny(p.Name, "abcdefghijklmnopqrstuvwxyz") {
			errs = append(errs, fmt.Errorf("spec.port: %q is not a port name (at most 15 lower-case letters, digits and '-', with a letter)", p.Name))
		}
	case p.Number < 1 || p.Number > 65535:
		errs = append(errs, fmt.Errorf("spec.port: must be 1-65535 or a port name, got %d", p.Number))
	}
	if s.ProxyProtocol != "" && !slices.Contains(ProxyProtocols, s.ProxyProtocol) {
		errs = append(errs, fmt.Errorf("spec.proxyProtocol: must be one of %s, got %q", strings.Join(ProxyProtocols, ", "), s.ProxyProtocol))
	}
	if s.AccessPolicy != "" && !slices.Contains(names.InboundPolicies, s.AccessPolicy) {
		errs = append(errs, fmt.Errorf("spec.accessPolicy: must be one of %s, got %q", strings.Join(names.InboundPolicies, ", "), s.AccessPolicy))
	}
	if s.MTLSMode != "" && !slices.Contains(MTLSModes, s.MTLSMode) {
		errs = append(errs, fmt.Errorf("spec.mtlsMode: must be one of %s, got %q", modeList(), s.MTLSMode))
	}
	return join(errs)
}

// ProxyProtocols are the values of Server spec.proxyProtocol.
var ProxyProtocols = []string{ProtocolUnknown, ProtocolHTTP1, ProtocolHTTP2, ProtocolGRPC, ProtocolOpaque, ProtocolTLS}

// Validate implements Object.
func (o *ServerAuthorization) Validate() error {
	var errs []error
	s := &o.Spec
	switch {
	case (s.Server.Name == "") == (s.Server.Selector == nil):
		errs = append(errs, errors.New("spec.server: give exactly one of name and selector"))
	case s.Server.Selector != nil:
		errs = append(errs, s.Server.Selector.validate("spec.server.selector")...)
	}
	c := &s.Client
	errs = append(errs, validateNetworks("spec.client.networks", c.Networks)...)
	if (c.MeshTLS != nil) == c.Unauthenticated {
		errs = append(errs, errors.New("spec.client: give meshTLS (meshed clients) or unauthenticated: true (any client), not both and not neither"))
	}
	if m := c.MeshTLS; m != nil {
		set := 0
		for _, b := range []bool{m.UnauthenticatedTLS, len(m.Identities) > 0, len(m.ServiceAccounts) > 0} {
			if b {
				set++
			}
		}
		if set != 1 {
			errs = append(errs, errors.New("spec.client.meshTLS: give exactly one of unauthenticatedTLS: true, identities and serviceAccounts"))
		}
		for i, id := range m.Identities {
			if id == "" {
				errs = append(errs, fmt.Errorf("spec.client.meshTLS.identities[%d]: empty", i))
			}
		}
		for i, sa := range m.ServiceAccounts {
			f := fmt.Sprintf("spec.client.meshTLS.serviceAccounts[%d]", i)
			if err := names.CheckDNSName(sa.Name); err != nil {
				errs = append(errs, fmt.Errorf("%s.name: %v", f, err))
			}
			if sa.Namespace != "" {
				if err := names.CheckDNSLabel(sa.Namespace); err != nil {
					errs = append(errs, fmt.Errorf("%s.namespace: %v", f, err))
				}
			}
		}
	}
	return join(errs)
}

// Validate implements Object.
func (o *AuthorizationPolicy) Validate() error {
	var errs []error
	t := o.Spec.TargetRef
	switch {
	case t.Kind == KindServer && t.Group == Group:
	case (t.Kind == "HTTPRoute" || t.Kind == "GRPCRoute") && (t.Group == Group || t.Group == "gateway.networking.k8s.io"):
	case t.Kind == "Namespace" && t.Group == "":
	default:
		errs = append(errs, fmt.Errorf("spec.targetRef: must be a Server (group %s), an HTTPRoute or GRPCRoute (group %s or gateway.networking.k8s.io), or a Namespace (core group, empty); got kind %q group %q",
			Group, Group, t.Kind, t.Group))
	}
	if t.Name == "" {
		errs = append(errs, errors.New("spec.targetRef.name: required"))
	}
	if n := len(o.Spec.RequiredAuthenticationRefs); n > 16 {
		errs = append(errs, fmt.Errorf("spec.requiredAuthenticationRefs: at most 16, got %d", n))
	}
	for i, r := range o.Spec.RequiredAuthenticationRefs {
		f := fmt.Sprintf("spec.requiredAuthenticationRefs[%d]", i)
		switch {
		case (r.Kind == KindMeshTLSAuthentication || r.Kind == KindNetworkAuthentication || r.Kind == KindJWTAuthentication) && r.Group == Group:
		case r.Kind == "ServiceAccount" && r.Group == "":
		default:
			errs = append(errs, fmt.Errorf("%s: an authentication is a MeshTLSAuthentication, NetworkAuthentication or JWTAuthentication (group %s), or a ServiceAccount (core group, empty); got kind %q group %q",
				f, Group, r.Kind, r.Group))
		}
		if r.Name == "" {
			errs = append(errs, fmt.Errorf("%s.name: required", f))
		}
	}
	return join(errs)
}

// Validate implements Object.
func (o *MeshTLSAuthentication) Validate() error {
	var errs []error
	s := &o.Spec
	if (len(s.Identities) > 0) == (len(s.IdentityRefs) > 0) {
		errs = append(errs, errors.New("spec: give exactly one of identities and identityRefs"))
	}
	for i, id := range s.Identities {
		if id != "*" && !strings.HasPrefix(id, "*.") && !strings.HasPrefix(id, "spiffe://") {
			errs = append(errs, fmt.Errorf("spec.identities[%d]: %q is not '*', '*.<suffix>' or a SPIFFE ID starting with spiffe://", i, id))
		}
	}
	for i, r := range s.IdentityRefs {
		f := fmt.Sprintf("spec.identityRefs[%d]", i)
		if r.Group != "" {
			errs = append(errs, fmt.Errorf("%s.group: identityRefs name core objects: leave group empty, got %q", f, r.Group))
		}
		if r.Kind != "ServiceAccount" && r.Kind != "Namespace" {
			errs = append(errs, fmt.Errorf("%s.kind: must be ServiceAccount or Namespace, got %q", f, r.Kind))
		}
	}
	return join(errs)
}

// Validate implements Object.
func (o *NetworkAuthentication) Validate() error {
	var errs []error
	if len(o.Spec.Networks) == 0 {
		errs = append(errs, errors.New("spec.networks: at least one network is required"))
	}
	errs = append(errs, validateNetworks("spec.networks", o.Spec.Networks)...)
	return join(errs)
}

func validateNetworks(field string, nets []Network) []error {
	var errs []error
	for i, n := range nets {
		f := fmt.Sprintf("%s[%d]", field, i)
		if _, err := ParseNetwork(n.CIDR); err != nil {
			errs = append(errs, fmt.Errorf("%s.cidr: %v", f, err))
		}
		for j, e := range n.Except {
			if _, err := ParseNetwork(e); err != nil {
				errs = append(errs, fmt.Errorf("%s.except[%d]: %v", f, j, err))
			}
		}
	}
	return errs
}

// ParseNetwork reads a network in CIDR notation, or a bare address as that one host; the result is masked
// (10.1.2.3/8 is 10.0.0.0/8).
func ParseNetwork(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q is not a network in CIDR notation (10.0.0.0/8, fd00::/8) or an address", s)
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a network in CIDR notation (10.0.0.0/8, fd00::/8)", s)
	}
	return p.Masked(), nil
}

// join puts field errors on one line, so that a log line or a file error names them all.
func join(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return errors.New(strings.Join(msgs, "; "))
}
