package peers

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/sinewmesh/sinew/bench/internal/h2load"
	"github.com/sinewmesh/sinew/internal/names"
)

// Sinew is a sinew-controller in local mode plus one (Hop) or two (Mesh) sinew-proxy processes in
// explicit mode. In Hop the client proxy's outbound port leads to an unmeshed Workload (the app itself),
// so the request crosses exactly one proxy in plaintext; in Mesh it crosses client proxy → mTLS → server
// proxy → app; ChurnMesh adds a standby server proxy and an HTTPRoute, whose resource files Instance.Churn
// rewrites under load (S10). In Edge (S12) the first proxy is a gateway proxy (gateway mode) terminating
// HTTPS on its Gateway's listener, then mTLS → server proxy → app. Only the proxies are measured; the
// controller is pinned beside them but idle.
type Sinew struct {
	// Policy: the server's port has a Server with ten authorizations: nine ServerAuthorizations for other
	// service accounts, then an AuthorizationPolicy that admits the client's service account with a valid JWT
	// (ES256, keys inline), which the load generator sends with every request. Every request pays for an
	// authorization decision in its worst case (the last authorization) and a token check (#12's scenario,
	// "sinew-authz"). Meshed HTTP topologies only: authorization is the server-side proxy's.
	Policy bool
	// Routes: the client's target Service has an HTTPRoute of ten rules: nine whose path and header matches the
	// load never sends, then a catch-all splitting 90/10 between two Services that both select the server
	// Workload (RouteDoc). Every request pays for route matching and a weighted split and still reaches the same
	// server proxy and app ("sinew-routes"; #13). Meshed HTTP topologies only. At most one of Policy and Routes.
	Routes bool
}

func (s Sinew) Name() string {
	switch {
	case s.Policy:
		return "sinew-authz"
	case s.Routes:
		return "sinew-routes"
	}
	return "sinew"
}

// SinewSkip is set by BuildSinew when the binaries could not be built.
var SinewSkip = "sinew binaries not built"

func (Sinew) Available(env *Env) string {
	if env.SinewBin == "" {
		return SinewSkip
	}
	return ""
}

// BuildSinew builds cmd/sinew-proxy and cmd/sinew-controller into outDir. On failure it returns a short
// reason (the peer is then reported as skipped) rather than failing the run.
func BuildSinew(ctx context.Context, repoRoot, outDir string) (string, error) {
	for _, pkg := range []string{"cmd/sinew-proxy", "cmd/sinew-controller"} {
		if _, err := os.Stat(filepath.Join(repoRoot, pkg)); err != nil {
			return "", fmt.Errorf("%s does not exist yet", pkg)
		}
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return "", err
	}
	// Built as the images build them (the Makefile's images target): static, without cgo, symbol tables or DWARF, so
	// that memory and CPU are those of what ships, with its build tags (GO_TAGS). A cgo build maps libc besides (1.3
	// MB more RSS).
	args := []string{"build", "-tags", "grpcnotrace", "-trimpath", "-ldflags=-s -w", "-o", outDir + "/", "./cmd/sinew-proxy", "./cmd/sinew-controller"}
	// The harness itself is pinned to one core; let the compiler use both.
	argv := append([]string{"go"}, args...)
	if ts, err := exec.LookPath("taskset"); err == nil {
		argv = append([]string{ts, "-c", "0,1"}, argv...)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(out.String())
		if i := strings.IndexByte(msg, '\n'); i > 0 {
			if j := strings.IndexByte(msg[i+1:], '\n'); j > 0 {
				msg = msg[:i+1+j]
			}
		}
		return "", fmt.Errorf("go build failed: %s", strings.ReplaceAll(msg, "\n", "; "))
	}
	return outDir, nil
}

// sinewHost is the authority the load generator sends to the client proxy's outbound port.
const sinewHost = "server.bench.svc.cluster.local"

func (s Sinew) Start(ctx context.Context, env *Env, topo Topology) (*Instance, error) {
	if topo == TLSMesh {
		return nil, fmt.Errorf("TLS from the client does not apply: the app talks plaintext to its own sidecar: %w", ErrUnsupported)
	}
	if s.Policy && topo != Mesh && topo != H2Mesh {
		return nil, fmt.Errorf("authorization is the server-side proxy's, on meshed HTTP: %w", ErrUnsupported)
	}
	if s.Routes && topo != Mesh && topo != H2Mesh {
		return nil, fmt.Errorf("the HTTPRoute variant measures meshed HTTP only: %w", ErrUnsupported)
	}
	if topo == ChurnMesh && (s.Policy || s.Routes) {
		return nil, fmt.Errorf("S10 runs on the sinew peer, which carries its own HTTPRoute there: %w", ErrUnsupported)
	}
	dir, err := instanceDir(env, s.Name(), topo)
	if err != nil {
		return nil, err
	}
	data, res := filepath.Join(dir, "data"), filepath.Join(dir, "resources")
	for _, d := range []string{data, res} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	addrs := map[string]string{}
	for _, k := range []string{"identity", "destination", "policy", "cp-admin", "client-in", "client-out",
		"client-admin", "client-tap", "server-in", "server-admin", "server-tap", "standby-in", "standby-admin", "standby-tap",
		"gateway-in", "gateway-https", "gateway-admin", "gateway-tap"} {
		if addrs[k], err = FreeAddr(); err != nil {
			return nil, err
		}
	}
	yaml := sinewResources(topo, port(addrs["client-in"]), port(addrs["server-in"]), port(env.AppAddr), port(env.EchoAddr))
	if _, err := writeFile(res, "bench.yaml", yaml); err != nil {
		return nil, err
	}
	if topo == Edge {
		docs, err := edgeDocsFromFiles(env.TLS)
		if err != nil {
			return nil, err
		}
		if _, err := writeFile(res, "edge.yaml", docs); err != nil {
			return nil, err
		}
	}
	var authorization string
	if s.Policy {
		policy, token, err := sinewPolicy()
		if err != nil {
			return nil, err
		}
		if _, err := writeFile(res, "policy.yaml", policy); err != nil {
			return nil, err
		}
		authorization = "Bearer " + token
	}
	var churn *Churn
	switch {
	case s.Routes:
		if _, err := writeFile(res, "split.yaml", SplitServices()); err != nil {
			return nil, err
		}
		if _, err := writeFile(res, "route.yaml", RouteDoc(90, 10)); err != nil {
			return nil, err
		}
	case topo == ChurnMesh:
		if churn, err = newChurn(res, port(addrs["standby-in"])); err != nil {
			return nil, err
		}
	}
	ctrlBin := filepath.Join(env.SinewBin, "sinew-controller")
	proxyBin := filepath.Join(env.SinewBin, "sinew-proxy")
	ctrl, err := Launch(dir, "sinew-controller", env.core(), nil, ctrlBin, "local",
		"--data-dir", data, "--resource-dir", res,
		"--identity-addr", addrs["identity"], "--destination-addr", addrs["destination"],
		"--policy-addr", addrs["policy"], "--admin-addr", addrs["cp-admin"])
	if err != nil {
		return nil, err
	}
	in := &Instance{Addr: addrs["client-out"], Host: sinewHost, Authorization: authorization, Churn: churn,
		dir: dir, others: []*Proc{ctrl}, tcp: topo.TCP(), h2: topo == H2Mesh}
	anchors := filepath.Join(data, "ca.crt")
	if err := waitControlPlane(ctx, ctrl, anchors, addrs["identity"], addrs["destination"], addrs["policy"]); err != nil {
		in.Stop()
		return nil, err
	}
	if err := WaitHTTP(ctx, addrs["cp-admin"], "", "/ready", 20*time.Second, ctrl); err != nil {
		in.Stop()
		return nil, fmt.Errorf("sinew-controller not ready: %w", err)
	}
	startProxy := func(mode, workload, inbound, admin, tap string, extra ...string) (*Proc, error) {
		tok, err := exec.CommandContext(ctx, ctrlBin, "token", "--data-dir", data, "--namespace", "bench",
			"--workload", workload).Output()
		if err != nil {
			return nil, fmt.Errorf("sinew-controller token %s: %w", workload, err)
		}
		envv := []string{
			"SINEW_PROXY_MODE=" + mode,
			"SINEW_PROXY_WORKLOAD=bench/" + workload,
			"SINEW_PROXY_IDENTITY_LOCAL_NAME=spiffe://cluster.local/ns/bench/sa/" + workload,
			"SINEW_PROXY_IDENTITY_TOKEN=" + strings.TrimSpace(string(tok)),
			"SINEW_PROXY_IDENTITY_TRUST_ANCHORS_FILE=" + anchors,
			"SINEW_PROXY_IDENTITY_SVC_ADDR=" + addrs["identity"],
			"SINEW_PROXY_DESTINATION_SVC_ADDR=" + addrs["destination"],
			"SINEW_PROXY_POLICY_SVC_ADDR=" + addrs["policy"],
			"SINEW_PROXY_INBOUND_LISTEN_ADDR=" + inbound,
			"SINEW_PROXY_ADMIN_LISTEN_ADDR=" + admin,
			"SINEW_PROXY_TAP_LISTEN_ADDR=" + tap,
		}
		p, err := Launch(dir, "sinew-proxy-"+workload, env.core(), append(envv, extra...), proxyBin)
		if err != nil {
			return nil, err
		}
		if err := WaitHTTP(ctx, admin, "", "/ready", 20*time.Second, p); err != nil {
			p.Stop()
			return nil, fmt.Errorf("sinew-proxy %s not ready: %w", workload, err)
		}
		return p, nil
	}
	serverInbound, target := "8080="+env.AppAddr, sinewHost+":80"
	if topo.TCP() {
		serverInbound, target = fmt.Sprintf("%d=%s", sinewOpaquePort, env.EchoAddr), fmt.Sprintf("%s:%d", sinewHost, sinewOpaquePort)
	}
	if topo.Paired() {
		srv, err := startProxy("explicit", "server", addrs["server-in"], addrs["server-admin"], addrs["server-tap"],
			"SINEW_PROXY_INBOUND_PORTS="+serverInbound)
		if err != nil {
			in.Stop()
			return nil, err
		}
		in.Proxies = append(in.Proxies, srv)
	}
	if churn != nil {
		// The standby server: the same app behind a second proxy, in and out of the Service's endpoints.
		sb, err := startProxy("explicit", standbyWorkload, addrs["standby-in"], addrs["standby-admin"], addrs["standby-tap"],
			"SINEW_PROXY_INBOUND_PORTS="+serverInbound)
		if err != nil {
			in.Stop()
			return nil, err
		}
		in.Proxies = append(in.Proxies, sb)
		churn.standbyAdmin = addrs["standby-admin"]
		churn.clientAdmin = addrs["client-admin"]
	}
	if topo == Edge {
		// The edge: the gateway proxy of Gateway bench/edge, its HTTPS listener on a free loopback port.
		gw := names.GatewayResourceName(EdgeGateway)
		edge, err := startProxy("gateway", gw, addrs["gateway-in"], addrs["gateway-admin"], addrs["gateway-tap"],
			"SINEW_PROXY_GATEWAY=bench/"+EdgeGateway,
			"SINEW_PROXY_GATEWAY_LISTEN_HOST=127.0.0.1",
			fmt.Sprintf("SINEW_PROXY_GATEWAY_PORT_MAP=%d=%s", edgeListenerPort, port(addrs["gateway-https"])))
		if err != nil {
			in.Stop()
			return nil, err
		}
		in.Proxies = append([]*Proc{edge}, in.Proxies...)
		if err := waitGatewayBound(ctx, edge, addrs["gateway-https"], 20*time.Second); err != nil {
			in.Stop()
			return nil, err
		}
		in.Addr, in.Host = addrs["gateway-https"], ServerName
		if in.ClientTLS, err = EdgeClientTLS(env.TLS); err != nil {
			in.Stop()
			return nil, err
		}
		return ready(ctx, in, append(in.Proxies, ctrl)...)
	}
	cli, err := startProxy("explicit", "client", addrs["client-in"], addrs["client-admin"], addrs["client-tap"],
		"SINEW_PROXY_INBOUND_PORTS=8080="+env.AppAddr,
		"SINEW_PROXY_OUTBOUND_PORTS="+addrs["client-out"]+"="+target)
	if err != nil {
		in.Stop()
		return nil, err
	}
	in.Proxies = append([]*Proc{cli}, in.Proxies...)
	if in, err = ready(ctx, in, append(in.Proxies, ctrl)...); err != nil {
		return nil, err
	}
	if s.Routes || churn != nil {
		// The route must matter: both backends of its split have been chosen.
		if err := routeInForce(ctx, in, addrs["client-admin"]); err != nil {
			in.Stop()
			return nil, err
		}
	}
	if !s.Policy {
		return in, nil
	}
	// The token must matter: without it, the same request is refused.
	if err := refusedWithoutToken(ctx, in); err != nil {
		in.Stop()
		return nil, err
	}
	return in, nil
}

// refusedWithoutToken checks that a request without the instance's Authorization header gets 401 (h2c GET for
// H2Mesh), so that sinew-authz measures a policy in force.
func refusedWithoutToken(ctx context.Context, in *Instance) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var status int
	if in.h2 {
		c, err := h2load.NewClient(in.Addr, in.Host, "", 16, 1)
		if err != nil {
			return err
		}
		defer c.Close()
		if status, err = c.Status(ctx); err != nil {
			return err
		}
	} else {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+in.Addr+"/", nil)
		req.Host = in.Host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		status = resp.StatusCode
	}
	if status != http.StatusUnauthorized {
		return fmt.Errorf("sinew-authz: a request without the token got %d, want 401: the JWT check is not in force", status)
	}
	return nil
}

// sinewOpaquePort is the Service (and, meshed, the container) port for opaque TCP: one of the proxy's and
// the control plane's default opaque ports, so neither needs extra configuration to skip detection.
const sinewOpaquePort = 5432

// sinewResources is the local control plane's view of the bench: a client Workload, a server Workload
// (meshed when the topology is a pair) and the server Service, on port 80 for HTTP or sinewOpaquePort for
// opaque TCP.
func sinewResources(topo Topology, clientMeshPort, serverMeshPort, appPort, echoPort string) string {
	client := fmt.Sprintf(`apiVersion: sinew.dev/v1alpha1
kind: Workload
metadata: {name: client, namespace: bench, labels: {app: client}}
spec: {serviceAccount: client, address: 127.0.0.1, meshPort: %s, ports: [{name: http, port: 8080}]}
`, clientMeshPort)
	svcPort, target, serverPorts := "{name: http, port: 80, targetPort: %[1]s}", appPort, "[{name: http, port: %[1]s}]"
	if topo.TCP() {
		svcPort, target, serverPorts = fmt.Sprintf("{name: tcp, port: %d, targetPort: %%[1]s}", sinewOpaquePort), echoPort, "[{name: tcp, port: %[1]s}]"
	}
	mesh := ""
	if topo.Paired() {
		// The server proxy's inbound ports map the container port to the app (or echo server).
		mesh = "meshPort: " + serverMeshPort + ", "
		target = "8080"
		if topo.TCP() {
			target = fmt.Sprint(sinewOpaquePort)
		}
	}
	server := fmt.Sprintf(`apiVersion: sinew.dev/v1alpha1
kind: Workload
metadata: {name: server, namespace: bench, labels: {app: server}}
spec: {serviceAccount: server, address: 127.0.0.1, `+mesh+`ports: `+serverPorts+`}
---
apiVersion: sinew.dev/v1alpha1
kind: Service
metadata: {name: server, namespace: bench}
spec: {selector: {app: server}, ports: [`+svcPort+`]}
`, target)
	return client + "---\n" + server
}

func waitControlPlane(ctx context.Context, ctrl *Proc, anchors string, addrs ...string) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if ctrl.Exited() {
			return fmt.Errorf("sinew-controller exited:\n%s", ctrl.Tail(2000))
		}
		ok := true
		if _, err := os.Stat(anchors); err != nil {
			ok = false
		}
		for _, a := range addrs {
			if !ok {
				break
			}
			c, err := net.DialTimeout("tcp", a, 200*time.Millisecond)
			if err != nil {
				ok = false
				break
			}
			c.Close()
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("sinew-controller not serving after 20s:\n%s", ctrl.Tail(2000))
}

// sinewPolicy is the server's Server (port 8080) with ten authorizations: ServerAuthorizations for nine other
// service accounts, then an AuthorizationPolicy requiring the client's service account and a token of a
// JWTAuthentication with a fresh key; it returns the policy and a token that satisfies it.
func sinewPolicy() (policy, token string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "bench", Algorithm: "ES256", Use: "sig"}}})
	if err != nil {
		return "", "", err
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "bench"))
	if err != nil {
		return "", "", err
	}
	const issuer = "https://issuer.bench"
	token, err = jwt.Signed(sig).Claims(jwt.Claims{Issuer: issuer, Subject: "load", Audience: jwt.Audience{"server"},
		Expiry: jwt.NewNumericDate(time.Now().Add(48 * time.Hour)), NotBefore: jwt.NewNumericDate(time.Now().Add(-time.Minute))}).Serialize()
	if err != nil {
		return "", "", err
	}
	var b strings.Builder
	b.WriteString(`apiVersion: policy.sinew.dev/v1alpha1
kind: Server
metadata: {name: server-http, namespace: bench}
spec:
  workloadSelector: {matchLabels: {app: server}}
  port: 8080
`)
	for i := range 9 {
		fmt.Fprintf(&b, `---
apiVersion: policy.sinew.dev/v1alpha1
kind: ServerAuthorization
metadata: {name: authz-%d, namespace: bench}
spec:
  server: {name: server-http}
  client: {meshTLS: {serviceAccounts: [{name: other-%d}]}}
`, i, i)
	}
	fmt.Fprintf(&b, `---
apiVersion: policy.sinew.dev/v1alpha1
kind: MeshTLSAuthentication
metadata: {name: client, namespace: bench}
spec:
  identityRefs: [{kind: ServiceAccount, name: client}]
---
apiVersion: policy.sinew.dev/v1alpha1
kind: JWTAuthentication
metadata: {name: tokens, namespace: bench}
spec:
  issuers:
  - issuer: %s
    audiences: [server]
    jwks: {inline: '%s'}
  principals: ["%s/load"]
---
apiVersion: policy.sinew.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: client-with-token, namespace: bench}
spec:
  targetRef: {group: policy.sinew.dev, kind: Server, name: server-http}
  requiredAuthenticationRefs:
  - {group: policy.sinew.dev, kind: MeshTLSAuthentication, name: client}
  - {group: policy.sinew.dev, kind: JWTAuthentication, name: tokens}
`, issuer, jwks, issuer)
	return b.String(), token, nil
}
