package cli

import (
	"reflect"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/sinewmesh/sinew/cli/chartcmd"
	"github.com/sinewmesh/sinew/controlplane/inject"
	goldenfile "github.com/sinewmesh/sinew/internal/golden"
	"github.com/sinewmesh/sinew/internal/names"
)

// TestChartSidecarMatchesInjector checks that the proxy the chart renders into each control-plane pod is what
// controlplane/inject (the webhook and `sinew inject --manual`) produces for the same pod and settings: the pod
// template without its sinew containers, injected with the config the chart gives the injector. The one intended
// difference: the identity pod's proxy asks its own container for its certificate (localhost:8080).
func TestChartSidecarMatchesInjector(t *testing.T) {
	cases := map[string][]string{
		"default":   {},
		"overrides": {"--proxy-cpu-request", "50m", "--proxy-memory-limit", "128Mi", "--skip-inbound-ports", "25", "--skip-outbound-ports", "3306", "--proxy-log-level", "debug", "--set", "proxy.shutdownGracePeriod=30s,proxy.connectTimeout=2s,proxyInit.skipSubnets=10.96.0.0/12"},
		"plain":     {"--native-sidecar=false", "--registry", "registry.example/sinew", "--image-tag", "v9"},
	}
	for name, args := range cases {
		t.Run(name, func(t *testing.T) {
			out := mustRun(t, testEnv(t, nil), append([]string{"install", "--ignore-cluster"}, args...)...)
			objs := decodeAll(t, out)
			var vals map[string]any
			if err := yaml.Unmarshal([]byte(configValues(t, objs)), &vals); err != nil {
				t.Fatal(err)
			}
			cfg := injectConfig(t, vals)
			n := 0
			for _, o := range objs {
				d, ok := o.(*appsv1.Deployment)
				if !ok {
					continue
				}
				n++
				compareInjected(t, d, cfg)
			}
			if n != 3 {
				t.Fatalf("%d deployments", n)
			}
		})
	}
}

// injectConfig is the injector's configuration from the stored values, as the chart's injector flags set it: what
// inject --manual reads from an installed control plane (applyValues), with the trust anchors.
func injectConfig(t *testing.T, stored map[string]any) inject.Config {
	t.Helper()
	v, err := chartcmd.DecodeInstalled(stored)
	if err != nil {
		t.Fatal(err)
	}
	c := inject.DefaultConfig()
	c.ControlPlaneNamespace = "sinew"
	applyValues(&c, v)
	c.TrustAnchorsPEM = v.Identity.TrustAnchorsPEM
	c.CreatedBy = "ignored"
	return c
}

func compareInjected(t *testing.T, d *appsv1.Deployment, cfg inject.Config) {
	t.Helper()
	tmpl := d.Spec.Template
	bare := &corev1.Pod{ObjectMeta: *tmpl.ObjectMeta.DeepCopy(), Spec: *tmpl.Spec.DeepCopy()}
	keep := func(cs []corev1.Container) []corev1.Container {
		var out []corev1.Container
		for _, c := range cs {
			if !inject.IsInjectedContainer(c.Name) {
				out = append(out, c)
			}
		}
		return out
	}
	bare.Spec.InitContainers, bare.Spec.Containers = keep(bare.Spec.InitContainers), keep(bare.Spec.Containers)
	var vols []corev1.Volume
	for _, v := range bare.Spec.Volumes {
		if v.Name != names.TokenVolume {
			vols = append(vols, v)
		}
	}
	bare.Spec.Volumes = vols
	for _, k := range inject.InjectedAnnotations {
		delete(bare.Annotations, k)
	}
	for k := range bare.Labels {
		if k != "sinew.dev/control-plane-component" && inject.IsInjectedLabel(k) {
			delete(bare.Labels, k)
		}
	}
	res, err := inject.Inject(inject.Input{Pod: bare, Namespace: d.Namespace, Owner: inject.Owner{Kind: "Deployment", Name: d.Name}, Manual: true}, cfg)
	if err != nil {
		t.Fatalf("%s: inject: %v", d.Name, err)
	}
	if res.Pod == nil {
		t.Fatalf("%s: injector skipped the pod: %s %s", d.Name, res.Skipped, res.Detail)
	}
	got := res.Pod
	// the identity pod's proxy reaches identity through its own pod
	if d.Name == "sinew-identity" {
		for _, list := range [][]corev1.Container{got.Spec.InitContainers, got.Spec.Containers} {
			for i := range list {
				for j, e := range list[i].Env {
					if e.Name == "SINEW_PROXY_IDENTITY_SVC_ADDR" {
						list[i].Env[j].Value = "localhost:8080"
					}
				}
			}
		}
	}
	diff := func(what string, want, have any) {
		if !reflect.DeepEqual(want, have) {
			wb, _ := yaml.Marshal(want)
			hb, _ := yaml.Marshal(have)
			t.Errorf("%s: the chart's %s differ from the injector's (want = injector, got = chart):\n%s", d.Name, what, goldenfile.LineDiff(string(wb), string(hb)))
		}
	}
	diff("init containers", got.Spec.InitContainers, tmpl.Spec.InitContainers)
	diff("containers", got.Spec.Containers, tmpl.Spec.Containers)
	diff("volumes", got.Spec.Volumes, tmpl.Spec.Volumes)
	for _, k := range []string{names.ProxyVersionAnnotation, names.TrustRootHashAnnotation} {
		if got.Annotations[k] != tmpl.Annotations[k] {
			t.Errorf("%s: annotation %s: injector %q, chart %q", d.Name, k, got.Annotations[k], tmpl.Annotations[k])
		}
	}
	for k, v := range got.Labels {
		if tmpl.Labels[k] != v {
			t.Errorf("%s: label %s: injector %q, chart %q", d.Name, k, v, tmpl.Labels[k])
		}
	}
}
