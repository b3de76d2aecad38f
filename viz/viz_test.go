package viz

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/sinewmesh/sinew/viz/server"
	"github.com/sinewmesh/sinew/viz/tapsvc"
)

func localConfig(t *testing.T) Config {
	return Config{
		Mode: ModeLocal, Listen: "127.0.0.1:0", Tap: tapsvc.Static{}, TrustAnchors: x509.NewCertPool(),
		TapCertificate: func() *tls.Certificate { return nil }, PrometheusURL: "http://127.0.0.1:1",
		StateDir: filepath.Join(t.TempDir(), "state"),
	}
}

func TestValidateNamesEveryMissingPiece(t *testing.T) {
	err := Config{Mode: "cloud"}.Validate()
	for _, want := range []string{`Mode "cloud"`, "Listen", "Tap", "TrustAnchors", "Identity, TapCertificate", "PrometheusURL, Scrape"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v, want it to name %s", err, want)
		}
	}
	if err := localConfig(t).Validate(); err != nil {
		t.Errorf("a complete local config: %v", err)
	}
}

// TestRunServesAndAnnouncesUntilCancelled drives a local viz the way sinew demo does: New binds, Run serves the API
// and leaves its URL in the state directory, and cancelling the context stops it and takes the URL back.
func TestRunServesAndAnnouncesUntilCancelled(t *testing.T) {
	cfg := localConfig(t)
	v, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- v.Run(ctx) }()

	c, err := server.NewClient(v.URL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	// New bound the listener, so the request waits in its backlog until Run serves it: no polling.
	got, err := c.Version(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got.Mode != ModeLocal || got.Prometheus != cfg.PrometheusURL {
		t.Errorf("version %+v", got)
	}
	urls, err := LocalURLs(cfg.StateDir)
	if err != nil || len(urls) != 1 || urls[0] != v.URL() {
		t.Errorf("announced %v (%v), want [%s]", urls, err, v.URL())
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context was cancelled")
	}
	if urls, _ := LocalURLs(cfg.StateDir); len(urls) != 0 {
		t.Errorf("still announced after Run returned: %v", urls)
	}
	if _, err := http.Get(v.URL() + "/live"); err == nil {
		t.Error("still serving after Run returned")
	}
}

func TestNewFailsOnATakenPortAndReleasesWhatItBound(t *testing.T) {
	first, err := New(localConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	defer first.closeAll()
	cfg := localConfig(t)
	cfg.AdminAddr = first.Addr()
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "AdminAddr") {
		t.Errorf("New with a taken admin port: %v, want an error naming AdminAddr", err)
	}
}

func TestLocalURLsNewestFirst(t *testing.T) {
	dir := t.TempDir()
	if urls, err := LocalURLs(filepath.Join(dir, "missing")); err != nil || len(urls) != 0 {
		t.Errorf("missing directory: %v, %v", urls, err)
	}
	removeOld, err := AnnounceLocal(dir, "http://127.0.0.1:17006")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := AnnounceLocal(dir, "http://127.0.0.1:27006"); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(filepath.Join(dir, "127.0.0.1_17006.url"), old, old); err != nil {
		t.Fatal(err)
	}
	urls, err := LocalURLs(dir)
	if err != nil || strings.Join(urls, " ") != "http://127.0.0.1:27006 http://127.0.0.1:17006" {
		t.Errorf("LocalURLs = %v, %v", urls, err)
	}
	removeOld()
	if urls, _ := LocalURLs(dir); strings.Join(urls, " ") != "http://127.0.0.1:27006" {
		t.Errorf("after remove: %v", urls)
	}
	// a mesh killed outright leaves its file; the process it names is gone, so LocalURLs takes the file away
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	left := filepath.Join(dir, "127.0.0.1_37006.url")
	if err := os.WriteFile(left, []byte(fmt.Sprintf("http://127.0.0.1:37006\n%d\n", gone.Process.Pid)), 0o600); err != nil {
		t.Fatal(err)
	}
	if urls, _ := LocalURLs(dir); strings.Join(urls, " ") != "http://127.0.0.1:27006" {
		t.Errorf("with a dead mesh's file: %v", urls)
	}
	if _, err := os.Stat(left); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the dead mesh's file is still there: %v", err)
	}
	if _, err := AnnounceLocal(dir, "127.0.0.1:1"); err == nil {
		t.Error("AnnounceLocal took a URL without a host")
	}
}

func TestStateDirPrefersTheRuntimeDir(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"XDG_RUNTIME_DIR": "/run/user/1", "HOME": "/home/a"}, "/run/user/1/sinew/viz"},
		{map[string]string{"XDG_CACHE_HOME": "/c", "HOME": "/home/a"}, "/c/sinew/viz"},
		{map[string]string{"HOME": "/home/a"}, "/home/a/.cache/sinew/viz"},
		{map[string]string{}, ""},
	} {
		if got := StateDir(func(k string) string { return tc.env[k] }); got != tc.want {
			t.Errorf("StateDir(%v) = %q, want %q", tc.env, got, tc.want)
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
