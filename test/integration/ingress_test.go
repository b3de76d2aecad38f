package integration

import (
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/sinewmesh/sinew/proxy"
)

// TestIngressMode: the proxy of an ingress controller (transparent, ingress mode, in its own network namespace)
// sends each request to the Service its authority names, whatever address the controller connected to. The
// controller here always connects to one address, a plain server outside the mesh (as a controller sends to its
// configured upstream, a ClusterIP or a pod): requests whose Host or sinew-dst-override names web-svc reach web
// over mTLS with the ingress's identity and get web-svc's route; the others go where the connection was going.
func TestIngressMode(t *testing.T) {
	ns := netnsForTest(t)
	m := startMesh(t, meshOpts{})
	web := m.sidecar(sidecarOpts{ns: "test", name: "web", sa: "web-sa", inbound: []proxy.InboundPort{{Port: 8080, App: httpApp(t, "web", false)}}})
	m.write("web.yaml", workloadYAML("test", "web", "web-sa", "web", web.inboundPort(), 8080)+"---\n"+serviceYAML("test", "web-svc", "web", 80, 8080))
	m.write("ingress.yaml", workloadYAML("test", "ingress", "ingress-sa", "ingress", 0, 9))
	// web-svc's route answers with a header of its own: what proves that the request was routed as web-svc's.
	m.write("route.yaml", `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web-route, namespace: test}
spec:
  parentRefs: [{group: "", kind: Service, name: web-svc, port: 80}]
  rules:
  - filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier: {set: [{name: x-route, value: web-route}]}
    backendRefs: [{name: web-svc, port: 80}]
`)
	web.waitReady(t)
	upstream := httpApp(t, "upstream", false) // outside the mesh
	upstreamPort := portOf(upstream)

	p := startTransparent(t, m, ns, "ingress", "ingress-sa", func(c *proxy.Config) {
		c.IngressMode = true
		c.PolicyAddr = m.cp.PolicyAddr()
	})
	capturePort(t, ns, p, upstreamPort)
	client := netnsClient(ns)
	get := func(host, override string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+upstream+"/page", nil)
		req.Host = host
		if override != "" {
			req.Header.Set("sinew-dst-override", override)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("Host %q override %q: %v", host, override, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	ingressID := spiffeID("test", "ingress-sa")
	for _, tc := range []struct {
		name, host, override string
		servedBy             string
	}{
		{"Host names the Service", "web-svc.test.svc.cluster.local", "", "web"},
		{"Host names it short, in the ingress's namespace", "web-svc", "", "web"},
		{"Host with the Service's port", "web-svc.test:80", "", "web"},
		{"the override header names it", "shop.example.com", "web-svc.test.svc.cluster.local:80", "web"},
		{"a public name goes where the connection was going", "shop.example.com", "", "upstream"},
		{"a name the mesh does not know too", "nothing.test", "", "upstream"},
		{"a port web-svc lacks too", "web-svc.test:8080", "", "upstream"},
	} {
		// The route arrives moments after the first answer about web-svc; wait for it once.
		var resp *http.Response
		eventually(t, 10*time.Second, tc.name, func() error {
			resp = get(tc.host, tc.override)
			if tc.servedBy == "web" && resp.Header.Get("x-route") == "" {
				return fmt.Errorf("%d from %q without web-svc's route", resp.StatusCode, resp.Header.Get("x-served-by"))
			}
			return nil
		})
		if resp.StatusCode != 200 || resp.Header.Get("x-served-by") != tc.servedBy {
			t.Errorf("%s: %d from %q, want 200 from %q", tc.name, resp.StatusCode, resp.Header.Get("x-served-by"), tc.servedBy)
			continue
		}
		if tc.servedBy == "web" {
			if id := resp.Header.Get("x-seen-client-id"); id != ingressID {
				t.Errorf("%s: web saw client %q, want the ingress's identity %q (mTLS)", tc.name, id, ingressID)
			}
			if h := resp.Header.Get("x-seen-host"); h != tc.host {
				t.Errorf("%s: web saw Host %q, want the client's %q", tc.name, h, tc.host)
			}
		} else if resp.Header.Get("x-route") != "" {
			t.Errorf("%s: got web-svc's route", tc.name)
		}
	}
	// Both kinds are metered: the routed requests over mTLS to web, the others to the address outside the mesh.
	resp, err := client.Get("http://" + p.AdminAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if v := metricValue(string(text), "response_total", `direction="outbound"`, `authority="shop.example.com"`, `tls="true"`, `dst_pod="web"`, `status_code="200"`); v < 1 {
		t.Errorf("no outbound response_total over mTLS for the overridden requests\n%s", grep(string(text), "response_total"))
	}
	if v := metricValue(string(text), "response_total", `direction="outbound"`, `authority="nothing.test"`, `tls="no_identity"`, `status_code="200"`); v < 1 {
		t.Errorf("no outbound response_total for the requests that fell back\n%s", grep(string(text), "response_total"))
	}
}
