package local

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"
	"sigs.k8s.io/yaml"

	"github.com/sinewmesh/sinew/controlplane/internal/gateway"
	"github.com/sinewmesh/sinew/controlplane/internal/model"
	"github.com/sinewmesh/sinew/internal/names"
)

// The kinds of the ingress gateway (decision 0006) that local-mode files may hold: the Gateway API's Gateway,
// GatewayClass and ReferenceGrant, and the core Secret (type kubernetes.io/tls: a listener's certificate) and
// Namespace (labels, for allowedRoutes' namespace selectors).
const (
	kindGateway        = "Gateway"
	kindGatewayClass   = "GatewayClass"
	kindReferenceGrant = "ReferenceGrant"
	kindSecret         = "Secret"
	kindNamespace      = "Namespace"
	// secretTypeTLS is the type of the Secrets read; others are ignored.
	secretTypeTLS = "kubernetes.io/tls" //nolint:gosec // a Secret type, not a credential
	// coreAPIVersion is the apiVersion of Secret and Namespace.
	coreAPIVersion = "v1"
)

// The apiVersions the Gateway API kinds are read in (v1beta1 has the same fields).
var (
	gatewayVersions        = []string{"gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1beta1"}
	referenceGrantVersions = []string{"gateway.networking.k8s.io/v1beta1", "gateway.networking.k8s.io/v1"}
)

// parseGatewayKind reads a document of one of the gateway's kinds into out; done is false for other kinds.
// Errors start like parsePolicy's: "(Secret web-tls, line 12): data.tls.key: …".
func parseGatewayKind(tm typeMeta, doc document, out *parsed) (done bool, err error) {
	switch tm.Kind {
	case kindGateway:
		gw := &gatewayv1.Gateway{}
		err = parseNamespaced(tm, doc, gatewayVersions, gw, &gw.ObjectMeta, func() error { return gateway.Validate(gw) })
		if err == nil {
			out.gateways = append(out.gateways, gw)
		}
	case kindGatewayClass:
		c := &gatewayv1.GatewayClass{}
		err = parseGatewayClass(tm, doc, c)
		if err == nil {
			out.gatewayClasses = append(out.gatewayClasses, c)
		}
	case kindReferenceGrant:
		g := &gatewayv1beta1.ReferenceGrant{}
		err = parseNamespaced(tm, doc, referenceGrantVersions, g, &g.ObjectMeta, func() error { return gateway.ValidateReferenceGrant(g) })
		if err == nil {
			out.referenceGrants = append(out.referenceGrants, g)
		}
	case kindSecret:
		var sec *model.TLSSecret
		sec, err = parseSecret(tm, doc)
		if err == nil && sec != nil {
			out.secrets = append(out.secrets, sec)
		} else if err == nil {
			out.ignored = append(out.ignored, "Secret (not of type "+secretTypeTLS+")")
		}
	case kindNamespace:
		var ns *model.Namespace
		ns, err = parseNamespace(tm, doc)
		if err == nil {
			out.namespaces = append(out.namespaces, ns)
		}
	default:
		return false, nil
	}
	return true, err
}

// checkVersion refuses an apiVersion that is not one of versions (the first is the one to use).
func checkVersion(tm typeMeta, doc document, versions ...string) error {
	if slices.Contains(versions, tm.APIVersion) {
		return nil
	}
	return fmt.Errorf("(%s, line %d): apiVersion: must be %s, got %q", tm.Kind, doc.line, strings.Join(versions, " or "), tm.APIVersion)
}

// parseNamespaced reads a namespaced object of the Gateway API into obj (metadata meta) and checks it with
// validate.
func parseNamespaced(tm typeMeta, doc document, versions []string, obj any, meta *metav1.ObjectMeta, validate func() error) error {
	if err := checkVersion(tm, doc, versions...); err != nil {
		return err
	}
	if err := yaml.UnmarshalStrict(doc.text, obj); err != nil {
		return fmt.Errorf("(%s, line %d): %s", tm.Kind, doc.line, yamlError(err, doc.line))
	}
	var errs []error
	meta.Namespace = validateMeta(&objectMeta{Name: meta.Name, Namespace: meta.Namespace}, &errs)
	if err := validate(); err != nil {
		errs = append(errs, err)
	}
	if err := joinErrors(errs); err != nil {
		return fmt.Errorf("(%s, line %d): %w", strings.TrimSpace(tm.Kind+" "+meta.Name), doc.line, err)
	}
	return nil
}

// parseGatewayClass reads a GatewayClass: cluster-scoped, so without a namespace.
func parseGatewayClass(tm typeMeta, doc document, c *gatewayv1.GatewayClass) error {
	if err := checkVersion(tm, doc, gatewayVersions...); err != nil {
		return err
	}
	if err := yaml.UnmarshalStrict(doc.text, c); err != nil {
		return fmt.Errorf("(%s, line %d): %s", tm.Kind, doc.line, yamlError(err, doc.line))
	}
	var errs []error
	if c.Name == "" {
		errs = append(errs, fmt.Errorf("metadata.name: required"))
	} else if err := names.CheckDNSLabel(c.Name); err != nil {
		errs = append(errs, fmt.Errorf("metadata.name: %s", err))
	}
	if c.Namespace != "" {
		errs = append(errs, fmt.Errorf("metadata.namespace: a GatewayClass belongs to no namespace, got %q", c.Namespace))
	}
	if err := gateway.ValidateClass(c); err != nil {
		errs = append(errs, err)
	}
	if err := joinErrors(errs); err != nil {
		return fmt.Errorf("(%s, line %d): %w", strings.TrimSpace(tm.Kind+" "+c.Name), doc.line, err)
	}
	return nil
}

type secretDoc struct {
	typeMeta   `json:",inline"`
	Metadata   objectMeta        `json:"metadata"`
	Type       string            `json:"type,omitempty"`
	Data       map[string]string `json:"data,omitempty"`
	StringData map[string]string `json:"stringData,omitempty"`
	Immutable  *bool             `json:"immutable,omitempty"`
}

// parseSecret reads a Secret; nil (and no error) when it is not of type kubernetes.io/tls. Its tls.crt and
// tls.key come from data (base64) or stringData (text, which wins, as the API server merges them), and must be a
// PEM certificate chain and the PEM private key of its first certificate: a Secret that no listener could use is
// refused with the file, so that a bad edit keeps the last good certificate serving. Errors never show the data.
func parseSecret(tm typeMeta, doc document) (*model.TLSSecret, error) {
	if err := checkVersion(tm, doc, coreAPIVersion); err != nil {
		return nil, err
	}
	var d secretDoc
	if err := yaml.UnmarshalStrict(doc.text, &d); err != nil {
		return nil, fmt.Errorf("(Secret, line %d): %s", doc.line, yamlError(err, doc.line))
	}
	if d.Type != secretTypeTLS {
		return nil, nil
	}
	var errs []error
	ns := validateMeta(&d.Metadata, &errs)
	sec := &model.TLSSecret{Namespace: ns, Name: d.Metadata.Name}
	value := func(key string) []byte {
		if v, ok := d.StringData[key]; ok {
			return []byte(v)
		}
		v, ok := d.Data[key]
		if !ok {
			errs = append(errs, fmt.Errorf("data.%s: required for a Secret of type %s", key, secretTypeTLS))
			return nil
		}
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v))
		if err != nil {
			errs = append(errs, fmt.Errorf("data.%s: not base64 (stringData takes text)", key))
			return nil
		}
		return b
	}
	sec.Chain, sec.PrivateKey = value("tls.crt"), value("tls.key")
	if len(errs) == 0 {
		if err := sec.Check(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := joinErrors(errs); err != nil {
		return nil, fmt.Errorf("(%s, line %d): %w", strings.TrimSpace("Secret "+d.Metadata.Name), doc.line, err)
	}
	return sec, nil
}

type namespaceDoc struct {
	typeMeta `json:",inline"`
	Metadata objectMeta `json:"metadata"`
	// Spec and Status are accepted as kubectl would take them, and not read.
	Spec   map[string]any `json:"spec,omitempty"`
	Status map[string]any `json:"status,omitempty"`
}

// parseNamespace reads a Namespace: its name and labels (a listener's allowedRoutes may select namespaces by
// label).
func parseNamespace(tm typeMeta, doc document) (*model.Namespace, error) {
	if err := checkVersion(tm, doc, coreAPIVersion); err != nil {
		return nil, err
	}
	var d namespaceDoc
	if err := yaml.UnmarshalStrict(doc.text, &d); err != nil {
		return nil, fmt.Errorf("(Namespace, line %d): %s", doc.line, yamlError(err, doc.line))
	}
	var errs []error
	if d.Metadata.Name == "" {
		errs = append(errs, fmt.Errorf("metadata.name: required"))
	} else if err := names.CheckDNSLabel(d.Metadata.Name); err != nil {
		errs = append(errs, fmt.Errorf("metadata.name: %s", err))
	}
	if d.Metadata.Namespace != "" {
		errs = append(errs, fmt.Errorf("metadata.namespace: a Namespace belongs to no namespace, got %q", d.Metadata.Namespace))
	}
	if err := joinErrors(errs); err != nil {
		return nil, fmt.Errorf("(%s, line %d): %w", strings.TrimSpace("Namespace "+d.Metadata.Name), doc.line, err)
	}
	return &model.Namespace{Name: d.Metadata.Name, Labels: d.Metadata.Labels}, nil
}
