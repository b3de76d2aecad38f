package peers

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/sinewmesh/sinew/internal/names"
)

// S12's edge hop: HTTPS from a client outside the mesh to an edge proxy, which terminates it with the harness's
// server certificate and carries the request over mTLS to the server-side proxy in front of the app. sinew's edge
// is its ingress gateway: sinew-proxy in gateway mode serving a Gateway of GatewayClass sinew with an HTTPS
// listener, configured by the control plane from the Gateway API documents of EdgeDocs.

// EdgeGateway is the Gateway of the sinew edge (namespace bench); its proxy's workload and service account are
// names.GatewayResourceName of it, the only identity the policy service gives the Gateway's configuration to.
const EdgeGateway = "edge"

// edgeListenerPort is the Gateway's HTTPS listener port; the gateway proxy binds it on a free loopback port
// instead (SINEW_PROXY_GATEWAY_PORT_MAP), as every other peer binds a free port.
const edgeListenerPort = 443

// EdgeClientTLS is the client of the edge hop: TLS 1.3, trusting the harness's CA and verifying ServerName, no
// client certificate (a browser or an API client), HTTP/1.1 by ALPN (the load generator speaks HTTP/1.1; sinew's
// gateway offers h2 too).
func EdgeClientTLS(f TLSFiles) (*tls.Config, error) {
	pool, err := loadPool(f.CA)
	if err != nil {
		return nil, err
	}
	return &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool, ServerName: ServerName, NextProtos: []string{"http/1.1"}}, nil
}

// EdgeDocs are the documents of the sinew edge, besides the server's Workload and Service (sinewResources):
// GatewayClass sinew, Gateway EdgeGateway with one HTTPS listener (port 443, any host name) terminating TLS with
// the Secret edge-cert, that Secret (type kubernetes.io/tls) holding certPEM and keyPEM, an HTTPRoute attached to
// the Gateway sending everything to Service server port 80, and the gateway proxy's own Workload: address
// 127.0.0.1, no mesh port (nothing dials into it over mTLS), the Gateway's label, and the default inbound policy
// all-unauthenticated on its listener port (it faces clients outside the mesh), as local mode writes it.
func EdgeDocs(certPEM, keyPEM string) string {
	indent := func(s string) string {
		return "    " + strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n    ")
	}
	gw := names.GatewayResourceName(EdgeGateway)
	return fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: %[1]s}
spec: {controllerName: %[2]s}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: %[3]s, namespace: bench}
spec:
  gatewayClassName: %[1]s
  listeners:
  - name: https
    protocol: HTTPS
    port: %[4]d
    tls: {mode: Terminate, certificateRefs: [{name: edge-cert}]}
---
apiVersion: v1
kind: Secret
metadata: {name: edge-cert, namespace: bench}
type: kubernetes.io/tls
stringData:
  tls.crt: |
%[5]s
  tls.key: |
%[6]s
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: %[3]s, namespace: bench}
spec:
  parentRefs: [{name: %[3]s}]
  rules:
  - backendRefs: [{name: server, port: 80}]
---
apiVersion: sinew.dev/v1alpha1
kind: Workload
metadata:
  name: %[7]s
  namespace: bench
  labels: {%[8]s: %[3]s}
  annotations: {%[9]s: all-unauthenticated}
spec: {serviceAccount: %[7]s, address: 127.0.0.1, ports: [{name: https, port: %[4]d, protocol: http}]}
`, names.GatewayClass, names.GatewayController, EdgeGateway, edgeListenerPort, indent(certPEM), indent(keyPEM),
		gw, names.GatewayLabel, names.AnnDefaultInboundPolicy)
}

// edgeDocsFromFiles is EdgeDocs with the harness's server certificate and key, the ones nginx and HAProxy
// terminate the edge with.
func edgeDocsFromFiles(f TLSFiles) (string, error) {
	cert, err := os.ReadFile(f.ServerCert)
	if err != nil {
		return "", err
	}
	key, err := os.ReadFile(f.ServerKey)
	if err != nil {
		return "", err
	}
	return EdgeDocs(string(cert), string(key)), nil
}

// waitGatewayBound waits until the gateway proxy's log says its listener port is bound on addr. A port taken by
// another process between FreeAddr and the bind shows as the proxy's "cannot be bound" line (it would try again
// every few seconds): that is returned as an error naming the taken address, so that StartRetry starts the
// instance again on fresh ports.
func waitGatewayBound(ctx context.Context, p *Proc, addr string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		if p.Exited() {
			return fmt.Errorf("%s exited: %v\n%s", p.Name, p.err, p.Tail(2000))
		}
		if line := gatewayBindLine(p.Log(), addr); line != "" {
			if strings.Contains(line, "cannot be bound") {
				return fmt.Errorf("gateway listener %s: %s", addr, line)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gateway listener %s not bound: %w\n%s", addr, ctx.Err(), p.Tail(2000))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// gatewayBindLine is the first line of the log at path that reports binding the gateway's listener on addr, or
// failing to bind it ("" when neither has happened yet).
func gatewayBindLine(path, addr string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, "gateway listener port bound") && strings.Contains(line, addr) {
			return line
		}
		if strings.Contains(line, "gateway listener port cannot be bound") {
			return line
		}
	}
	return ""
}
