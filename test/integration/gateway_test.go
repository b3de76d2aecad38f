package integration

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
	"github.com/sinewmesh/sinew/proxy"
)

// tlsSecretYAML is a Secret of type kubernetes.io/tls named name holding a new self-signed certificate for
// hosts, and the certificate, for clients to trust.
func tlsSecretYAML(t *testing.T, name, cn string, hosts ...string) (string, *x509.Certificate) {
	t.Helper()
	certPEM, keyPEM, cert := testutil.SelfSigned(t, cn, hosts...)
	indent := func(b []byte) string {
		return "    " + strings.ReplaceAll(strings.TrimSpace(string(b)), "\n", "\n    ")
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata: {name: %s, namespace: test}
type: kubernetes.io/tls
stringData:
  tls.crt: |
%s
  tls.key: |
%s
`, name, indent(certPEM), indent(keyPEM)), cert
}

// gatewayYAML: Gateway edge (GatewayClass sinew) with an HTTP listener for any host on port 80, an HTTPS listener
// for *.example.com on 443 with the Secret edge-cert, and an HTTPS listener on 8443 whose Secret does not exist.
// Route shop serves shop.example.com: /split is split 50/50 between web and canary, /moved is redirected to
// new.example.com, /fail (which web always fails) is retried twice, everything else goes to web.
const gatewayYAML = `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: sinew}
spec: {controllerName: sinew.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge, namespace: test}
spec:
  gatewayClassName: sinew
  listeners:
  - {name: http, protocol: HTTP, port: 80}
  - name: https
    protocol: HTTPS
    port: 443
    hostname: "*.example.com"
    tls: {mode: Terminate, certificateRefs: [{name: edge-cert}]}
  - name: broken
    protocol: HTTPS
    port: 8443
    tls: {mode: Terminate, certificateRefs: [{name: no-such-secret}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shop, namespace: test}
spec:
  parentRefs: [{name: edge}]
  hostnames: [shop.example.com]
  rules:
  - matches: [{path: {type: PathPrefix, value: /split}}]
    backendRefs: [{name: web-svc, port: 80, weight: 50}, {name: canary-svc, port: 80, weight: 50}]
  - matches: [{path: {type: PathPrefix, value: /moved}}]
    filters: [{type: RequestRedirect, requestRedirect: {hostname: new.example.com}}]
  - matches: [{path: {type: Exact, value: /fail}}]
    retry: {attempts: 2, codes: [500]}
    backendRefs: [{name: web-svc, port: 80}]
  - backendRefs: [{name: web-svc, port: 80}]
`

// TestGateway: sinew's ingress gateway in local mode, a real gateway proxy in front of two meshed workloads.
// Requests for shop.example.com reach web over mTLS with the gateway's identity, over HTTP and over HTTPS (h2 and
// HTTP/1.1, the certificate chosen by SNI); other host names get 404; a redirect without a scheme keeps the
// request's (https on the HTTPS listener); a rule's retries apply; the split holds; a listener whose Secret is
// missing is left out while the others serve; a new certificate and a changed route apply without a restart; and a
// Server on the gateway's port authorizes clients by network at the edge.
func TestGateway(t *testing.T) {
	t.Parallel()
	m := startMesh(t, meshOpts{})
	web := m.sidecar(sidecarOpts{ns: "test", name: "web", sa: "web-sa", inbound: []proxy.InboundPort{{Port: 8080, App: httpApp(t, "web", false)}}})
	canary := m.sidecar(sidecarOpts{ns: "test", name: "canary", sa: "canary-sa", inbound: []proxy.InboundPort{{Port: 8080, App: httpApp(t, "canary", false)}}})
	m.write("apps.yaml", workloadYAML("test", "web", "web-sa", "web", web.inboundPort(), 8080)+"---\n"+
		serviceYAML("test", "web-svc", "web", 80, 8080)+"---\n"+
		workloadYAML("test", "canary", "canary-sa", "canary", canary.inboundPort(), 8080)+"---\n"+
		serviceYAML("test", "canary-svc", "canary", 80, 8080)+"---\n"+
		workloadYAML("test", "sinew-gateway-edge", "sinew-gateway-edge", "edge-gateway", 0, 9))
	secret, cert := tlsSecretYAML(t, "edge-cert", "first", "*.example.com")
	m.write("secret.yaml", secret)
	m.write("gateway.yaml", gatewayYAML)
	web.waitReady(t)
	canary.waitReady(t)

	gw := startProxy(t, m, "", "sinew-gateway-edge", "sinew-gateway-edge", func(c *proxy.Config) {
		c.Mode = proxy.ModeGateway
		c.Gateway = "test/edge"
		c.GatewayHost = "127.0.0.1"
		c.GatewayPortMap = map[uint16]uint16{80: 0, 443: 0, 8443: 0} // any free port
		c.PolicyAddr = m.cp.PolicyAddr()
	})
	var addrs map[uint16]string
	eventually(t, 10*time.Second, "gateway listeners bound", func() error {
		if addrs = gw.GatewayAddrs(); addrs[80] == "" || addrs[443] == "" {
			return fmt.Errorf("bound: %v", addrs)
		}
		return nil
	})
	if a, ok := addrs[8443]; ok {
		t.Errorf("the listener without its Secret is served at %s", a)
	}

	gatewayID := spiffeID("test", "sinew-gateway-edge")
	plain := &http.Client{Timeout: 5 * time.Second}
	get := func(c *http.Client, url, host string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		req.Host = host
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("GET %s (Host %s): %v", url, host, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	httpURL := "http://" + addrs[80]
	eventually(t, 10*time.Second, "the route in force", func() error {
		if resp, _ := get(plain, httpURL+"/page", "shop.example.com"); resp.StatusCode != 200 {
			return fmt.Errorf("%d", resp.StatusCode)
		}
		return nil
	})
	resp, body := get(plain, httpURL+"/page", "shop.example.com")
	if resp.Header.Get("x-served-by") != "web" || resp.Header.Get("x-seen-client-id") != gatewayID || body != "web /page " {
		t.Errorf("HTTP: %d %q from %q, client %q", resp.StatusCode, body, resp.Header.Get("x-served-by"), resp.Header.Get("x-seen-client-id"))
	}
	if resp, _ := get(plain, httpURL+"/page", "other.example.org"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("a host no route serves: %d, want 404", resp.StatusCode)
	}

	// HTTPS, with the certificate of the listener that serves the client's server name.
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	httpsURL := "https://" + addrs[443]
	for _, h2 := range []bool{true, false} {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "shop.example.com"}, ForceAttemptHTTP2: h2}
		if !h2 {
			tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		}
		c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
		resp, body := get(c, httpsURL+"/secure", "shop.example.com")
		if resp.StatusCode != 200 || body != "web /secure " || resp.Header.Get("x-seen-client-id") != gatewayID || (resp.ProtoMajor == 2) != h2 {
			t.Errorf("HTTPS (h2 %v): %s %d %q, client %q", h2, resp.Proto, resp.StatusCode, body, resp.Header.Get("x-seen-client-id"))
		}
		// A redirect that names no scheme keeps the request's.
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		if resp, _ := get(c, httpsURL+"/moved", "shop.example.com"); resp.StatusCode != http.StatusFound ||
			resp.Header.Get("Location") != "https://new.example.com/moved" {
			t.Errorf("HTTPS redirect (h2 %v): %d to %q, want 302 to https://new.example.com/moved", h2, resp.StatusCode, resp.Header.Get("Location"))
		}
		tr.CloseIdleConnections()
	}
	noFollow := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if resp, _ := get(noFollow, httpURL+"/moved", "shop.example.com"); resp.StatusCode != http.StatusFound ||
		resp.Header.Get("Location") != "http://new.example.com/moved" {
		t.Errorf("HTTP redirect: %d to %q, want 302 to http://new.example.com/moved", resp.StatusCode, resp.Header.Get("Location"))
	}

	// The route's retries: web fails /fail every time, so the client gets web's 500 after three attempts.
	if resp, body := get(plain, httpURL+"/fail", "shop.example.com"); resp.StatusCode != http.StatusInternalServerError || body != "web /fail " {
		t.Errorf("/fail: %d %q, want web's 500", resp.StatusCode, body)
	}

	// The split, over HTTP.
	served := map[string]int{}
	for range 200 {
		resp, _ := get(plain, httpURL+"/split", "shop.example.com")
		served[resp.Header.Get("x-served-by")]++
	}
	if served["web"] < 60 || served["canary"] < 60 || served["web"]+served["canary"] != 200 {
		t.Errorf("50/50 split over 200 requests: %v", served)
	}

	// A new certificate applies to the next handshake; a changed route to the next request.
	secret2, cert2 := tlsSecretYAML(t, "edge-cert", "second", "*.example.com")
	m.write("secret.yaml", secret2)
	pool.AddCert(cert2)
	eventually(t, 10*time.Second, "the new certificate served", func() error {
		conn, err := tls.Dial("tcp", addrs[443], &tls.Config{RootCAs: pool, ServerName: "shop.example.com"})
		if err != nil {
			return err
		}
		defer conn.Close()
		if cn := conn.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != "second" {
			return fmt.Errorf("certificate %q", cn)
		}
		return nil
	})
	m.write("route2.yaml", `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: canary-only, namespace: test}
spec:
  parentRefs: [{name: edge, sectionName: http}]
  hostnames: [canary.example.com]
  rules:
  - backendRefs: [{name: canary-svc, port: 80}]
`)
	eventually(t, 10*time.Second, "the new route in force", func() error {
		if resp, _ := get(plain, httpURL+"/", "canary.example.com"); resp.Header.Get("x-served-by") != "canary" {
			return fmt.Errorf("%d from %q", resp.StatusCode, resp.Header.Get("x-served-by"))
		}
		return nil
	})

	// The edge's authorization: a Server on the gateway's port 80 that admits only 10.0.0.0/8 refuses this client;
	// 127.0.0.0/8 admits it again.
	edgePolicy := func(cidr string) string {
		return `apiVersion: policy.sinew.dev/v1alpha1
kind: Server
metadata: {name: edge-http, namespace: test}
spec:
  workloadSelector: {matchLabels: {app: edge-gateway}}
  port: 80
---
apiVersion: policy.sinew.dev/v1alpha1
kind: NetworkAuthentication
metadata: {name: clients, namespace: test}
spec:
  networks: [{cidr: ` + cidr + `}]
---
apiVersion: policy.sinew.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: edge-clients, namespace: test}
spec:
  targetRef: {group: policy.sinew.dev, kind: Server, name: edge-http}
  requiredAuthenticationRefs: [{group: policy.sinew.dev, kind: NetworkAuthentication, name: clients}]
`
	}
	m.write("edge-policy.yaml", edgePolicy("10.0.0.0/8"))
	eventually(t, 10*time.Second, "clients outside 10.0.0.0/8 refused at the edge", func() error {
		if resp, _ := get(plain, httpURL+"/page", "shop.example.com"); resp.StatusCode != http.StatusForbidden {
			return fmt.Errorf("%d", resp.StatusCode)
		}
		return nil
	})
	m.write("edge-policy.yaml", edgePolicy("127.0.0.0/8"))
	eventually(t, 10*time.Second, "loopback clients admitted at the edge", func() error {
		if resp, _ := get(plain, httpURL+"/page", "shop.example.com"); resp.StatusCode != 200 {
			return fmt.Errorf("%d", resp.StatusCode)
		}
		return nil
	})

	// The gateway is metered as the client of its backends: over mTLS, with their labels.
	mresp, err := plain.Get("http://" + gw.AdminAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	if v := metricValue(string(text), "response_total", `direction="outbound"`, `tls="true"`, `dst_pod="canary"`, `status_code="200"`); v < 60 {
		t.Errorf("outbound responses from canary over mTLS: %v\n%s", v, grep(string(text), "response_total"))
	}
	// The one request to /fail was tried three times: one 500 inbound, three outbound to web.
	if in, out := metricValue(string(text), "response_total", `direction="inbound"`, `status_code="500"`),
		metricValue(string(text), "response_total", `direction="outbound"`, `dst_pod="web"`, `status_code="500"`); in != 1 || out != 3 {
		t.Errorf("/fail: %v inbound and %v outbound 500s, want 1 and 3 (two retries)", in, out)
	}
	// And as a workload of its own: every request it took, inbound, whoever answered it.
	if v := metricValue(string(text), "response_total", `direction="inbound"`, `status_code="200"`); v < 200 {
		t.Errorf("inbound 200s: %v\n%s", v, grep(string(text), "response_total"))
	}
	for _, code := range []string{"403", "404"} {
		if v := metricValue(string(text), "response_total", `direction="inbound"`, `status_code="`+code+`"`); v < 1 {
			t.Errorf("inbound %ss: %v\n%s", code, v, grep(string(text), "response_total"))
		}
	}
	if v := metricValue(string(text), "outbound_http_route_backend_requests_total", `parent_kind="Gateway"`, `parent_name="edge"`, `route_name="shop"`); v < 200 {
		t.Errorf("route metrics with the Gateway as parent: %v\n%s", v, grep(string(text), "outbound_http_route_backend_requests_total"))
	}
}
