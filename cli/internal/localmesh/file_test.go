package localmesh

import (
	"net"
	"os"
	"reflect"
	"strings"
	"testing"
)

// The example file is what `sinew demo` runs; keep them the same.
func TestExampleFileIsTheDemo(t *testing.T) {
	got, err := Load("../../../examples/emojivoto/local/emojivoto.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := Demo(DefaultPortBase, true, []string{"emojivoto"})
	if !reflect.DeepEqual(got, want) {
		g, _ := got.Marshal()
		w, _ := want.Marshal()
		t.Fatalf("examples/emojivoto/local/emojivoto.yaml differs from localmesh.Demo:\n--- file\n%s\n--- demo\n%s", g, w)
	}
}

func TestParseReportsEveryProblemWithItsPath(t *testing.T) {
	const bad = `apiVersion: sinew.dev/v1alpha1
kind: LocalMesh
metadata: {name: x}
spec:
  namespace: Not_A_Label
  services:
    - name: svc
      selector: {app: a}
      ports: [{port: 70000}]
  workloads:
    - name: a
      command: []
      ports: [{port: 80, app: "nohost", protocol: grpc}]
      upstreams: [{service: "missing:80", listen: 127.0.0.1:1}, {service: "svc:81", listen: 127.0.0.1:2}]
      proxy: {admin: 127.0.0.1:3, logLevel: loud}
    - name: a
      command: [x]
      proxy: {admin: 127.0.0.1:3}
`
	_, err := Parse("bad.yaml", []byte(bad))
	if err == nil {
		t.Fatal("Parse accepted a broken file")
	}
	for _, want := range []string{
		"bad.yaml: ",
		`spec.namespace: "Not_A_Label" must be a DNS label`,
		"spec.services[0].ports[0].port: 70000: must be 1-65535",
		"spec.workloads[0].command: required",
		`spec.workloads[0].ports[0].app: "nohost": want host:port`,
		`spec.workloads[0].ports[0].protocol: "grpc": must be http or opaque`,
		`spec.workloads[0].upstreams[0].service: no service "missing" in spec.services`,
		`spec.workloads[0].upstreams[1].service: service "svc" has no port 81`,
		"spec.workloads[0].proxy.inbound: required",
		`spec.workloads[0].proxy.logLevel: "loud"`,
		`spec.workloads[1].name: "a" is declared twice`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestParseIsStrict(t *testing.T) {
	_, err := Parse("typo.yaml", []byte("apiVersion: sinew.dev/v1alpha1\nkind: LocalMesh\nspec:\n  workload: []\n"))
	if err == nil || !strings.Contains(err.Error(), `typo.yaml: unknown field "workload"`) {
		t.Fatalf("want an unknown-field error, got %v", err)
	}
}

func TestAddressUsedTwiceIsRefused(t *testing.T) {
	m := Demo(DefaultPortBase, true, []string{"emojivoto"})
	m.Spec.Workloads[1].Proxy.Admin = m.Spec.Workloads[0].Proxy.Admin
	err := m.Validate()
	if err == nil || !strings.Contains(err.Error(), "address 127.0.0.1:17012 is used twice: by emoji proxy admin and by voting proxy admin") {
		t.Fatalf("got %v", err)
	}
}

func TestTakenPortIsNamedBeforeAnythingStarts(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	m := Demo(DefaultPortBase, false, []string{"emojivoto"})
	m.Spec.Workloads[2].Proxy.Inbound = ln.Addr().String()
	err = Run(t.Context(), m, Options{DataDir: t.TempDir()})
	want := "cannot listen on " + ln.Addr().String() + " (web proxy inbound): address already in use"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
}

func TestResourcesAreWhatTheControlPlaneReads(t *testing.T) {
	res := string(Demo(DefaultPortBase, false, []string{"emojivoto"}).Resources())
	for _, want := range []string{"kind: Service", "name: web-svc", "kind: Workload", "meshPort: 17031", "serviceAccount: voting"} {
		if !strings.Contains(res, want) {
			t.Errorf("resources lack %q:\n%s", want, res)
		}
	}
	if _, err := os.Stat("../../../examples/emojivoto/local"); err != nil {
		t.Fatal(err)
	}
}
