package model

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"
)

// What the model holds for sinew's ingress gateway (decision 0006): the Gateway API's Gateways, GatewayClasses
// and ReferenceGrants in the upstream Go types, the TLS Secrets that listeners reference, and Namespaces with
// their labels (a listener's allowedRoutes may select namespaces by label). Which of them are sinew's, and what
// they mean, is the gateway package's business; the model only holds and indexes them.

// NamespaceNameLabel is the label the API server gives every namespace, its name: a namespace the model does not
// list still has it (NamespaceLabels).
const NamespaceNameLabel = "kubernetes.io/metadata.name"

// Namespace is a namespace with its labels. Sources that do not track namespaces list none (local mode lists
// those its files declare).
type Namespace struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels,omitempty"`
}

// TLSSecret is a Secret of type kubernetes.io/tls: a PEM certificate chain (tls.crt, leaf first) and its PEM
// private key (tls.key). It holds a private key: it is never logged (LogValue and String show only its name) nor
// rendered (its data is not in JSON, so /debug/model lists only its name).
type TLSSecret struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Chain is tls.crt, PrivateKey tls.key.
	Chain      []byte `json:"-"`
	PrivateKey []byte `json:"-"`
}

// Key is "namespace/name".
func (s *TLSSecret) Key() string { return s.Namespace + "/" + s.Name }

// String names the Secret, never its data.
func (s *TLSSecret) String() string { return "Secret " + s.Key() }

// LogValue names the Secret, never its data.
func (s *TLSSecret) LogValue() slog.Value { return slog.StringValue(s.Key()) }

var _ slog.LogValuer = (*TLSSecret)(nil)

// Check reports whether the Secret holds a usable certificate: tls.crt a PEM chain, tls.key a PEM private key that
// belongs to its first certificate. The error names the field and never shows key material.
func (s *TLSSecret) Check() error {
	switch {
	case len(s.Chain) == 0:
		return errors.New("data.tls.crt: required")
	case len(s.PrivateKey) == 0:
		return errors.New("data.tls.key: required")
	}
	if _, err := tls.X509KeyPair(s.Chain, s.PrivateKey); err != nil {
		return fmt.Errorf("data.tls.crt, data.tls.key: %s", keyPairError(err))
	}
	return nil
}

// keyPairError words crypto/tls's key pair errors for a Secret's fields (its messages speak of its arguments).
func keyPairError(err error) string {
	msg := strings.TrimPrefix(err.Error(), "tls: ")
	switch {
	case strings.Contains(msg, "failed to find any PEM data in certificate"):
		return "tls.crt holds no PEM certificate"
	case strings.Contains(msg, "failed to find any PEM data in key"), strings.Contains(msg, "failed to find PEM block with type ending in \"PRIVATE KEY\""):
		return "tls.key holds no PEM private key"
	case strings.Contains(msg, "does not match"):
		return "the private key in tls.key does not match the certificate in tls.crt"
	}
	return msg
}

// GatewayResources are a source's Gateway API gateway objects. They are part of Resources.
type GatewayResources struct {
	Gateways       []*gatewayv1.Gateway
	GatewayClasses []*gatewayv1.GatewayClass
	// ReferenceGrants allow references across namespaces: a listener's certificateRefs to a Secret, a gateway
	// route's backendRefs to a Service.
	ReferenceGrants []*gatewayv1beta1.ReferenceGrant
	// TLSSecrets are the kubernetes.io/tls Secrets; a source may keep only those that listeners reference.
	TLSSecrets []*TLSSecret
	// Namespaces are the namespaces with their labels, for allowedRoutes' namespace selectors.
	Namespaces []*Namespace
}

// gatewayIndex is the snapshot's view of GatewayResources.
type gatewayIndex struct {
	gateways        []*gatewayv1.Gateway // by namespace/name
	gatewayByKey    map[string]*gatewayv1.Gateway
	gatewayClasses  map[string]*gatewayv1.GatewayClass
	classList       []*gatewayv1.GatewayClass // by name
	referenceGrants []*gatewayv1beta1.ReferenceGrant
	secrets         map[string]*TLSSecret
	secretList      []*TLSSecret
	namespaces      map[string]*Namespace
	namespaceList   []*Namespace
}

func newGatewayIndex(r GatewayResources) gatewayIndex {
	x := gatewayIndex{
		gatewayByKey:   make(map[string]*gatewayv1.Gateway, len(r.Gateways)),
		gatewayClasses: make(map[string]*gatewayv1.GatewayClass, len(r.GatewayClasses)),
		secrets:        make(map[string]*TLSSecret, len(r.TLSSecrets)),
		namespaces:     make(map[string]*Namespace, len(r.Namespaces)),
	}
	for _, g := range r.Gateways {
		if _, dup := x.gatewayByKey[g.Namespace+"/"+g.Name]; !dup {
			x.gatewayByKey[g.Namespace+"/"+g.Name] = g
			x.gateways = append(x.gateways, g)
		}
	}
	sortByKey(x.gateways, func(g *gatewayv1.Gateway) string { return g.Namespace + "/" + g.Name })
	for _, c := range r.GatewayClasses {
		if _, dup := x.gatewayClasses[c.Name]; !dup {
			x.gatewayClasses[c.Name] = c
			x.classList = append(x.classList, c)
		}
	}
	sortByKey(x.classList, func(c *gatewayv1.GatewayClass) string { return c.Name })
	x.referenceGrants = append(x.referenceGrants, r.ReferenceGrants...)
	sortByKey(x.referenceGrants, func(g *gatewayv1beta1.ReferenceGrant) string { return g.Namespace + "/" + g.Name })
	for _, s := range r.TLSSecrets {
		if _, dup := x.secrets[s.Key()]; !dup {
			x.secrets[s.Key()] = s
			x.secretList = append(x.secretList, s)
		}
	}
	sortByKey(x.secretList, (*TLSSecret).Key)
	for _, n := range r.Namespaces {
		if _, dup := x.namespaces[n.Name]; !dup {
			x.namespaces[n.Name] = n
			x.namespaceList = append(x.namespaceList, n)
		}
	}
	sortByKey(x.namespaceList, func(n *Namespace) string { return n.Name })
	return x
}

func sortByKey[T any](s []T, key func(T) string) {
	slices.SortStableFunc(s, func(a, b T) int { return strings.Compare(key(a), key(b)) })
}

// Gateways returns every Gateway (of any class), sorted by namespace/name. Never modify them.
func (s *Snapshot) Gateways() []*gatewayv1.Gateway { return s.gw.gateways }

// Gateway looks a Gateway up by namespace and name.
func (s *Snapshot) Gateway(namespace, name string) (*gatewayv1.Gateway, bool) {
	g, ok := s.gw.gatewayByKey[namespace+"/"+name]
	return g, ok
}

// GatewayClasses returns every GatewayClass, sorted by name. Never modify them.
func (s *Snapshot) GatewayClasses() []*gatewayv1.GatewayClass { return s.gw.classList }

// GatewayClass looks a GatewayClass (cluster-scoped) up by name.
func (s *Snapshot) GatewayClass(name string) (*gatewayv1.GatewayClass, bool) {
	c, ok := s.gw.gatewayClasses[name]
	return c, ok
}

// ReferenceGrants returns every ReferenceGrant, sorted by namespace/name. Never modify them.
func (s *Snapshot) ReferenceGrants() []*gatewayv1beta1.ReferenceGrant { return s.gw.referenceGrants }

// TLSSecret looks a kubernetes.io/tls Secret up by namespace and name.
func (s *Snapshot) TLSSecret(namespace, name string) (*TLSSecret, bool) {
	sec, ok := s.gw.secrets[namespace+"/"+name]
	return sec, ok
}

// TLSSecrets returns every TLS Secret the source keeps, sorted by namespace/name. Never modify them.
func (s *Snapshot) TLSSecrets() []*TLSSecret { return s.gw.secretList }

// Namespace looks a namespace up by name; false when the source does not list it.
func (s *Snapshot) Namespace(name string) (*Namespace, bool) {
	n, ok := s.gw.namespaces[name]
	return n, ok
}

// Namespaces returns the namespaces the source lists, sorted by name. Never modify them.
func (s *Snapshot) Namespaces() []*Namespace { return s.gw.namespaceList }

// NamespaceLabels returns a namespace's labels, always with NamespaceNameLabel (as the API server sets it), also
// for a namespace the source does not list. Never modify the result.
func (s *Snapshot) NamespaceLabels(name string) map[string]string {
	n, ok := s.gw.namespaces[name]
	if ok && n.Labels[NamespaceNameLabel] == name {
		return n.Labels
	}
	out := map[string]string{NamespaceNameLabel: name}
	if ok {
		for k, v := range n.Labels {
			if k != NamespaceNameLabel {
				out[k] = v
			}
		}
	}
	return out
}
