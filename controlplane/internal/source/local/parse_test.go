package local

import (
	"strings"
	"testing"
	"time"

	"github.com/sinewmesh/sinew/controlplane/internal/model"
)

func TestParseMultiDocument(t *testing.T) {
	t.Parallel()
	p, err := parseFile("emojivoto.yaml", []byte(`# leading comment
---
apiVersion: sinew.dev/v1alpha1
kind: Workload
metadata: {name: web, namespace: emojivoto, labels: {app: web}}
spec:
  serviceAccount: web
  address: 127.0.0.1
  meshPort: 14143
  ports:
  - {name: http, port: 8080, protocol: http}
  - {name: admin, port: 9000, protocol: opaque}
---
kind: Service
metadata: {name: web-svc, namespace: emojivoto}
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080}
  - {name: admin, port: 9000, targetPort: admin, appProtocol: opaque}
---
---
kind: HTTPRoute
metadata: {name: later}
spec: {anything: goes}
---
kind: Workload
metadata: {name: bare}
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.workloads) != 2 || len(p.services) != 1 || len(p.ignored) != 1 {
		t.Fatalf("got %d workloads, %d services, %d ignored", len(p.workloads), len(p.services), len(p.ignored))
	}
	web := p.workloads[0]
	if web.Key() != "emojivoto/web" || web.MeshPort != 14143 || web.ServiceAccount != "web" || len(web.Ports) != 2 ||
		web.Ports[1].Protocol != model.ProtocolOpaque || web.Labels["app"] != "web" {
		t.Errorf("web: %+v", web)
	}
	bare := p.workloads[1]
	if bare.Key() != "default/bare" || bare.ServiceAccount != "default" || bare.Address.String() != "127.0.0.1" || bare.Meshed() {
		t.Errorf("defaults: %+v", bare)
	}
	svc := p.services[0]
	if svc.Ports[0].TargetPort.Number != 8080 || svc.Ports[1].TargetPort.Name != "admin" || svc.Ports[1].AppProtocol != model.ProtocolOpaque {
		t.Errorf("service ports: %+v", svc.Ports)
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	const wl = "kind: Workload\nmetadata: {name: web, namespace: emojivoto}\n"
	for name, tc := range map[string]struct{ in, want string }{
		"unknown field":     {wl + "spec: {serviceAccount: web, colour: blue}\n", `x.yaml: document 1 (Workload): json: unknown field "colour"`},
		"unknown top field": {wl + "status: {}\n", `unknown field "status"`},
		"bad port":          {"---\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 80}]}\n---\n" + wl + "spec: {ports: [{port: 70000}]}\n", "x.yaml: document 2 (Workload web): spec.ports[0].port: must be 1-65535"},
		"duplicate port":    {wl + "spec: {ports: [{port: 80}, {port: 80}]}\n", "spec.ports[1].port: 80 declared twice"},
		"bad protocol":      {wl + "spec: {ports: [{port: 80, protocol: udp}]}\n", `spec.ports[0].protocol: must be http or opaque, got "udp"`},
		"bad address":       {wl + "spec: {address: my-host}\n", `spec.address: must be an IP address, got "my-host"`},
		"bad mesh port":     {wl + "spec: {meshPort: -1}\n", "spec.meshPort: must be 0-65535"},
		"mesh port clash":   {wl + "spec: {meshPort: 80, ports: [{port: 80}]}\n", "is also spec.meshPort"},
		"bad name":          {"kind: Workload\nmetadata: {name: Web_1}\n", `metadata.name: "Web_1" must consist of`},
		"no name":           {"kind: Workload\nmetadata: {namespace: x}\n", "metadata.name: required"},
		"no kind":           {"metadata: {name: x}\n", "x.yaml: document 1 (line 1): kind: required"},
		"wrong apiVersion":  {"apiVersion: v1\n" + wl, "apiVersion: must be sinew.dev/v1alpha1"},
		"service no ports":  {"kind: Service\nmetadata: {name: s}\nspec: {selector: {app: a}}\n", "spec.ports: at least one port is required"},
		"bad target port":   {"kind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 80, targetPort: 0}]}\n", "spec.ports[0].targetPort: must be 1-65535 or a port name"},
		"bad app protocol":  {"kind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 80, appProtocol: h3}]}\n", "spec.ports[0].appProtocol"},
		"yaml syntax":       {"kind: Other\n---\nkind: Workload\nmetadata: {name: x\n  bad: [\n", "x.yaml: document 2: yaml: line"},
		"not a mapping":     {"- just\n- a list\n", "x.yaml: document 1"},
		"wrong type":        {wl + "spec: {ports: {port: 80}}\n", "x.yaml: document 1 (Workload)"},
		"several problems":  {wl + "spec: {meshPort: 70000, ports: [{port: 0}]}\n", "spec.meshPort: must be 0-65535 (0: not meshed); spec.ports[0].port: must be 1-65535"},
	} {
		_, err := parseFile("x.yaml", []byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", name, err, tc.want)
		}
	}
}

func TestParseLineNumbersAreFileRelative(t *testing.T) {
	t.Parallel()
	_, err := parseFile("x.yaml", []byte("kind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 1}]}\n---\nkind: Workload\nmetadata: {name: x\n"))
	if err == nil || !strings.Contains(err.Error(), "line 7") && !strings.Contains(err.Error(), "line 6") {
		t.Errorf("%v: want a line number within the second document (lines 5-6 of the file)", err)
	}
}

// Garbage never panics and never yields resources without an error.
func TestParseNeverPanics(t *testing.T) {
	t.Parallel()
	inputs := []string{"", "---", "\x00\xff", "kind: [", "kind: Workload\nspec: null", "kind: Workload\nmetadata: null\nspec: {ports: [null]}",
		"kind: Service\nspec: {ports: [{targetPort: {a: b}}]}", "kind: 5", "{{{{", strings.Repeat("- ", 1000), "kind: Workload\nmetadata: {name: a, labels: {x: [1]}}"}
	for _, in := range inputs {
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("%q: panic %v", in, r)
				}
			}()
			_, _ = parseFile("x.yaml", []byte(in))
		}()
	}
}

func FuzzParseFile(f *testing.F) {
	f.Add([]byte("kind: Workload\nmetadata: {name: web}\nspec: {ports: [{port: 80}]}\n"))
	f.Add([]byte("kind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 80, targetPort: http}]}\n---\nkind: X\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = parseFile("fuzz.yaml", data)
	})
}

// A Service's annotations give its outbound defaults; a bad one is a problem that names the file, document and
// annotation, and the file still loads.
func TestParseServiceAnnotations(t *testing.T) {
	t.Parallel()
	p, err := parseFile("x.yaml", []byte(`kind: Service
metadata:
  name: web-svc
  annotations:
    retry.sinew.dev/http: 5xx
    retry.sinew.dev/limit: 3
    timeout.sinew.dev/request: 10s
    timeout.sinew.dev/idle: [1m]
    balancer.sinew.dev/failure-accrual: consecutive
    balancer.sinew.dev/failure-accrual-consecutive-max-failures: "4"
    example.com/other: {any: thing}
spec: {ports: [{port: 80}]}
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.services) != 1 {
		t.Fatalf("%d services", len(p.services))
	}
	d := p.services[0].Outbound
	if d.Retry == nil || d.Retry.Limit != 3 || len(d.Retry.HTTPStatuses) != 1 || d.Retry.HTTPStatuses[0] != (model.StatusRange{First: 500, Last: 599}) ||
		d.RequestTimeout != model.Duration(10*time.Second) || d.IdleTimeout != 0 ||
		d.FailureAccrual == nil || d.FailureAccrual.ConsecutiveFailures != 4 {
		t.Errorf("defaults %+v retry %+v accrual %+v", d, d.Retry, d.FailureAccrual)
	}
	want := `x.yaml: document 1 (Service web-svc): metadata.annotations: annotation timeout.sinew.dev/idle: "[\"1m\"]": want a duration`
	if len(p.problems) != 1 || !strings.HasPrefix(p.problems[0], want) {
		t.Errorf("problems %q, want one starting %q", p.problems, want)
	}
}
