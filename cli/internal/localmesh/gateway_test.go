package localmesh

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

func TestFindGateways(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a := write("a.yaml", `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge}
spec:
  gatewayClassName: sinew
  listeners:
  - {name: http, protocol: HTTP, port: 80}
  - {name: https, protocol: HTTPS, port: 443}
  - {name: other-host, protocol: HTTP, port: 80, hostname: other.test}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: someone-elses, namespace: shop}
spec:
  gatewayClassName: istio
  listeners: [{name: http, protocol: HTTP, port: 80}]
---
apiVersion: policy.sinew.dev/v1beta3
kind: Server
metadata: {name: web}
`)
	b := write("b.yaml", `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: internal, namespace: shop}
spec:
  gatewayClassName: sinew
  listeners: [{name: http, protocol: HTTP, port: 8080}]
`)
	gws, hasClass, err := FindGateways([]string{a, b}, "emojivoto")
	if err != nil || hasClass {
		t.Fatal(err, hasClass)
	}
	want := []Gateway{
		{Namespace: "emojivoto", Name: "edge", Ports: []uint16{80, 443}, HTTPS: map[uint16]bool{80: false, 443: true}},
		{Namespace: "shop", Name: "internal", Ports: []uint16{8080}, HTTPS: map[uint16]bool{8080: false}},
	}
	if !reflect.DeepEqual(gws, want) {
		t.Fatalf("got %+v\nwant %+v", gws, want)
	}
	if u := gws[0].URL(443); u != "https://127.0.0.1:18443/" {
		t.Errorf("URL(443) = %s", u)
	}
	if u := gws[1].URL(8080); u != "http://127.0.0.1:8080/" {
		t.Errorf("URL(8080) = %s", u)
	}

	// The resources: GatewayClass sinew unless the files have it, then a Workload per gateway.
	docs := strings.Split(string(gatewayResources(gws, false)), "---\n")[1:]
	if len(docs) != 3 || !strings.Contains(docs[0], "kind: GatewayClass") || !strings.Contains(docs[0], "controllerName: sinew.dev/gateway-controller") {
		t.Fatalf("resources:\n%s", strings.Join(docs, "---\n"))
	}
	var wl struct {
		Kind     string
		Metadata struct {
			Name, Namespace string
			Labels          map[string]string
		}
		Spec struct {
			ServiceAccount string `json:"serviceAccount"`
			Ports          []struct{ Port int }
		}
	}
	if err := yaml.Unmarshal([]byte(docs[1]), &wl); err != nil {
		t.Fatal(err)
	}
	if wl.Kind != "Workload" || wl.Metadata.Name != "sinew-gateway-edge" || wl.Metadata.Namespace != "emojivoto" ||
		wl.Spec.ServiceAccount != "sinew-gateway-edge" || len(wl.Spec.Ports) != 2 ||
		wl.Metadata.Labels["gateway.networking.k8s.io/gateway-name"] != "edge" {
		t.Errorf("workload %+v", wl)
	}
	if docs := gatewayResources(gws, true); strings.Contains(string(docs), "GatewayClass") {
		t.Error("GatewayClass added although the files define it")
	}

	dup := write("dup.yaml", "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: edge, namespace: emojivoto}\nspec: {gatewayClassName: sinew}\n")
	if _, _, err := FindGateways([]string{a, dup}, "emojivoto"); err == nil || !strings.Contains(err.Error(), "Gateway emojivoto/edge is defined twice") {
		t.Errorf("duplicate: %v", err)
	}
}
