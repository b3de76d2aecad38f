package peers

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	"github.com/sinewmesh/sinew/internal/names"
)

// The edge's documents: GatewayClass sinew, a Gateway with one HTTPS listener terminating TLS with the Secret,
// that Secret holding the harness's certificate and key, an HTTPRoute attached to the Gateway sending everything
// to Service server, and the gateway proxy's Workload with the identity that may fetch the Gateway's config.
func TestEdgeDocs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	files, err := GenerateTLS(dir)
	if err != nil {
		t.Fatal(err)
	}
	all, err := edgeDocsFromFiles(files)
	if err != nil {
		t.Fatal(err)
	}
	docs := strings.Split(all, "\n---\n")
	if len(docs) != 5 {
		t.Fatalf("%d documents, want 5", len(docs))
	}

	var class gatewayv1.GatewayClass
	if err := yaml.UnmarshalStrict([]byte(docs[0]), &class); err != nil {
		t.Fatalf("GatewayClass: %v", err)
	}
	if class.Name != names.GatewayClass || string(class.Spec.ControllerName) != names.GatewayController {
		t.Errorf("GatewayClass %s, controller %s", class.Name, class.Spec.ControllerName)
	}

	var gw gatewayv1.Gateway
	if err := yaml.UnmarshalStrict([]byte(docs[1]), &gw); err != nil {
		t.Fatalf("Gateway: %v", err)
	}
	if gw.Name != EdgeGateway || gw.Namespace != "bench" || string(gw.Spec.GatewayClassName) != names.GatewayClass || len(gw.Spec.Listeners) != 1 {
		t.Fatalf("Gateway %+v", gw)
	}
	l := gw.Spec.Listeners[0]
	if l.Protocol != gatewayv1.HTTPSProtocolType || l.Port != edgeListenerPort || l.Hostname != nil || l.TLS == nil ||
		l.TLS.Mode == nil || *l.TLS.Mode != gatewayv1.TLSModeTerminate || len(l.TLS.CertificateRefs) != 1 || l.TLS.CertificateRefs[0].Name != "edge-cert" {
		t.Errorf("listener %+v, want HTTPS on %d, any host, terminating with edge-cert", l, edgeListenerPort)
	}

	var secret struct {
		Kind       string `json:"kind"`
		Type       string `json:"type"`
		Metadata   struct{ Name, Namespace string }
		StringData map[string]string `json:"stringData"`
	}
	if err := yaml.Unmarshal([]byte(docs[2]), &secret); err != nil {
		t.Fatalf("Secret: %v", err)
	}
	if secret.Kind != "Secret" || secret.Type != "kubernetes.io/tls" || secret.Metadata.Name != "edge-cert" || secret.Metadata.Namespace != "bench" {
		t.Errorf("Secret %+v", secret)
	}
	// The Secret's pair is the one nginx and HAProxy terminate with, and clients of the edge verify it.
	pair, err := tls.X509KeyPair([]byte(secret.StringData["tls.crt"]), []byte(secret.StringData["tls.key"]))
	if err != nil {
		t.Fatalf("the Secret's tls.crt and tls.key: %v", err)
	}
	want, _ := os.ReadFile(files.ServerCert)
	if block, _ := pem.Decode(want); block == nil || string(block.Bytes) != string(pair.Certificate[0]) {
		t.Error("the Secret's certificate is not the harness's server certificate")
	}
	leaf, _ := x509.ParseCertificate(pair.Certificate[0])
	client, err := EdgeClientTLS(files)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: client.RootCAs, DNSName: client.ServerName}); err != nil {
		t.Errorf("the edge client does not trust the Secret's certificate: %v", err)
	}
	if len(client.Certificates) != 0 || client.MinVersion != tls.VersionTLS13 {
		t.Errorf("edge client: %d certificates, min version %x; want none, TLS 1.3", len(client.Certificates), client.MinVersion)
	}

	var rt gatewayv1.HTTPRoute
	if err := yaml.UnmarshalStrict([]byte(docs[3]), &rt); err != nil {
		t.Fatalf("HTTPRoute: %v", err)
	}
	if len(rt.Spec.ParentRefs) != 1 || rt.Spec.ParentRefs[0].Name != EdgeGateway || rt.Spec.ParentRefs[0].Kind != nil ||
		len(rt.Spec.Hostnames) != 0 || len(rt.Spec.Rules) != 1 || len(rt.Spec.Rules[0].BackendRefs) != 1 {
		t.Fatalf("HTTPRoute %+v", rt.Spec)
	}
	if b := rt.Spec.Rules[0].BackendRefs[0]; b.Name != "server" || b.Port == nil || *b.Port != 80 {
		t.Errorf("backend %+v, want Service server port 80", b)
	}

	var w struct {
		Kind     string `json:"kind"`
		Metadata struct {
			Name, Namespace string
			Labels          map[string]string `json:"labels"`
			Annotations     map[string]string `json:"annotations"`
		}
		Spec struct {
			ServiceAccount string `json:"serviceAccount"`
			Address        string `json:"address"`
			MeshPort       int    `json:"meshPort"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal([]byte(docs[4]), &w); err != nil {
		t.Fatalf("Workload: %v", err)
	}
	gwName := names.GatewayResourceName(EdgeGateway)
	if w.Kind != "Workload" || w.Metadata.Name != gwName || w.Spec.ServiceAccount != gwName || w.Spec.Address != "127.0.0.1" || w.Spec.MeshPort != 0 ||
		w.Metadata.Labels[names.GatewayLabel] != EdgeGateway || w.Metadata.Annotations[names.AnnDefaultInboundPolicy] != "all-unauthenticated" {
		t.Errorf("gateway Workload %+v", w)
	}
}

// A gateway proxy that lost its listener's port to another process logs "cannot be bound" and would try again:
// the harness makes that a taken-address error, which StartRetry retries on fresh ports.
func TestGatewayBindLine(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	log := filepath.Join(dir, "gw.log")
	write := func(s string) {
		if err := os.WriteFile(log, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"level":"INFO","msg":"identity ready"}` + "\n")
	if l := gatewayBindLine(log, "127.0.0.1:39885"); l != "" {
		t.Errorf("nothing bound yet: %q", l)
	}
	write(`{"level":"INFO","msg":"gateway listener port bound","port":443,"addr":"127.0.0.1:39885"}` + "\n")
	if l := gatewayBindLine(log, "127.0.0.1:39885"); !strings.Contains(l, "bound") {
		t.Errorf("bound: %q", l)
	}
	if l := gatewayBindLine(log, "127.0.0.1:1"); l != "" {
		t.Errorf("another address: %q", l)
	}
	write(`{"level":"ERROR","msg":"gateway listener port cannot be bound; trying again in 5s","port":443,"err":"listen tcp 127.0.0.1:39885: bind: address already in use"}` + "\n")
	p := &Proc{Name: "gw", log: log, done: make(chan struct{})}
	err := waitGatewayBound(t.Context(), p, "127.0.0.1:39885", 0)
	if !IsAddrInUse(err) {
		t.Errorf("a port taken by another process: %v, want an address-in-use error", err)
	}
}

// Every HTTP peer builds the edge hop as a pair (sinew's gateway and server proxy; the others' client-side and
// server-side instances), and the load generator speaks HTTPS to it.
func TestEdgeTopology(t *testing.T) {
	t.Parallel()
	if !Edge.Paired() || Edge.TCP() || Edge.String() != "edge" {
		t.Errorf("Edge: paired %v, tcp %v, %q", Edge.Paired(), Edge.TCP(), Edge.String())
	}
	env := &Env{Dir: t.TempDir(), AppTLS: "127.0.0.1:1"}
	var err error
	if env.TLS, err = GenerateTLS(env.Dir); err != nil {
		t.Fatal(err)
	}
	in, err := Direct{}.Start(t.Context(), env, Edge)
	if err != nil || in.Addr != env.AppTLS || in.ClientTLS == nil || in.Host != ServerName {
		t.Errorf("direct: %+v, %v; want HTTPS to the app's TLS port", in, err)
	}
	in, err = newInstance(env, "x", Edge)
	if err != nil || in.ClientTLS == nil || len(in.ClientTLS.Certificates) != 0 || in.Host != ServerName {
		t.Errorf("an edge instance: %+v, %v; want a TLS client without a certificate", in, err)
	}
}
