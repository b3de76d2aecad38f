package inject

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	goldenfile "github.com/sinewmesh/sinew/internal/golden"
	"github.com/sinewmesh/sinew/internal/names"
)

// testCase is testdata/cases/<name>.yaml: the inputs of one Inject call.
type testCase struct {
	Namespace            string            `json:"namespace"`
	NamespaceAnnotations map[string]string `json:"namespaceAnnotations"`
	WorkloadAnnotations  map[string]string `json:"workloadAnnotations"`
	Owner                Owner             `json:"owner"`
	Manual               bool              `json:"manual"`
	Config               *struct {
		ControlPlaneNamespace string        `json:"controlPlaneNamespace"`
		Registry              string        `json:"registry"`
		ProxyImage            string        `json:"proxyImage"`
		Proxy                 ProxyDefaults `json:"proxy"`
	} `json:"config"`
	Pod corev1.Pod `json:"pod"`
}

// golden is testdata/cases/<name>.golden.yaml: what Inject returned.
type golden struct {
	Error   string      `json:"error,omitempty"`
	Skipped SkipReason  `json:"skipped,omitempty"`
	Detail  string      `json:"detail,omitempty"`
	Pod     *corev1.Pod `json:"pod,omitempty"`
	Patch   []PatchOp   `json:"patch,omitempty"`
}

func testConfig(t *testing.T) Config {
	t.Helper()
	pem, err := os.ReadFile("testdata/trust-anchors.pem")
	if err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	c.TrustAnchorsPEM = string(pem)
	c.Tag = "1.2.3"
	c.CreatedBy = "sinew/test 1.2.3"
	return c
}

func TestInjectGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/cases/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range files {
		if strings.HasSuffix(f, ".golden.yaml") {
			continue
		}
		n++
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var tc testCase
			if err := yaml.UnmarshalStrict(raw, &tc); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			cfg := testConfig(t)
			if tc.Config != nil {
				cfg.ControlPlaneNamespace = tc.Config.ControlPlaneNamespace
				cfg.Registry = tc.Config.Registry
				cfg.ProxyImage = tc.Config.ProxyImage
				p := tc.Config.Proxy
				if p.UID == 0 {
					p.UID = cfg.Proxy.UID
				}
				cfg.Proxy = p
			}
			in := Input{Pod: &tc.Pod, Namespace: tc.Namespace, NamespaceAnnotations: tc.NamespaceAnnotations,
				WorkloadAnnotations: tc.WorkloadAnnotations, Owner: tc.Owner, Manual: tc.Manual}
			orig := tc.Pod.DeepCopy()
			res, injErr := Inject(in, cfg)
			var g golden
			if err := injErr; err != nil {
				if !IsInvalidConfig(err) {
					t.Errorf("error %v is not IsInvalidConfig", err)
				}
				g.Error = err.Error()
			} else {
				g.Skipped, g.Detail, g.Pod, g.Patch = res.Skipped, res.Detail, res.Pod, res.Patch
				checkPatch(t, orig, res)
			}
			if !equalJSON(t, orig, &tc.Pod) {
				t.Error("Inject modified its input pod")
			}
			got, err := yaml.Marshal(g)
			if err != nil {
				t.Fatal(err)
			}
			compareGolden(t, strings.TrimSuffix(f, ".yaml")+".golden.yaml", got)

			// the same input gives the same bytes (map iteration must not leak into the output)
			for range 5 {
				res2, err2 := Inject(in, cfg)
				if (injErr == nil) != (err2 == nil) || (injErr == nil && !equalJSON(t, res, res2)) ||
					(injErr != nil && injErr.Error() != err2.Error()) {
					t.Fatal("Inject is not deterministic")
				}
			}
		})
	}
	if n < 10 {
		t.Fatalf("only %d cases in testdata/cases", n)
	}
}

// checkPatch applies the patch to the original pod and expects the injected pod.
func checkPatch(t *testing.T, orig *corev1.Pod, res *Result) {
	t.Helper()
	if res.Skipped != "" {
		if res.Pod != nil || res.Patch != nil {
			t.Error("a skipped pod comes with a pod or a patch")
		}
		return
	}
	origJSON, _ := json.Marshal(orig)
	patchJSON, err := json.Marshal(res.Patch)
	if err != nil {
		t.Fatal(err)
	}
	p, err := jsonpatch.DecodePatch(patchJSON)
	if err != nil {
		t.Fatalf("patch does not decode: %v\n%s", err, patchJSON)
	}
	patched, err := p.Apply(origJSON)
	if err != nil {
		t.Fatalf("patch does not apply: %v\n%s", err, patchJSON)
	}
	var got corev1.Pod
	if err := json.Unmarshal(patched, &got); err != nil {
		t.Fatal(err)
	}
	if !equalJSON(t, &got, res.Pod) {
		a, _ := yaml.Marshal(&got)
		b, _ := yaml.Marshal(res.Pod)
		t.Errorf("the patch applied to the input is not the injected pod\n--- patched\n%s\n--- injected\n%s", a, b)
	}
}

func equalJSON(t *testing.T, a, b any) bool {
	t.Helper()
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	return bytes.Equal(x, y)
}

func compareGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	goldenfile.Check(t, path, got)
}

func TestOwnerOf(t *testing.T) {
	ref := func(kind, name string, controller bool) metav1.OwnerReference {
		c := controller
		return metav1.OwnerReference{Kind: kind, Name: name, Controller: &c}
	}
	for _, tc := range []struct {
		name   string
		refs   []metav1.OwnerReference
		labels map[string]string
		want   Owner
	}{
		{"bare pod", nil, nil, Owner{}},
		{"deployment", []metav1.OwnerReference{ref("ReplicaSet", "web-5d4f8c7b9", true)}, map[string]string{"pod-template-hash": "5d4f8c7b9"}, Owner{"Deployment", "web"}},
		{"deployment with dashes", []metav1.OwnerReference{ref("ReplicaSet", "vote-bot-api-7f9c", true)}, map[string]string{"pod-template-hash": "7f9c"}, Owner{"Deployment", "vote-bot-api"}},
		{"bare replicaset", []metav1.OwnerReference{ref("ReplicaSet", "frontend", true)}, nil, Owner{"ReplicaSet", "frontend"}},
		{"replicaset, hash not a suffix", []metav1.OwnerReference{ref("ReplicaSet", "frontend", true)}, map[string]string{"pod-template-hash": "abc"}, Owner{"ReplicaSet", "frontend"}},
		{"statefulset", []metav1.OwnerReference{ref("StatefulSet", "db", true)}, nil, Owner{"StatefulSet", "db"}},
		{"job", []metav1.OwnerReference{ref("Job", "backup-28374650", true)}, nil, Owner{"Job", "backup-28374650"}},
		{"non-controller refs ignored", []metav1.OwnerReference{ref("ConfigMap", "x", false), ref("DaemonSet", "agent", true)}, nil, Owner{"DaemonSet", "agent"}},
		{"nil controller", []metav1.OwnerReference{{Kind: "Job", Name: "j"}}, nil, Owner{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{OwnerReferences: tc.refs, Labels: tc.labels}}
			if got := OwnerOf(pod); got != tc.want {
				t.Errorf("OwnerOf = %+v, want %+v", got, tc.want)
			}
		})
	}
	// a kind without a label gets none
	if _, ok := (Owner{Kind: "Rollout", Name: "x"}).labelKey(); ok {
		t.Error("Rollout got a proxy label")
	}
	if k, ok := (Owner{Kind: "CronJob", Name: "x"}).labelKey(); !ok || k != "sinew.dev/proxy-cronjob" {
		t.Errorf("CronJob label key = %q", k)
	}
}

func TestConfigValidate(t *testing.T) {
	good := testConfig(t)
	if err := good.Validate(); err != nil {
		t.Fatalf("the test config is invalid: %v", err)
	}
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"no anchors", func(c *Config) { c.TrustAnchorsPEM = "" }, "trust anchors: none given"},
		{"not PEM", func(c *Config) { c.TrustAnchorsPEM = "hello" }, "no PEM certificate"},
		{"a key, not a cert", func(c *Config) { c.TrustAnchorsPEM = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n" }, `"PRIVATE KEY", want CERTIFICATE`},
		{"namespace", func(c *Config) { c.ControlPlaneNamespace = "Sinew_NS" }, "not a namespace name"},
		{"trust domain", func(c *Config) { c.TrustDomain = "a b" }, "trust domain"},
		{"tag", func(c *Config) { c.Tag = "1.0 beta" }, "not an image tag"},
		{"pull policy", func(c *Config) { c.ImagePullPolicy = "Sometimes" }, "want Always, IfNotPresent or Never"},
		{"default log level", func(c *Config) { c.Proxy.LogLevel = "trace" }, "default for config.sinew.dev/proxy-log-level"},
		{"default ports", func(c *Config) { c.Proxy.SkipOutboundPorts = "443,70000" }, `"70000" is not a port`},
		{"request over limit", func(c *Config) { c.Proxy.MemoryRequest, c.Proxy.MemoryLimit = "1Gi", "100Mi" }, "more than config.sinew.dev/proxy-memory-limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.mutate(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tc.want)
			}
			pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}}}
			if _, err := Inject(Input{Pod: pod, Manual: true}, c); !IsInvalidConfig(err) {
				t.Fatalf("Inject with a bad config: %v, want an invalid-config error", err)
			}
		})
	}
}

// A plain-container proxy gets SIGTERM with the app, so it keeps accepting for a while by default; a native sidecar
// gets it after the app has exited and has no delay unless the annotation asks for one.
func TestDrainDelayBySidecarKind(t *testing.T) {
	cfg := testConfig(t)
	for _, tc := range []struct {
		ann  map[string]string
		want string // "" = not set
	}{
		{map[string]string{}, ""},
		{map[string]string{names.AnnProxyNativeSidecar: "false"}, PlainSidecarDrainDelay},
		{map[string]string{names.AnnProxyNativeSidecar: "false", names.AnnShutdownDrainDelay: "0s"}, "0s"},
		{map[string]string{names.AnnShutdownDrainDelay: "3s"}, "3s"},
	} {
		ann := map[string]string{names.InjectAnnotation: names.InjectEnabled}
		maps.Copy(ann, tc.ann)
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: ann}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}}}
		res, err := Inject(Input{Pod: pod}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		for _, c := range slices.Concat(res.Pod.Spec.InitContainers, res.Pod.Spec.Containers) {
			for _, e := range c.Env {
				if e.Name == "SINEW_PROXY_SHUTDOWN_DRAIN_DELAY" {
					got = e.Value
				}
			}
		}
		if got != tc.want {
			t.Errorf("annotations %v: SINEW_PROXY_SHUTDOWN_DRAIN_DELAY=%q, want %q", tc.ann, got, tc.want)
		}
	}
}

// proxyEnv is the value of the injected proxy's environment variable name ("" when unset).
func proxyEnv(t *testing.T, res *Result, name string) string {
	t.Helper()
	for _, c := range slices.Concat(res.Pod.Spec.InitContainers, res.Pod.Spec.Containers) {
		if c.Name != names.ProxyContainer {
			continue
		}
		for _, e := range c.Env {
			if e.Name == name {
				return e.Value
			}
		}
	}
	return ""
}

// TestServerPorts: the ports of the Servers that select the pod reach the proxy (names resolved against the
// pod's container ports), so that until the control plane answers only they admit nobody; unknown, the proxy is
// not told (and treats every port as covered). The default inbound policy travels with them.
func TestServerPorts(t *testing.T) {
	cfg := testConfig(t)
	cfg.Proxy.DefaultInboundPolicy = "cluster-authenticated"
	pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app",
		Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}, {Name: "admin", ContainerPort: 9990}}}}}}
	for _, tc := range []struct {
		name  string
		known bool
		ports []intstr.IntOrString
		want  string
	}{
		{"unknown", false, nil, ""},
		{"none", true, nil, "none"},
		{"named and numbered", true, []intstr.IntOrString{intstr.FromString("http"), intstr.FromInt32(7000), intstr.FromInt32(8080)}, "7000,8080"},
		{"a name the pod lacks", true, []intstr.IntOrString{intstr.FromString("grpc")}, "none"},
		{"adjacent", true, []intstr.IntOrString{intstr.FromInt32(9991), intstr.FromString("admin")}, "9990-9991"},
	} {
		res, err := Inject(Input{Pod: pod, Manual: true, ServerPorts: tc.ports, ServersKnown: tc.known}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if got := proxyEnv(t, res, "SINEW_PROXY_INBOUND_SERVER_PORTS"); got != tc.want {
			t.Errorf("%s: SINEW_PROXY_INBOUND_SERVER_PORTS=%q, want %q", tc.name, got, tc.want)
		}
		if got := proxyEnv(t, res, "SINEW_PROXY_DEFAULT_INBOUND_POLICY"); got != "cluster-authenticated" {
			t.Errorf("%s: SINEW_PROXY_DEFAULT_INBOUND_POLICY=%q", tc.name, got)
		}
	}
	// The namespace's annotation wins over the install's value, the pod's over both.
	res, err := Inject(Input{Pod: pod, Manual: true, NamespaceAnnotations: map[string]string{names.AnnDefaultInboundPolicy: "deny"}}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := proxyEnv(t, res, "SINEW_PROXY_DEFAULT_INBOUND_POLICY"); got != "deny" {
		t.Errorf("namespace annotation deny: SINEW_PROXY_DEFAULT_INBOUND_POLICY=%q", got)
	}
}

// TestIngressMode: sinew.dev/inject: ingress (on the pod or its namespace), or a manual injection for an ingress,
// gives the proxy ingress mode; enabled does not.
func TestIngressMode(t *testing.T) {
	cfg := testConfig(t)
	for _, tc := range []struct {
		name   string
		pod    map[string]string
		ns     map[string]string
		manual bool
		ingr   bool
		want   string
	}{
		{"pod ingress", map[string]string{names.InjectAnnotation: names.InjectIngress}, nil, false, false, "true"},
		{"namespace ingress", nil, map[string]string{names.InjectAnnotation: names.InjectIngress}, false, false, "true"},
		{"pod enabled beats namespace ingress", map[string]string{names.InjectAnnotation: names.InjectEnabled},
			map[string]string{names.InjectAnnotation: names.InjectIngress}, false, false, ""},
		{"enabled", map[string]string{names.InjectAnnotation: names.InjectEnabled}, nil, false, false, ""},
		{"manual", nil, nil, true, false, ""},
		{"manual ingress", nil, nil, true, true, "true"},
	} {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: tc.pod}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}}}
		res, err := Inject(Input{Pod: pod, NamespaceAnnotations: tc.ns, Manual: tc.manual, Ingress: tc.ingr}, cfg)
		if err != nil || res.Pod == nil {
			t.Fatalf("%s: %v %+v", tc.name, err, res)
		}
		if got := proxyEnv(t, res, "SINEW_PROXY_INGRESS_MODE"); got != tc.want {
			t.Errorf("%s: SINEW_PROXY_INGRESS_MODE=%q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestValues checks each knob's parsing through the rendered pod.
func TestKnobValues(t *testing.T) {
	cfg := testConfig(t)
	for _, tc := range []struct {
		ann, value string
		ok         bool
		check      string // substring of the rendered injected pod (JSON) when ok
	}{
		{names.AnnSkipInboundPorts, "8080, 25,8000-8090,8081", true, `"--skip-inbound-ports=25,8000-8090"`},
		{names.AnnSkipInboundPorts, "http", false, ""},
		{names.AnnSkipInboundPorts, "90-80", false, ""},
		{names.AnnSkipOutboundPorts, "", true, `"--skip-outbound-ports="`},
		{names.AnnSkipSubnets, "10.1.2.3/8, 192.168.0.1,fd00::/8", true, `"--skip-subnets=10.0.0.0/8,192.168.0.1/32,fd00::/8"`},
		{names.AnnSkipSubnets, "10.0.0.0/33", false, ""},
		{names.AnnOpaquePorts, "5432,http-metrics", true, `"value":"5432,9102"`},
		{names.AnnOpaquePorts, "nosuchport", false, ""},
		{names.AnnProxyLogLevel, "DEBUG", true, `"value":"debug"`},
		{names.AnnProxyLogLevel, "warn,sinew=info", false, ""},
		{names.AnnProxyLogFormat, "text", true, `{"name":"SINEW_PROXY_LOG_FORMAT","value":"text"}`},
		{names.AnnProxyLogFormat, "plain", false, ""},
		{names.AnnProxyCPURequest, "100m", true, `"requests":{"cpu":"100m"}`},
		{names.AnnProxyCPULimit, "a lot", false, ""},
		{names.AnnProxyMemoryLimit, "0", false, ""},
		{names.AnnProxyMemoryLimit, "256Mi", true, `"limits":{"memory":"256Mi"}`},
		{names.AnnProxyUID, "3000", true, `"--proxy-uid=3000"`},
		{names.AnnProxyUID, "0", false, ""},
		{names.AnnProxyUID, "-5", false, ""},
		{names.AnnProxyImage, "registry.example/mesh/proxy", true, `"image":"registry.example/mesh/proxy:1.2.3"`},
		{names.AnnProxyImage, "registry.example/mesh/proxy:pinned", true, `"image":"registry.example/mesh/proxy:pinned"`},
		{names.AnnProxyImage, "registry.example:5000/proxy", true, `"image":"registry.example:5000/proxy:1.2.3"`},
		{names.AnnProxyImage, "proxy@sha256:abcd", true, `"image":"proxy@sha256:abcd"`},
		{names.AnnProxyImage, "has space", false, ""},
		{names.AnnProxyVersion, "9.9.9", true, `"sinew.dev/proxy-version":"9.9.9"`},
		{names.AnnProxyVersion, "bad tag!", false, ""},
		{names.AnnInitImage, "other/init", true, `"image":"other/init:1.2.3"`},
		{names.AnnImagePullPolicy, "Always", true, `"imagePullPolicy":"Always"`},
		{names.AnnImagePullPolicy, "always", false, ""},
		{names.AnnProxyAwait, "disabled", true, ""},
		{names.AnnProxyAwait, "no", false, ""},
		{names.AnnProxyNativeSidecar, "false", true, `"containers":[{"name":"sinew-proxy"`},
		{names.AnnProxyNativeSidecar, "off", false, ""},
		{names.AnnShutdownGracePeriod, "30s", true, `{"name":"SINEW_PROXY_SHUTDOWN_GRACE_PERIOD","value":"30s"}`},
		{names.AnnShutdownGracePeriod, "30", false, ""},
		{names.AnnShutdownDrainDelay, "0s", true, `{"name":"SINEW_PROXY_SHUTDOWN_DRAIN_DELAY","value":"0s"}`},
		{names.AnnShutdownDrainDelay, "10s", true, `{"name":"SINEW_PROXY_SHUTDOWN_DRAIN_DELAY","value":"10s"}`},
		{names.AnnShutdownDrainDelay, "-1s", false, ""},
		{names.AnnShutdownDrainDelay, "5", false, ""},
		{names.AnnOutboundConnectTimeout, "500ms", true, `{"name":"SINEW_PROXY_CONNECT_TIMEOUT","value":"500ms"}`},
		{names.AnnOutboundConnectTimeout, "-1s", false, ""},
		{names.AnnDefaultInboundPolicy, "deny", true, ""},
		{names.AnnDefaultInboundPolicy, "allow", false, ""},
		{names.AnnMTLSMode, "STRICT", true, ""},
		{names.AnnMTLSMode, "strict", true, ""},
		{names.AnnMTLSMode, "PERMISSIVE,http-metrics=DISABLE", true, ""},
		{names.AnnMTLSMode, "9102=STRICT,9000-9010=DISABLE", true, ""},
		{names.AnnMTLSMode, "optional", false, ""},
		{names.AnnMTLSMode, "9102=STRICTLY", false, ""},
		{names.AnnMTLSMode, "grpc=STRICT", false, ""},
		{names.AnnMTLSMode, "STRICT,DISABLE", false, ""},
	} {
		t.Run(tc.ann+"="+tc.value, func(t *testing.T) {
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{names.InjectAnnotation: names.InjectEnabled, tc.ann: tc.value}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app",
					Ports: []corev1.ContainerPort{{Name: "http-metrics", ContainerPort: 9102}}}}},
			}
			res, err := Inject(Input{Pod: pod}, cfg)
			if !tc.ok {
				if err == nil {
					t.Fatal("accepted")
				}
				var ae *AnnotationError
				if !errors.As(err, &ae) || ae.Annotation != tc.ann || ae.Level != LevelPod {
					t.Fatalf("error %q does not name %s on the pod template", err, tc.ann)
				}
				if !strings.Contains(err.Error(), tc.ann) || !strings.Contains(err.Error(), "pod template") {
					t.Fatalf("message %q does not say which annotation and where", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			js, _ := json.Marshal(res.Pod)
			if !strings.Contains(string(js), tc.check) {
				t.Errorf("injected pod lacks %s:\n%s", tc.check, js)
			}
		})
	}
}

func TestSkips(t *testing.T) {
	cfg := testConfig(t)
	base := func() *corev1.Pod {
		return &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}}}
	}
	enabled := map[string]string{names.InjectAnnotation: names.InjectEnabled}
	for _, tc := range []struct {
		name   string
		pod    func() *corev1.Pod
		ns     map[string]string
		manual bool
		want   SkipReason
	}{
		{"nothing says so", base, nil, false, SkipNotEnabled},
		{"namespace enabled", base, enabled, false, ""},
		{"namespace ingress", base, map[string]string{names.InjectAnnotation: names.InjectIngress}, false, ""},
		{"namespace disabled", base, map[string]string{names.InjectAnnotation: names.InjectDisabled}, false, SkipDisabled},
		{"pod disabled beats namespace", func() *corev1.Pod {
			p := base()
			p.Annotations = map[string]string{names.InjectAnnotation: names.InjectDisabled}
			return p
		}, enabled, false, SkipDisabled},
		{"pod disabled beats manual", func() *corev1.Pod {
			p := base()
			p.Annotations = map[string]string{names.InjectAnnotation: names.InjectDisabled}
			return p
		}, nil, true, SkipDisabled},
		{"pod enabled beats namespace disabled", func() *corev1.Pod {
			p := base()
			p.Annotations = enabled
			return p
		}, map[string]string{names.InjectAnnotation: names.InjectDisabled}, false, ""},
		{"manual needs no annotation", base, nil, true, ""},
		{"host network", func() *corev1.Pod { p := base(); p.Spec.HostNetwork = true; return p }, enabled, false, SkipHostNetwork},
		{"already injected (native)", func() *corev1.Pod {
			p := base()
			p.Spec.InitContainers = []corev1.Container{{Name: names.ProxyContainer}}
			return p
		}, enabled, false, SkipAlreadyInjected},
		{"already injected (classic)", func() *corev1.Pod {
			p := base()
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: names.ProxyContainer})
			return p
		}, enabled, true, SkipAlreadyInjected},
		{"istio sidecar", func() *corev1.Pod {
			p := base()
			p.Spec.InitContainers = []corev1.Container{{Name: "istio-init"}}
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "istio-proxy"})
			return p
		}, enabled, true, SkipOtherMesh},
		{"linkerd sidecar (native)", func() *corev1.Pod {
			p := base()
			p.Spec.InitContainers = []corev1.Container{{Name: "linkerd-init"}, {Name: "linkerd-proxy"}}
			return p
		}, enabled, false, SkipOtherMesh},
		{"other mesh but not enabled", func() *corev1.Pod {
			p := base()
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "istio-proxy"})
			return p
		}, nil, false, SkipNotEnabled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Inject(Input{Pod: tc.pod(), NamespaceAnnotations: tc.ns, Manual: tc.manual}, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if res.Skipped != tc.want {
				t.Fatalf("Skipped = %q (%s), want %q", res.Skipped, res.Detail, tc.want)
			}
			if tc.want != "" && res.Detail == "" {
				t.Error("a skip without a detail")
			}
		})
	}
	// the other mesh's container is named, its sidecar before its init container; AllowOtherMesh injects anyway
	istio := base()
	istio.Spec.InitContainers = []corev1.Container{{Name: "istio-init"}}
	istio.Spec.Containers = append(istio.Spec.Containers, corev1.Container{Name: "istio-proxy"})
	res, err := Inject(Input{Pod: istio, Manual: true}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if want := "already has istio-proxy (Istio's sidecar): a pod can be in one mesh only"; res.Detail != want {
		t.Errorf("Detail = %q, want %q", res.Detail, want)
	}
	if res, err = Inject(Input{Pod: istio, Manual: true, AllowOtherMesh: true}, cfg); err != nil || res.Skipped != "" {
		t.Fatalf("AllowOtherMesh: %v, skipped %q", err, res.Skipped)
	}
	if got := OtherMesh([]string{"app", "istio-init"}); !strings.Contains(got, "istio-init (Istio's init container)") {
		t.Errorf("OtherMesh(istio-init) = %q", got)
	}
	// a bad sinew.dev/inject value is an error naming it
	_, err = Inject(Input{Pod: base(), NamespaceAnnotations: map[string]string{names.InjectAnnotation: "true"}}, cfg)
	if !IsInvalidConfig(err) || !strings.Contains(err.Error(), `sinew.dev/inject="true" on the namespace`) {
		t.Fatalf("bad inject value: %v", err)
	}
}

func TestPrecedence(t *testing.T) {
	cfg := testConfig(t)
	cfg.Proxy.LogLevel = "error"
	level := func(ns, wl, pod string) string {
		t.Helper()
		m := func(v string) map[string]string {
			if v == "" {
				return nil
			}
			return map[string]string{names.AnnProxyLogLevel: v}
		}
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: m(pod)}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}}}
		res, err := Inject(Input{Pod: p, NamespaceAnnotations: m(ns), WorkloadAnnotations: m(wl), Manual: true}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range res.Pod.Spec.InitContainers[1].Env {
			if e.Name == "SINEW_PROXY_LOG_LEVEL" {
				return e.Value
			}
		}
		t.Fatal("no SINEW_PROXY_LOG_LEVEL")
		return ""
	}
	for _, tc := range []struct{ ns, wl, pod, want string }{
		{"", "", "", "error"},
		{"warn", "", "", "warn"},
		{"warn", "info", "", "info"},
		{"warn", "info", "debug", "debug"},
		{"", "", "debug", "debug"},
		{"warn", "", "debug", "debug"},
	} {
		if got := level(tc.ns, tc.wl, tc.pod); got != tc.want {
			t.Errorf("ns=%q workload=%q pod=%q: level %q, want %q", tc.ns, tc.wl, tc.pod, got, tc.want)
		}
	}
	// every bad level is reported, each with its place
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{names.AnnProxyUID: "x"}}}
	_, err := Inject(Input{Pod: p, Manual: true,
		NamespaceAnnotations: map[string]string{names.AnnProxyCPULimit: "lots"},
		WorkloadAnnotations:  map[string]string{names.AnnSkipSubnets: "nope"}}, cfg)
	for _, want := range []string{"proxy-cpu-limit=\"lots\" on the namespace", "skip-subnets=\"nope\" on the workload", "proxy-uid=\"x\" on the pod template"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}

// TestReferenceDoc keeps docs/reference/injection.md listing every annotation the injector reads and adds.
func TestReferenceDoc(t *testing.T) {
	doc, err := os.ReadFile("../../docs/reference/injection.md")
	if err != nil {
		t.Fatal(err)
	}
	want := append(append([]string{names.InjectAnnotation, names.ControlPlaneNSLabel, names.WorkloadNSLabel}, names.ConfigAnnotations...), InjectedAnnotations...)
	for _, k := range names.OwnerKinds {
		want = append(want, names.OwnerLabelPrefix+k)
	}
	for _, k := range want {
		if !bytes.Contains(doc, []byte("`"+k+"`")) {
			t.Errorf("docs/reference/injection.md does not document `%s`", k)
		}
	}
}
