package local

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/sinewmesh/sinew/internal/testutil"
)

// keyPair returns a self-signed certificate for host and its key, both PEM.
func keyPair(t *testing.T, host string) (chain, key string) {
	c, k, _ := testutil.SelfSigned(t, host, host)
	return string(c), string(k)
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// indent puts a PEM block under a YAML block scalar.
func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n    ")
}

// TestParseGatewayKinds: a Gateway, its GatewayClass, a ReferenceGrant, TLS Secrets from data (base64) and
// stringData, a Namespace with labels; a Secret of another type is ignored.
func TestParseGatewayKinds(t *testing.T) {
	t.Parallel()
	chain, key := keyPair(t, "shop.example.com")
	p, err := parseFile("gateway.yaml", []byte(`apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: sinew}
spec: {controllerName: sinew.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge, namespace: shop}
spec:
  gatewayClassName: sinew
  listeners:
  - {name: http, port: 8080, protocol: HTTP}
  - name: https
    port: 8443
    protocol: HTTPS
    hostname: shop.example.com
    tls: {certificateRefs: [{name: shop-tls}, {name: other, namespace: certs}]}
    allowedRoutes: {namespaces: {from: Selector, selector: {matchLabels: {edge: "yes"}}}}
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: certs-to-shop, namespace: certs}
spec:
  from: [{group: gateway.networking.k8s.io, kind: Gateway, namespace: shop}]
  to: [{group: "", kind: Secret}]
---
apiVersion: v1
kind: Secret
metadata: {name: shop-tls, namespace: shop}
type: kubernetes.io/tls
data:
  tls.crt: `+b64(chain)+`
  tls.key: `+b64(key)+`
---
apiVersion: v1
kind: Secret
metadata: {name: other, namespace: certs}
type: kubernetes.io/tls
stringData:
  tls.crt: |
`+indent(chain)+`
  tls.key: |
`+indent(key)+`
---
apiVersion: v1
kind: Secret
metadata: {name: password}
type: Opaque
data: {password: aHVudGVyMg==}
---
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {edge: "yes"}}
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.gatewayClasses) != 1 || len(p.gateways) != 1 || len(p.referenceGrants) != 1 || len(p.secrets) != 2 ||
		len(p.namespaces) != 1 || len(p.ignored) != 1 {
		t.Fatalf("got %d classes, %d gateways, %d grants, %d secrets, %d namespaces, %d ignored", len(p.gatewayClasses),
			len(p.gateways), len(p.referenceGrants), len(p.secrets), len(p.namespaces), len(p.ignored))
	}
	if gw := p.gateways[0]; gw.Namespace != "shop" || len(gw.Spec.Listeners) != 2 || *gw.Spec.Listeners[1].Hostname != "shop.example.com" {
		t.Errorf("gateway: %+v", gw.Spec)
	}
	if c := p.gatewayClasses[0]; c.Namespace != "" || c.Spec.ControllerName != "sinew.dev/gateway-controller" {
		t.Errorf("class: %+v", c)
	}
	for _, sec := range p.secrets {
		if string(sec.Chain) != chain || strings.TrimSpace(string(sec.PrivateKey)) != strings.TrimSpace(key) {
			t.Errorf("secret %s: data not read back", sec.Key())
		}
	}
	if p.secrets[1].Key() != "certs/other" || p.namespaces[0].Labels["edge"] != "yes" {
		t.Errorf("secret %s, namespace %+v", p.secrets[1].Key(), p.namespaces[0])
	}
}

// TestParseGatewayErrors: each mistake refuses the file, naming the file, the document, the object and the
// field; a Secret's errors never show its data.
func TestParseGatewayErrors(t *testing.T) {
	t.Parallel()
	chain, key := keyPair(t, "a.example.com")
	_, otherKey := keyPair(t, "b.example.com")
	for _, tc := range []struct{ name, doc, want string }{
		{"gateway apiVersion", `apiVersion: gateway.networking.k8s.io/v2
kind: Gateway
metadata: {name: g}`, "gw.yaml: document 2 (Gateway, line 4): apiVersion: must be gateway.networking.k8s.io/v1 or gateway.networking.k8s.io/v1beta1"},
		{"unknown field", `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: g}
spec: {listenerz: []}`, `gw.yaml: document 2 (Gateway, line 4): json: unknown field "listenerz"`},
		{"invalid gateway", `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: g}
spec:
  listeners:
  - {name: a, port: 80, protocol: HTTP, tls: {certificateRefs: [{name: x}]}}
  - {name: a, port: 0, protocol: HTTPS, hostname: "*.Example.com", tls: {mode: Passthrough}}
  - {name: c, port: 80, protocol: HTTP}`, "gw.yaml: document 2 (Gateway g, line 4): spec.gatewayClassName: required; " +
			"spec.listeners[0].tls: must not be specified for protocol HTTP; " +
			"spec.listeners[1].port: must be 1-65535, got 0; " +
			`spec.listeners[1].hostname: "*.Example.com" is not a host name (lower case; a wildcard only as the first label, *.example.com); ` +
			"spec.listeners[1].tls.mode: must be Terminate for protocol HTTPS, got Passthrough; " +
			`spec.listeners[1].name: "a" is also spec.listeners[0]'s: listener names must be unique; ` +
			`spec.listeners[2]: port 80, protocol HTTP and hostname "" are also spec.listeners[0]'s: each combination must be unique`},
		{"class with namespace", `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: sinew, namespace: x}
spec: {controllerName: sinew}`, `gw.yaml: document 2 (GatewayClass sinew, line 4): metadata.namespace: a GatewayClass belongs to no namespace, got "x"; ` +
			`spec.controllerName: "sinew" is not a domain-prefixed path (example.com/gateway-controller)`},
		{"grant", `apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: g}
spec: {from: [{group: "", kind: HTTPRoute}]}`, "gw.yaml: document 2 (ReferenceGrant g, line 4): spec.from[0].namespace: required; spec.to: 1 to 16 entries, got 0"},
		{"secret without key", `apiVersion: v1
kind: Secret
metadata: {name: s}
type: kubernetes.io/tls
data: {tls.crt: ` + b64(chain) + `}`, "gw.yaml: document 2 (Secret s, line 4): data.tls.key: required for a Secret of type kubernetes.io/tls"},
		{"secret not base64", `apiVersion: v1
kind: Secret
metadata: {name: s}
type: kubernetes.io/tls
data: {tls.crt: "not base64!", tls.key: ` + b64(key) + `}`, "gw.yaml: document 2 (Secret s, line 4): data.tls.crt: not base64 (stringData takes text)"},
		{"secret bad PEM", `apiVersion: v1
kind: Secret
metadata: {name: s}
type: kubernetes.io/tls
stringData: {tls.crt: hello, tls.key: world}`, "gw.yaml: document 2 (Secret s, line 4): data.tls.crt, data.tls.key: tls.crt holds no PEM certificate"},
		{"secret key mismatch", `apiVersion: v1
kind: Secret
metadata: {name: s, namespace: shop}
type: kubernetes.io/tls
data: {tls.crt: ` + b64(chain) + `, tls.key: ` + b64(otherKey) + `}`, "gw.yaml: document 2 (Secret s, line 4): data.tls.crt, data.tls.key: the private key in tls.key does not match the certificate in tls.crt"},
		{"namespace", `apiVersion: v1
kind: Namespace
metadata: {name: Shop}`, "gw.yaml: document 2 (Namespace Shop, line 4): metadata.name:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseFile("gw.yaml", []byte("kind: Workload\nmetadata: {name: w}\n---\n"+tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v\nwant it to contain %s", err, tc.want)
			}
			if err != nil && (strings.Contains(err.Error(), "PRIVATE") || strings.Contains(err.Error(), b64(key)[:20])) {
				t.Errorf("the error shows key material: %v", err)
			}
		})
	}
}

// TestGatewayKindsReachTheModel: the source hands the gateway kinds to the model, and a duplicate in a later
// file is reported and ignored.
func TestGatewayKindsReachTheModel(t *testing.T) {
	t.Parallel()
	chain, key := keyPair(t, "a.example.com")
	dir := t.TempDir()
	class := "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: sinew}\nspec: {controllerName: sinew.dev/gateway-controller}\n"
	write(t, dir, "1.yaml", class+`---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge}
spec:
  gatewayClassName: sinew
  listeners: [{name: http, port: 8080, protocol: HTTP}]
---
apiVersion: v1
kind: Secret
metadata: {name: tls}
type: kubernetes.io/tls
data: {tls.crt: `+b64(chain)+`, tls.key: `+b64(key)+`}
---
apiVersion: v1
kind: Namespace
metadata: {name: default, labels: {a: b}}
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: g}
spec: {from: [{group: "", kind: HTTPRoute, namespace: x}], to: [{group: "", kind: Service}]}
`)
	write(t, dir, "2.yaml", class)
	s, err := New(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r := s.Resources()
	if len(r.Gateways) != 1 || len(r.GatewayClasses) != 1 || len(r.TLSSecrets) != 1 || len(r.Namespaces) != 1 || len(r.ReferenceGrants) != 1 {
		t.Fatalf("%+v", r.GatewayResources)
	}
	if len(r.Errors) != 1 || !strings.Contains(r.Errors[0].Message, "2.yaml: GatewayClass sinew is already defined in 1.yaml") {
		t.Errorf("errors: %+v", r.Errors)
	}
}
