package inject

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	goldenfile "github.com/sinewmesh/sinew/internal/golden"
	"github.com/sinewmesh/sinew/internal/names"
)

func TestGatewayPodTemplateGolden(t *testing.T) {
	t.Parallel()
	in := GatewayInput{
		Namespace: "emojivoto", Name: "public",
		Ports:       []int32{443, 80, 443, names.ProxyAdminPort},
		Labels:      map[string]string{"team": "edge", names.GatewayLabel: "not-this"},
		Annotations: map[string]string{"example.com/owner": "edge", names.AnnProxyLogLevel: "debug"},
	}
	tmpl, err := GatewayPodTemplate(in, testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	got, err := yaml.Marshal(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	goldenfile.CheckYAML(t, "testdata/gateway/public.golden.yaml", string(got))
}

func TestGatewayPodTemplate(t *testing.T) {
	t.Parallel()
	tmpl, err := GatewayPodTemplate(GatewayInput{Namespace: "ns", Name: "gw", Ports: []int32{8080}}, testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	spec := tmpl.Spec
	if spec.ServiceAccountName != names.GatewayResourceName("gw") {
		t.Errorf("service account %q", spec.ServiceAccountName)
	}
	if len(spec.Containers) != 1 || spec.Containers[0].Name != names.ProxyContainer || len(spec.InitContainers) != 0 {
		t.Fatalf("containers: want only %s, got %+v", names.ProxyContainer, spec.Containers)
	}
	c := spec.Containers[0]
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	for k, want := range map[string]string{
		"SINEW_PROXY_MODE":                   "gateway",
		"SINEW_PROXY_GATEWAY":                "ns/gw",
		"SINEW_PROXY_DEFAULT_INBOUND_POLICY": names.PolicyAllUnauthenticated,
		"SINEW_PROXY_SHUTDOWN_DRAIN_DELAY":   PlainSidecarDrainDelay,
		"SINEW_PROXY_IDENTITY_TOKEN_FILE":    names.TokenPath,
	} {
		if env[k] != want {
			t.Errorf("%s = %q, want %q", k, env[k], want)
		}
	}
	if _, ok := env["SINEW_PROXY_INGRESS_MODE"]; ok {
		t.Error("a gateway proxy is not in ingress mode")
	}
	if c.RestartPolicy != nil {
		t.Error("a gateway proxy is a plain container, not a native sidecar")
	}
	if !slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.ContainerPort == 8080 && p.Name == "gw-8080" }) {
		t.Errorf("no listener port in %+v", c.Ports)
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/ready" {
		t.Errorf("readiness probe %+v", c.ReadinessProbe)
	}
	if !slices.Contains(spec.SecurityContext.Sysctls, corev1.Sysctl{Name: "net.ipv4.ip_unprivileged_port_start", Value: "0"}) {
		t.Errorf("sysctls %+v", spec.SecurityContext.Sysctls)
	}
	if tmpl.Annotations[names.InjectAnnotation] != names.InjectDisabled {
		t.Errorf("the injector must leave the gateway alone: %v", tmpl.Annotations)
	}
	if tmpl.Labels[names.GatewayLabel] != "gw" || tmpl.Labels[names.DeploymentLabel] != names.GatewayResourceName("gw") {
		t.Errorf("labels %v", tmpl.Labels)
	}
	if len(spec.Volumes) != 1 || spec.Volumes[0].Name != names.TokenVolume {
		t.Errorf("volumes %+v", spec.Volumes)
	}
}

func TestGatewayPodTemplateBadAnnotation(t *testing.T) {
	t.Parallel()
	_, err := GatewayPodTemplate(GatewayInput{Namespace: "ns", Name: "gw",
		Annotations: map[string]string{names.AnnProxyLogLevel: "loud"}}, testConfig(t))
	if !IsInvalidConfig(err) {
		t.Fatalf("want a configuration error, got %v", err)
	}
	if _, err := GatewayPodTemplate(GatewayInput{Name: "gw"}, testConfig(t)); err == nil {
		t.Fatal("no namespace: want an error")
	}
}

// The injector leaves a gateway's pods alone, even in a namespace that asks for injection.
func TestGatewayPodNotInjected(t *testing.T) {
	t.Parallel()
	tmpl, err := GatewayPodTemplate(GatewayInput{Namespace: "ns", Name: "gw", Ports: []int32{80}}, testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Inject(Input{Pod: &corev1.Pod{ObjectMeta: tmpl.ObjectMeta, Spec: tmpl.Spec},
		NamespaceAnnotations: map[string]string{names.InjectAnnotation: names.InjectEnabled}}, testConfig(t))
	if err != nil || res.Skipped != SkipDisabled {
		t.Fatalf("got %+v, %v; want skipped as disabled", res, err)
	}
}
