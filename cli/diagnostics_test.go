package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	goldenfile "github.com/sinewmesh/sinew/internal/golden"
)

// debugConfig is a proxy's /debug/config as proxy/admin.go renders it (the parts policy diagnostics read, and a
// field they do not).
const debugConfigJSON = `{
  "ready": true,
  "identity": "spiffe://cluster.local/ns/emojivoto/sa/web",
  "destinations": [],
  "outboundPolicies": [
    {"target": "emoji-svc.emojivoto.svc.cluster.local:8080", "answered": true, "routes": []},
    {"target": "voting-svc.emojivoto.svc.cluster.local:8080", "answered": true,
     "routes": [{"rules": [{"matches": 0, "backends": {"voting-svc.emojivoto.svc.cluster.local:8080": 1}, "retry": "up to 2, per try 1s"}]}]}
  ],
  "inboundPolicies": [
    {"port": 8080, "server": {"srvKind": "server", "srvName": "web-http", "protocol": "http1", "mtlsStrict": false,
     "authorizations": [{"authzKind": "serverauthorization", "authzName": "web-vote-bot",
       "identities": ["spiffe://cluster.local/ns/emojivoto/sa/vote-bot"]}], "probePaths": ["/ready"]}},
    {"port": 9090},
    {"port": 4191, "server": {"srvKind": "default", "srvName": "all-unauthenticated", "protocol": "detect", "authorizations": []}}
  ]
}`

func diagGolden(t *testing.T, name, got string) {
	t.Helper()
	goldenfile.Check(t, filepath.Join("testdata", "diagnostics", name), []byte(got))
}

// adminServer serves body as a proxy's /debug/config and returns its host:port.
func adminServer(t *testing.T, body string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/debug/config" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, body)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func TestDiagnosticsPolicyAtAdminAddr(t *testing.T) {
	t.Parallel()
	addr := adminServer(t, debugConfigJSON)
	out := mustRun(t, testEnv(t, nil), "diagnostics", "policy", "--admin-addr", addr, "web", "8080")
	diagGolden(t, "policy-inbound.golden.json", out)
	var parsed map[string]any
	if err := json.Unmarshal([]byte(out), &parsed); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	out = mustRun(t, testEnv(t, nil), "diagnostics", "policy", "--outbound", "--admin-addr", addr, "web", "voting-svc:8080")
	diagGolden(t, "policy-outbound.golden.json", out)

	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"web", "8081"}, []string{"the proxy of web (admin " + addr + ") has not been asked about port 8081 yet (ports it has policy for: 4191, 8080, 9090)",
			"send it a request on port 8081"}},
		{[]string{"web", "9090"}, []string{"has asked the policy service about port 9090 but has no answer yet, so it admits nobody on it"}},
		{[]string{"web", "http"}, []string{`PORT "http": want a port number (1-65535); for a target, use --outbound`}},
		{[]string{"web", "0"}, []string{`PORT "0"`}},
		{[]string{"--outbound", "web", "web-svc:80"}, []string{"has no outbound policy for web-svc:80 yet (targets it has policy for: emoji-svc.emojivoto.svc.cluster.local:8080, voting-svc.emojivoto.svc.cluster.local:8080)"}},
		{[]string{"--outbound", "web", "emojivoto"}, []string{"has no outbound policy for emojivoto"}},
		{[]string{"web"}, []string{"accepts 2 arg(s)"}},
	} {
		r := run(t, testEnv(t, nil), append([]string{"diagnostics", "policy", "--admin-addr", addr}, c.args...)...)
		if r.code == 0 || r.stdout != "" {
			t.Errorf("%v: exit %d, stdout %q", c.args, r.code, r.stdout)
		}
		for _, w := range c.want {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("%v: stderr %q, want %q", c.args, r.stderr, w)
			}
		}
	}
	// A proxy that predates inbound policy.
	old := adminServer(t, `{"ready": true, "outboundPolicies": []}`)
	if r := run(t, testEnv(t, nil), "diagnostics", "policy", "--admin-addr", old, "web", "8080"); r.code == 0 || !strings.Contains(r.stderr, "predates inbound authorization policy") {
		t.Errorf("old proxy: %d %s", r.code, r.stderr)
	}
}

// TestDiagnosticsPolicyLocalMesh: in a running local mesh, POD is a workload's name, found in the mesh's state file.
func TestDiagnosticsPolicyLocalMesh(t *testing.T) {
	t.Parallel()
	addr := adminServer(t, debugConfigJSON)
	runtimeDir := t.TempDir()
	state := filepath.Join(runtimeDir, "sinew", "local")
	if err := os.MkdirAll(state, 0o700); err != nil {
		t.Fatal(err)
	}
	mesh := fmt.Sprintf(`{"pid": %d, "name": "emojivoto", "namespace": "emojivoto", "workloads": [{"name": "web", "proxyAdmin": %q}]}`, os.Getpid(), addr)
	if err := os.WriteFile(filepath.Join(state, fmt.Sprint(os.Getpid())+".json"), []byte(mesh), 0o600); err != nil {
		t.Fatal(err)
	}
	env := testEnv(t, nil)
	env.Getenv = func(k string) string {
		if k == "XDG_RUNTIME_DIR" {
			return runtimeDir
		}
		return ""
	}
	out := mustRun(t, env, "diagnostics", "policy", "-n", "emojivoto", "web", "8080")
	diagGolden(t, "policy-inbound.golden.json", out)
	// another namespace: not the local mesh's, and no cluster either
	r := run(t, env, "diagnostics", "policy", "-n", "shop", "web", "8080")
	if r.code == 0 || !strings.Contains(r.stderr, `no running local mesh (sinew run, sinew demo) has a workload "web" in namespace shop, and in Kubernetes: no cluster in this test`) {
		t.Errorf("other namespace: %d %s", r.code, r.stderr)
	}
}

// TestDiagnosticsPolicyKubernetes: in a cluster, the proxy's admin port is read through the API server's pod proxy.
func TestDiagnosticsPolicyKubernetes(t *testing.T) {
	t.Parallel()
	meshed := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "emojivoto"},
		Spec: corev1.PodSpec{InitContainers: []corev1.Container{{Name: "sinew-proxy"}}, Containers: []corev1.Container{{Name: "web"}}}}
	plain := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "curl", Namespace: "emojivoto"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "curl"}}}}
	c := newCluster()
	for _, p := range []*corev1.Pod{meshed, plain} {
		if _, err := c.kube.CoreV1().Pods("emojivoto").Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	servePodProxy(c, map[string]string{"web-1:4191/debug/config": debugConfigJSON})
	out := mustRun(t, testEnv(t, c), "diagnostics", "policy", "-n", "emojivoto", "pod/web-1", "8080")
	diagGolden(t, "policy-inbound.golden.json", out)
	for args, want := range map[string]string{
		"curl 8080":  "pod emojivoto/curl has no sinew-proxy container: it is not meshed",
		"web-2 8080": "no pod web-2 in namespace emojivoto",
		"web-1 8081": "the proxy of web-1 (pod emojivoto/web-1) has not been asked about port 8081 yet",
	} {
		r := run(t, testEnv(t, c), append([]string{"diagnostics", "policy", "-n", "emojivoto"}, strings.Fields(args)...)...)
		if r.code == 0 || !strings.Contains(r.stderr, want) {
			t.Errorf("%s: exit %d, stderr %q, want %q", args, r.code, r.stderr, want)
		}
	}
}
