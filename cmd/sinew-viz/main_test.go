package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/sinewmesh/sinew/viz/tapsvc"
)

// TestFlagsAreDocumented keeps docs/reference/sinew-viz.md and the flags in step.
func TestFlagsAreDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "reference", "sinew-viz.md"))
	if err != nil {
		t.Fatal(err)
	}
	body := string(doc)
	documented := strings.Count(body, "\n| `--")
	flags := 0
	newCmd(&bytes.Buffer{}).Flags().VisitAll(func(f *pflag.Flag) {
		if f.Name == "help" || f.Name == "version" {
			return
		}
		flags++
		def := f.DefValue
		if def == "" {
			def = "-"
		}
		if row := "| `--" + f.Name + "` | `" + def + "` |"; !strings.Contains(body, row) && !strings.Contains(body, "| `--"+f.Name+"` | "+def+" |") {
			t.Errorf("no row %s", row)
		}
	})
	if documented != flags {
		t.Errorf("%d flags documented, %d exist", documented, flags)
	}
}

func TestBadInputIsRefusedClearly(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope")
	garbage := filepath.Join(t.TempDir(), "anchors.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--log-format", "xml"}, `--log-format "xml": want text or json`},
		{[]string{"--log-level", "loud"}, `--log-level "loud"`},
		{[]string{"--enforced-host", "("}, "--enforced-host"},
		{[]string{"--identity-trust-anchors-file", missing}, "trust anchors"},
		{[]string{"--identity-trust-anchors-file", garbage}, garbage},
		{[]string{"extra"}, "unknown command"},
	} {
		var stderr bytes.Buffer
		cmd := newCmd(&stderr)
		cmd.SetArgs(tc.args)
		cmd.SetOut(&bytes.Buffer{})
		err := cmd.ExecuteContext(context.Background())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error mentioning %q", tc.args, err, tc.want)
		}
	}
}

func TestScrapeGroupsListMeshedPodsLikeKubernetesDiscovery(t *testing.T) {
	pod := func(ns, name, ip string, phase corev1.PodPhase, meshed bool) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"sinew.dev/proxy-deployment": "web"}},
			Status: corev1.PodStatus{Phase: phase, PodIP: ip}}
		c := corev1.Container{Name: "app", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}
		p.Spec.Containers = []corev1.Container{c}
		if meshed {
			p.Spec.InitContainers = []corev1.Container{{Name: "sinew-proxy", Ports: []corev1.ContainerPort{{Name: "sinew-admin", ContainerPort: 4191}}}}
		}
		return p
	}
	client := fake.NewClientset(
		pod("emojivoto", "web-1", "10.0.0.2", corev1.PodRunning, true),
		pod("emojivoto", "web-0", "10.0.0.1", corev1.PodRunning, true),
		pod("emojivoto", "pending", "", corev1.PodPending, true),
		pod("default", "plain", "10.0.0.3", corev1.PodRunning, false),
	)
	groups, err := scrapeGroups(context.Background(), tapsvc.Kubernetes{Client: client, TrustDomain: "cluster.local"})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(groups)
	want := `[{"targets":["10.0.0.1:4191"],"labels":{"__meta_kubernetes_namespace":"emojivoto","__meta_kubernetes_pod_container_port_name":"sinew-admin","__meta_kubernetes_pod_label_sinew_dev_proxy_deployment":"web","__meta_kubernetes_pod_name":"web-0"}},` +
		`{"targets":["10.0.0.2:4191"],"labels":{"__meta_kubernetes_namespace":"emojivoto","__meta_kubernetes_pod_container_port_name":"sinew-admin","__meta_kubernetes_pod_label_sinew_dev_proxy_deployment":"web","__meta_kubernetes_pod_name":"web-1"}}]`
	if string(got) != want {
		t.Errorf("groups:\n%s\nwant:\n%s", got, want)
	}
}
