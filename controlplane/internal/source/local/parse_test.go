package local

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sinewmesh/sinew/controlplane/internal/model"
	authzapi "github.com/sinewmesh/sinew/controlplane/internal/policy/authz/api"
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
kind: TLSRoute
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
		"bad port":          {"---\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 80}]}\n---\n" + wl + "spec: {ports: [{port: 70000}]}\n", "x.yaml: document 2 (Workload web, line 6): spec.ports[0].port: must be 1-65535"},
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
		"kind: Service\nspec: {ports: [{targetPort: {a: b}}]}", "kind: 5",
		"kind: Server\nspec: null", "kind: Server\nspec: {port: {a: b}}", "kind: ServerAuthorization\nspec: {client: {meshTLS: null}}",
		"kind: AuthorizationPolicy\nspec: {requiredAuthenticationRefs: [null]}", "kind: MeshTLSAuthentication\nmetadata: null", "{{{{", strings.Repeat("- ", 1000), "kind: Workload\nmetadata: {name: a, labels: {x: [1]}}"}
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
	f.Add([]byte("kind: Server\nmetadata: {name: s}\nspec: {podSelector: {matchExpressions: [{key: a, operator: In, values: [b]}]}, port: http}\n"))
	f.Add([]byte("kind: ServerAuthorization\nmetadata: {name: a}\nspec: {server: {name: s}, client: {meshTLS: {serviceAccounts: [{name: x}]}, networks: [{cidr: 10.0.0.0/8}]}}\n"))
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
	want := `x.yaml: document 1 (Service web-svc, line 1): metadata.annotations: annotation timeout.sinew.dev/idle: "[\"1m\"]": want a duration`
	if len(p.problems) != 1 || !strings.HasPrefix(p.problems[0], want) {
		t.Errorf("problems %q, want one starting %q", p.problems, want)
	}
}

// The policy.sinew.dev kinds decode into the model's policies; a Server's podSelector picks local Workloads, which
// stand for pods here; a Workload's annotation sets its default inbound policy.
func TestParsePolicies(t *testing.T) {
	t.Parallel()
	p, err := parseFile("policy.yaml", []byte(`apiVersion: sinew.dev/v1alpha1
kind: Workload
metadata:
  name: web
  namespace: emojivoto
  labels: {app: web}
  annotations: {config.sinew.dev/default-inbound-policy: deny}
spec: {ports: [{name: http, port: 8080}]}
---
apiVersion: policy.sinew.dev/v1alpha1
kind: Server
metadata: {name: web-http, namespace: emojivoto}
spec: {podSelector: {matchLabels: {app: web}}, port: http, proxyProtocol: HTTP/1}
---
kind: ServerAuthorization
metadata: {name: web-clients, namespace: emojivoto}
spec:
  server: {name: web-http}
  client: {meshTLS: {serviceAccounts: [{name: vote-bot}]}}
---
apiVersion: policy.sinew.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: web-policy}
spec:
  targetRef: {group: policy.sinew.dev, kind: Server, name: web-http}
  requiredAuthenticationRefs: [{group: policy.sinew.dev, kind: MeshTLSAuthentication, name: bots}]
---
apiVersion: policy.sinew.dev/v1alpha1
kind: MeshTLSAuthentication
metadata: {name: bots}
spec: {identities: ["*"]}
---
apiVersion: policy.sinew.dev/v1alpha1
kind: NetworkAuthentication
metadata: {name: local}
spec: {networks: [{cidr: 127.0.0.0/8}]}
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.workloads) != 1 || p.workloads[0].DefaultInboundPolicy != "deny" || p.workloads[0].Kind != model.KindWorkload {
		t.Fatalf("workloads %+v", p.workloads)
	}
	if len(p.policies) != 5 {
		t.Fatalf("%d policies", len(p.policies))
	}
	srv, ok := p.policies[0].(*authzapi.Server)
	if !ok || srv.Spec.PodSelector != nil || srv.Spec.WorkloadSelector == nil || srv.Spec.WorkloadSelector.MatchLabels["app"] != "web" ||
		srv.Spec.Port.Name != "http" {
		t.Errorf("server %+v", p.policies[0])
	}
	if ap := p.policies[2].(*authzapi.AuthorizationPolicy); ap.Metadata.Namespace != "default" {
		t.Errorf("namespace %q, want the default", ap.Metadata.Namespace)
	}
}

// Errors in policy documents name the file, the document, the object and the line the document starts on.
func TestParsePolicyErrors(t *testing.T) {
	t.Parallel()
	const srv = "kind: Server\nmetadata: {name: web-http}\n"
	const prefix = "kind: Workload\nmetadata: {name: web}\n---\n"
	for name, tc := range map[string]struct{ in, want string }{
		"two selectors": {prefix + srv + "spec: {podSelector: {}, workloadSelector: {}, port: 80}\n",
			"x.yaml: document 2 (Server web-http, line 4): spec: give exactly one of podSelector and workloadSelector, not both"},
		"no selector":   {srv + "spec: {port: 80}\n", "x.yaml: document 1 (Server web-http, line 1): spec: give exactly one of podSelector (pods) and workloadSelector (Workloads)"},
		"bad port":      {srv + "spec: {podSelector: {}, port: 0}\n", "spec.port: must be 1-65535 or a port name, got 0"},
		"bad port name": {srv + "spec: {podSelector: {}, port: HTTP_1}\n", `spec.port: "HTTP_1" is not a port name`},
		"bad protocol":  {srv + "spec: {podSelector: {}, port: 80, proxyProtocol: http}\n", `spec.proxyProtocol: must be one of unknown, HTTP/1, HTTP/2, gRPC, opaque, TLS, got "http"`},
		"bad access":    {srv + "spec: {podSelector: {}, port: 80, accessPolicy: allow}\n", `spec.accessPolicy: must be one of`},
		"bad operator": {srv + "spec: {podSelector: {matchExpressions: [{key: a, operator: Is}]}, port: 80}\n",
			`spec.podSelector.matchExpressions[0].operator: must be In, NotIn, Exists or DoesNotExist, got "Is"`},
		"unknown field": {prefix + srv + "spec: {podSelector: {}, port: 80, colour: blue}\n", `x.yaml: document 2 (Server, line 4): json: unknown field "colour"`},
		"yaml syntax":   {prefix + prefix + srv + "spec: {podSelector: {, port: 80\n", "x.yaml: document 3: yaml: line "},
		"wrong apiVersion": {"apiVersion: sinew.dev/v1alpha1\n" + srv + "spec: {podSelector: {}, port: 80}\n",
			`x.yaml: document 1 (Server, line 1): apiVersion: must be policy.sinew.dev/v1alpha1, got "sinew.dev/v1alpha1"`},
		"client neither": {"kind: ServerAuthorization\nmetadata: {name: a}\nspec: {server: {name: s}, client: {networks: [{cidr: 10.0.0.0/8}]}}\n",
			"spec.client: give meshTLS (meshed clients) or unauthenticated: true (any client), not both and not neither"},
		"server name and selector": {"kind: ServerAuthorization\nmetadata: {name: a}\nspec: {server: {name: s, selector: {}}, client: {unauthenticated: true}}\n",
			"spec.server: give exactly one of name and selector"},
		"bad network": {"kind: ServerAuthorization\nmetadata: {name: a}\nspec: {server: {name: s}, client: {unauthenticated: true, networks: [{cidr: 10.0.0.0/40, except: [nope]}]}}\n",
			`spec.client.networks[0].cidr: "10.0.0.0/40" is not a network in CIDR notation (10.0.0.0/8, fd00::/8); spec.client.networks[0].except[0]`},
		"bad target": {"kind: AuthorizationPolicy\nmetadata: {name: a}\nspec: {targetRef: {kind: Service, name: s}, requiredAuthenticationRefs: []}\n",
			`spec.targetRef: must be a Server`},
		"bad authentication": {"kind: AuthorizationPolicy\nmetadata: {name: a}\nspec: {targetRef: {kind: Namespace, name: x}, requiredAuthenticationRefs: [{kind: MeshTLSAuthentication, name: m}]}\n",
			`spec.requiredAuthenticationRefs[0]: an authentication is a MeshTLSAuthentication`},
		"meshtls both": {"kind: MeshTLSAuthentication\nmetadata: {name: a}\nspec: {identities: ['*'], identityRefs: [{kind: Namespace}]}\n",
			"spec: give exactly one of identities and identityRefs"},
		"meshtls bad identity": {"kind: MeshTLSAuthentication\nmetadata: {name: a}\nspec: {identities: [web]}\n", `spec.identities[0]: "web" is not`},
		"network none":         {"kind: NetworkAuthentication\nmetadata: {name: a}\nspec: {networks: []}\n", "spec.networks: at least one network is required"},
		"bad name":             {"kind: NetworkAuthentication\nmetadata: {name: A}\nspec: {networks: [{cidr: 10.0.0.0/8}]}\n", `metadata.name: "A" must consist of`},
		"workload bad policy": {"kind: Workload\nmetadata: {name: w, annotations: {config.sinew.dev/default-inbound-policy: allow}}\n",
			`x.yaml: document 1 (Workload w, line 1): metadata.annotations: config.sinew.dev/default-inbound-policy: must be one of`},
	} {
		_, err := parseFile("x.yaml", []byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", name, err, tc.want)
		}
	}
}

// A Workload's config.sinew.dev/mtls-mode sets its ports' modes; local Workloads are reached only through their
// proxy's inbound address.
func TestParseMTLSModes(t *testing.T) {
	t.Parallel()
	p, err := parseFile("x.yaml", []byte(`kind: Workload
metadata: {name: web, annotations: {config.sinew.dev/mtls-mode: "STRICT,http=DISABLE"}}
spec: {meshPort: 4143, ports: [{name: http, port: 8080}, {name: admin, port: 9990}]}
`))
	if err != nil {
		t.Fatal(err)
	}
	w := p.workloads[0]
	want := authzapi.PortMTLSModes{All: authzapi.MTLSStrict, Ports: []authzapi.PortRangeMTLSMode{{First: 8080, Last: 8080, Mode: authzapi.MTLSDisable}}}
	if !reflect.DeepEqual(w.MTLSModes, want) || !w.ExplicitInbound {
		t.Errorf("workload %+v", w)
	}
}

// A bad mode refuses the file with its place (so the last good content stays and a typo never weakens a port), and
// so does DISABLE on a port a local proxy cannot take plaintext for.
func TestParseMTLSModeErrors(t *testing.T) {
	t.Parallel()
	const prefix = "kind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 80}]}\n---\n"
	doc := func(ann string) string {
		return prefix + "kind: Workload\nmetadata: {name: w, annotations: {config.sinew.dev/mtls-mode: \"" + ann + "\"}}\n" +
			"spec: {meshPort: 4143, ports: [{name: http, port: 8080}, {name: admin, port: 9990}]}\n"
	}
	for name, tc := range map[string]struct{ ann, want string }{
		"bad mode":      {"STRCT", `x.yaml: document 2 (Workload w, line 5): metadata.annotations: config.sinew.dev/mtls-mode: "STRCT": "STRCT" is not an mTLS mode: want one of STRICT, PERMISSIVE, DISABLE, or PORT=MODE`},
		"bad port mode": {"8080=PLAIN", `"8080=PLAIN": "PLAIN" is not an mTLS mode`},
		"unknown name":  {"grpc=STRICT", `"grpc": no port by that name`},
		"undeclared":    {"7000=STRICT", `config.sinew.dev/mtls-mode: 7000: no port of the Workload is there (spec.ports)`},
		"disable a later port": {"admin=DISABLE",
			`config.sinew.dev/mtls-mode: DISABLE for port 9990: in local mode only the Workload's first port (8080) can be DISABLE`},
		"disable every port": {"DISABLE", `DISABLE for port 9990`},
	} {
		_, err := parseFile("x.yaml", []byte(doc(tc.ann)))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", name, err, tc.want)
		}
	}
	if _, err := parseFile("x.yaml", []byte(doc("DISABLE,admin=STRICT"))); err != nil {
		t.Errorf("DISABLE on the first port only: %v", err)
	}
}

// TestParseHTTPRoute: an HTTPRoute is read in the Gateway API's own types, with the namespace defaulted; a
// route with the wrong apiVersion, an unknown field or an invalid spec refuses the file, naming the document's
// line and the field.
func TestParseHTTPRoute(t *testing.T) {
	t.Parallel()
	p, err := parseFile("routes.yaml", []byte(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web-split}
spec:
  parentRefs: [{group: "", kind: Service, name: web-svc, port: 80}]
  rules:
  - matches: [{headers: [{name: x-canary, value: "yes"}]}]
    backendRefs: [{name: web-v2, port: 80}]
  - backendRefs: [{name: web-v1, port: 80, weight: 90}, {name: web-v2, port: 80, weight: 10}]
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.httpRoutes) != 1 {
		t.Fatalf("got %d routes", len(p.httpRoutes))
	}
	rt := p.httpRoutes[0]
	if rt.Namespace != "default" || rt.Name != "web-split" || len(rt.Spec.Rules) != 2 || *rt.Spec.Rules[1].BackendRefs[0].Weight != 90 {
		t.Errorf("route: %+v", rt)
	}

	for _, tc := range []struct{ doc, want string }{
		{`apiVersion: gateway.networking.k8s.io/v1beta1
kind: HTTPRoute
metadata: {name: r}`, "routes.yaml: document 2 (HTTPRoute, line 4): apiVersion: must be gateway.networking.k8s.io/v1"},
		{`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec: {rulez: []}`, `routes.yaml: document 2 (HTTPRoute, line 4): json: unknown field "rulez"`},
		{`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  rules:
  - matches: [{path: {type: Exact, value: "api"}}]
    backendRefs: [{name: web, weight: 2000000}]`, "routes.yaml: document 2 (HTTPRoute r, line 4): spec.rules[0].matches[0].path.value: must be an absolute path (start with /), " +
			`got "api"; spec.rules[0].backendRefs[0].port: required for a Service backend; spec.rules[0].backendRefs[0].weight: must be 0-1000000, got 2000000`},
	} {
		_, err := parseFile("routes.yaml", []byte("kind: Workload\nmetadata: {name: w}\n---\n"+tc.doc))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v\nwant it to contain %s", err, tc.want)
		}
	}
}

// TestParseGRPCRoute: a GRPCRoute is read like an HTTPRoute, into its own list; an invalid one (a method match
// with neither service nor method, a filter type GRPCRoute does not have) refuses the file with field paths.
func TestParseGRPCRoute(t *testing.T) {
	t.Parallel()
	p, err := parseFile("routes.yaml", []byte(`apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: voting, namespace: emojivoto}
spec:
  parentRefs: [{group: "", kind: Service, name: voting-svc, port: 8080}]
  rules:
  - matches: [{method: {service: emojivoto.v1.VotingService, method: VoteDoughnut}}]
    backendRefs: [{name: voting-v2, port: 8080}]
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.grpcRoutes) != 1 || len(p.httpRoutes) != 0 {
		t.Fatalf("got %d gRPC routes, %d HTTP routes", len(p.grpcRoutes), len(p.httpRoutes))
	}
	if rt := p.grpcRoutes[0]; rt.Namespace != "emojivoto" || *rt.Spec.Rules[0].Matches[0].Method.Method != "VoteDoughnut" {
		t.Errorf("route: %+v", rt)
	}
	_, err = parseFile("routes.yaml", []byte(`kind: Workload
metadata: {name: w}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: r}
spec:
  rules:
  - matches: [{method: {type: Exact}}]
    filters: [{type: URLRewrite}]`))
	for _, want := range []string{
		"routes.yaml: document 2 (GRPCRoute r, line 4): spec.rules[0].matches[0].method: one or both of service or method must be specified",
		`spec.rules[0].filters[0].type: must be RequestHeaderModifier, ResponseHeaderModifier, RequestMirror or ExtensionRef, got "URLRewrite"`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v\nwant it to contain %s", err, want)
		}
	}
}
