//go:build e2e

package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sinewmesh/sinew/internal/testutil"
)

const (
	gatewayName    = "emojivoto"
	gatewayHost    = "emojivoto.example"
	gatewayDeploy  = "sinew-gateway-" + gatewayName
	gatewayAccount = "sinew-gateway-" + gatewayName
)

// gatewayManifest: Gateway emojivoto of GatewayClass sinew (a ClusterIP Service: the local cluster has no load
// balancer) with an HTTPS listener for emojivoto.example (the Secret emojivoto-tls, %[1]s) and a plain HTTP one,
// and an HTTPRoute that splits emojivoto.example 90/10 between web-primary and web-canary.
const gatewayManifest = `apiVersion: v1
kind: Secret
metadata: {name: emojivoto-tls, namespace: emojivoto}
type: kubernetes.io/tls
stringData:
%[1]s
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: ` + gatewayName + `
  namespace: emojivoto
  annotations: {sinew.dev/gateway-service-type: ClusterIP}
spec:
  gatewayClassName: sinew
  listeners:
  - name: https
    protocol: HTTPS
    port: 443
    hostname: ` + gatewayHost + `
    tls: {mode: Terminate, certificateRefs: [{name: emojivoto-tls}]}
  - {name: http, protocol: HTTP, port: 80}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: emojivoto-edge, namespace: emojivoto}
spec:
  parentRefs: [{name: ` + gatewayName + `}]
  hostnames: [` + gatewayHost + `]
  rules:
  - backendRefs:
    - {name: web-primary, port: 80, weight: 90}
    - {name: web-canary, port: 80, weight: 10}
`

// gatewayJWTPolicy: on the gateway's HTTPS port, /api/vote needs a token of alice of the Secret's issuer (keys
// from the Secret web-jwks of secretJWKS); everything else is open to any client network.
const gatewayJWTPolicy = `apiVersion: policy.sinew.dev/v1alpha1
kind: Server
metadata: {name: edge-https, namespace: emojivoto}
spec:
  podSelector: {matchLabels: {gateway.networking.k8s.io/gateway-name: ` + gatewayName + `}}
  port: 443
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: edge-vote, namespace: emojivoto}
spec:
  parentRefs: [{group: policy.sinew.dev, kind: Server, name: edge-https}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api/vote}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: edge-public, namespace: emojivoto}
spec:
  parentRefs: [{group: policy.sinew.dev, kind: Server, name: edge-https}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /}}]
---
apiVersion: policy.sinew.dev/v1alpha1
kind: NetworkAuthentication
metadata: {name: anywhere, namespace: emojivoto}
spec:
  networks: [{cidr: 0.0.0.0/0}, {cidr: "::/0"}]
---
apiVersion: policy.sinew.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: edge-public, namespace: emojivoto}
spec:
  targetRef: {group: gateway.networking.k8s.io, kind: HTTPRoute, name: edge-public}
  requiredAuthenticationRefs: [{group: policy.sinew.dev, kind: NetworkAuthentication, name: anywhere}]
---
apiVersion: policy.sinew.dev/v1alpha1
kind: JWTAuthentication
metadata: {name: voters, namespace: emojivoto}
spec:
  issuers:
` + secretIssuer + `  principals: [` + issuerSecret + `/alice]
---
apiVersion: policy.sinew.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: edge-vote, namespace: emojivoto}
spec:
  targetRef: {group: gateway.networking.k8s.io, kind: HTTPRoute, name: edge-vote}
  requiredAuthenticationRefs: [{group: policy.sinew.dev, kind: JWTAuthentication, name: voters}]
`

// TestGateway: sinew's own ingress gateway on the cluster. A Gateway of GatewayClass sinew becomes gateway proxies
// and a Service, and its status says so; emojivoto is served over HTTPS with the Gateway's certificate, split 90/10
// between web-primary and web-canary, over mTLS with the gateway's identity; a JWT protects /api/vote at the edge;
// deleting the Gateway removes everything made for it, and uninstalling sinew leaves nothing.
func TestGateway(t *testing.T) {
	e := loadEnv(t)
	j := newJourney(t, cpNS, appNS)
	meshedEmojivotoSteps(j, e)

	j.step("gatewayclass-accepted", []string{"install"}, func(t *testing.T) {
		eventually(t, time.Minute, "GatewayClass sinew accepted", func() error {
			out, err := kubectlQuiet("get", "gatewayclass", "sinew", "-o", `jsonpath={.spec.controllerName} {.status.conditions[?(@.type=="Accepted")].status}`)
			if err != nil || strings.TrimSpace(out) != "sinew.dev/gateway-controller True" {
				return fmt.Errorf("GatewayClass sinew: %q %v", out, err)
			}
			return nil
		})
	})

	pool := x509.NewCertPool()
	var gatewayIP string
	j.step("gateway-programmed", []string{"emojivoto-meshed", "gatewayclass-accepted"}, func(t *testing.T) {
		must(t, time.Minute, fmt.Sprintf(canaryManifest, e.version), "kubectl", "apply", "-f", "-")
		kubectl(t, "-n", appNS, "rollout", "status", "deploy/web-canary", "--timeout=3m")
		secret, cert := tlsSecret(t, gatewayHost)
		pool.AddCert(cert)
		must(t, time.Minute, fmt.Sprintf(gatewayManifest, secret), "kubectl", "apply", "-f", "-")
		eventually(t, 3*time.Minute, "Gateway emojivoto programmed", func() error {
			out, err := kubectlQuiet("-n", appNS, "get", "gateway", gatewayName, "-o",
				`jsonpath={.status.conditions[?(@.type=="Accepted")].status} {.status.conditions[?(@.type=="Programmed")].status} {.status.addresses[0].value} {.status.listeners[*].attachedRoutes}`)
			if err != nil {
				return err
			}
			f := strings.Fields(out)
			if len(f) != 5 || f[0] != "True" || f[1] != "True" || f[3] != "1" || f[4] != "1" {
				return fmt.Errorf("Gateway status: Accepted Programmed address attachedRoutes = %q", out)
			}
			gatewayIP = f[2]
			return nil
		})
		kubectl(t, "-n", appNS, "rollout", "status", "deploy/"+gatewayDeploy, "--timeout=3m")
		// what the controller made: a proxy in gateway mode under the gateway's own service account, not injected
		out := kubectl(t, "-n", appNS, "get", "deploy", gatewayDeploy, "-o",
			`jsonpath={.spec.template.spec.serviceAccountName} {.spec.template.spec.containers[*].name} {.spec.template.spec.initContainers[*].name}`)
		if f := strings.Fields(out); len(f) != 2 || f[0] != gatewayAccount || f[1] != "sinew-proxy" {
			t.Errorf("Deployment %s: service account, containers, init containers = %q; want %s, only sinew-proxy", gatewayDeploy, out, gatewayAccount)
		}
		route := kubectl(t, "-n", appNS, "get", "httproute", "emojivoto-edge", "-o",
			`jsonpath={.status.parents[?(@.parentRef.name=="`+gatewayName+`")].conditions[?(@.type=="Accepted")].status}`)
		if strings.TrimSpace(route) != "True" {
			t.Errorf("HTTPRoute emojivoto-edge not accepted by the Gateway: %q", route)
		}
	})

	client := func() *http.Client {
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
			TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: gatewayHost}}}
	}
	viaGateway := func(path string, header map[string]string) (answer, error) {
		req, err := http.NewRequest(http.MethodGet, "https://"+gatewayIP+":443"+path, nil)
		if err != nil {
			return answer{}, err
		}
		req.Host = gatewayHost
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := client().Do(req)
		if err != nil {
			return answer{}, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return answer{code: resp.StatusCode, header: resp.Header, body: string(b)}, err
	}

	j.step("gateway-https-split", []string{"gateway-programmed"}, func(t *testing.T) {
		eventually(t, 2*time.Minute, "emojivoto over HTTPS through the gateway", func() error {
			a, err := viaGateway("/api/list", nil)
			if err != nil || a.code != 200 || !strings.Contains(a.body, ":doughnut:") {
				return fmt.Errorf("GET https://%s/api/list: %s %v", gatewayHost, a, err)
			}
			return nil
		})
		gw := strings.TrimSpace(kubectl(t, "-n", appNS, "get", "pods", "-l", "gateway.networking.k8s.io/gateway-name="+gatewayName,
			"--field-selector=status.phase=Running", "-o", "jsonpath={.items[0].status.podIP}"))
		count := func() (primary, canary float64) {
			s := metricsOf(t, gw)
			return sum(s, "response_total", map[string]string{"direction": "outbound", "tls": "true", "dst_service": "web-primary"}),
				sum(s, "response_total", map[string]string{"direction": "outbound", "tls": "true", "dst_service": "web-canary"})
		}
		p0, c0 := count()
		const n = 400
		failed := 0
		for range n {
			if a, err := viaGateway("/api/list", nil); err != nil || a.code != 200 {
				failed++
			}
		}
		p1, c1 := count()
		share := (c1 - c0) / (p1 + c1 - p0 - c0)
		t.Logf("through the gateway: %d requests, %d failed; web-primary %.0f, web-canary %.0f (%.1f %%)", n, failed, p1-p0, c1-c0, 100*share)
		if failed > 0 || p1+c1-p0-c0 < n || share < 0.04 || share > 0.18 {
			t.Errorf("want every request answered and about 10 %% at web-canary")
		}
		// web saw the gateway's identity over mTLS
		s := metricsOf(t, podIP(t, "web-svc"))
		if v := sum(s, "request_total", map[string]string{"direction": "inbound", "tls": "true", "client_id": spiffeID(gatewayAccount)}); v < 1 {
			t.Errorf("web's proxy counted no mTLS requests from %s:\n%s", gatewayAccount, grepSamples(s, "request_total"))
		}
	})

	// The gateway is a workload like any other in viz: its own row in `viz stat`, an edge to web, secured.
	j.step("gateway-in-viz", []string{"gateway-https-split"}, func(t *testing.T) {
		installViz(t, e)
		checkViz(t, e)
		defer keepCalling(100*time.Millisecond, func() { _, _ = viaGateway("/api/list", nil) })()
		eventually(t, 3*time.Minute, "the gateway in `viz stat` with traffic and in `viz edges` to web, secured", func() error {
			r := run(time.Minute, "", e.sinew, "viz", "stat", "-n", appNS, "deploy")
			if r.err != nil {
				return fmt.Errorf("%s", r)
			}
			rows, err := parseTable(r.stdout)
			if err != nil {
				return fmt.Errorf("%v\n%s", err, r)
			}
			if row, ok := rows[gatewayDeploy]; !ok || number(row["RPS"]) <= 0 || number(row["SUCCESS"]) != 100 {
				return fmt.Errorf("no row for %s with traffic, all successful:\n%s", gatewayDeploy, r.stdout)
			}
			r = run(time.Minute, "", e.sinew, "viz", "edges", "deploy", "-n", appNS)
			if r.err != nil {
				return fmt.Errorf("%s", r)
			}
			for l := range strings.Lines(r.stdout) {
				if f := strings.Fields(l); len(f) >= 5 && f[0] == gatewayDeploy && f[1] == "web" && f[4] == "√" {
					t.Logf("viz stat and edges:\n%s", r.stdout)
					return nil
				}
			}
			return fmt.Errorf("no secured edge %s → web:\n%s", gatewayDeploy, r.stdout)
		})
	})

	j.step("gateway-jwt", []string{"gateway-https-split"}, func(t *testing.T) {
		key := newSigningKey(t, "gw-1")
		must(t, time.Minute, fmt.Sprintf(secretJWKS, key.jwks(t))+"---\n"+gatewayJWTPolicy, "kubectl", "apply", "-f", "-")
		want := func(what, path string, code int, header map[string]string) {
			t.Helper()
			eventually(t, 2*time.Minute, what, func() error {
				a, err := viaGateway(path, header)
				if err != nil || a.code != code {
					return fmt.Errorf("GET %s: %s %v, want %d", path, a, err, code)
				}
				return nil
			})
		}
		vote := "/api/vote?choice=:joy:"
		want("a vote without a token answered 401 at the edge", vote, 401, nil)
		want("bob's vote forbidden", vote, 403, bearer(key.token(t, issuerSecret, "bob")))
		want("alice's vote admitted", vote, 200, bearer(key.token(t, issuerSecret, "alice")))
		want("the list still open to anyone", "/api/list", 200, nil)
		kubectl(t, "-n", appNS, "delete", "authorizationpolicy", "edge-vote", "edge-public")
		kubectl(t, "-n", appNS, "delete", "httproute", "edge-vote", "edge-public")
		kubectl(t, "-n", appNS, "delete", "server", "edge-https")
		want("votes without a token again once the Server is gone", vote, 200, nil)
	})

	j.step("gateway-deleted", []string{"gateway-programmed"}, func(t *testing.T) {
		kubectl(t, "-n", appNS, "delete", "gateway", gatewayName, "--wait=true", "--timeout=2m")
		eventually(t, 2*time.Minute, "what was made for the Gateway removed", func() error {
			out, err := kubectlQuiet("-n", appNS, "get", "deploy,svc,sa", "-l", "gateway.networking.k8s.io/gateway-name="+gatewayName, "-o", "name")
			if err != nil || strings.TrimSpace(out) != "" {
				return fmt.Errorf("left: %q %v", out, err)
			}
			return nil
		})
	})

	j.step("uninstall-leaves-nothing", []string{"gateway-deleted"}, func(t *testing.T) {
		kubectl(t, "delete", "ns", appNS, "--wait=true", "--timeout=3m")
		pipe(t, 3*time.Minute, []string{e.sinew, "viz", "uninstall"}, []string{"kubectl", "delete", "--ignore-not-found", "-f", "-"})
		pipe(t, 3*time.Minute, []string{e.sinew, "uninstall"}, []string{"kubectl", "delete", "--ignore-not-found", "-f", "-"})
		if out, err := kubectlQuiet("get", "gatewayclass", "-o", "name"); err != nil || strings.Contains(out, "gatewayclass.gateway.networking.k8s.io/sinew") {
			t.Errorf("GatewayClass sinew left after uninstall: %q %v", out, err)
		}
		removeLeftovers(t)
	})
	j.summary()
}

// spiffeID is the identity of service account sa of emojivoto's namespace in the cluster's trust domain.
func spiffeID(sa string) string { return "spiffe://cluster.local/ns/" + appNS + "/sa/" + sa }

// tlsSecret makes a self-signed certificate for host and returns the stringData lines of a kubernetes.io/tls
// Secret holding it (indented for gatewayManifest) and the certificate, for clients to trust.
func tlsSecret(t *testing.T, host string) (string, *x509.Certificate) {
	t.Helper()
	certPEM, keyPEM, cert := testutil.SelfSigned(t, host, host)
	indent := func(b []byte) string {
		return "    " + strings.ReplaceAll(strings.TrimSpace(string(b)), "\n", "\n    ")
	}
	return "  tls.crt: |\n" + indent(certPEM) + "\n  tls.key: |\n" + indent(keyPEM), cert
}
