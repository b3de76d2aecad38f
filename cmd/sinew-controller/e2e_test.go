//go:build e2e

package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	destinationv1 "github.com/sinewmesh/sinew/api/destination/v1"
	identityv1 "github.com/sinewmesh/sinew/api/identity/v1"
	"github.com/sinewmesh/sinew/controlplane"
	"github.com/sinewmesh/sinew/internal/identityclient"
	"github.com/sinewmesh/sinew/internal/meshtls"
	"github.com/sinewmesh/sinew/internal/names"
	"github.com/sinewmesh/sinew/internal/testutil"
)

// This test runs `sinew-controller identity` and `sinew-controller destination` outside the cluster, against a
// real API server, in a namespace of its own: pods of a plain image (one with a container named sinew-proxy,
// so it counts as meshed), a Service with a named target port, real EndpointSlices from the cluster's
// controller, and real projected tokens checked with TokenReview.
//
//	SINEW_E2E_KUBECONFIG=/path/to/kubeconfig go test -tags e2e -run E2E ./cmd/sinew-controller/
//
// SINEW_E2E_IMAGE names an image already in the node's image store (default: the local cluster's pause image).

const defaultE2EImage = "localhost/sinew-cluster/pause:1"

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func ready(addr string) bool {
	resp, err := http.Get("http://" + addr + "/ready")
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// runCmd runs a sinew-controller command in this process until the test ends.
func runCmd(t *testing.T, logs io.Writer, args ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := newRootCmd(io.Discard, logs)
	cmd.SetArgs(args)
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s: %v", args[0], err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("%s did not stop", args[0])
		}
	})
}

func token(t *testing.T, client kubernetes.Interface, ns, sa string, audiences ...string) string {
	t.Helper()
	tr, err := client.CoreV1().ServiceAccounts(ns).CreateToken(context.Background(), sa, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: audiences, ExpirationSeconds: ptr(int64(600))},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token for %s/%s: %v", ns, sa, err)
	}
	return tr.Status.Token
}

func ptr[T any](v T) *T { return &v }

func TestE2EKubernetesMode(t *testing.T) {
	kubeconfig := os.Getenv("SINEW_E2E_KUBECONFIG")
	if kubeconfig == "" {
		t.Skip("SINEW_E2E_KUBECONFIG is unset; point it at a test cluster's kubeconfig (hack/cluster/up.sh) to run this test")
	}
	image := os.Getenv("SINEW_E2E_IMAGE")
	if image == "" {
		image = defaultE2EImage
	}
	client, err := controlplane.KubeClient(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	logs := &testutil.SyncBuffer{}
	t.Cleanup(func() {
		if t.Failed() || testing.Verbose() {
			t.Logf("controller logs:\n%s", logs.String())
		}
	})

	// A namespace of our own; deleting it cleans everything up.
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	ns := "sinew-e2e-ctl-" + hex.EncodeToString(suffix)
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := client.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("deleting namespace %s: %v", ns, err)
		}
	})
	for _, sa := range []string{"sinew-destination", "web", "other"} {
		if _, err := client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	container := func(name string, port corev1.ContainerPort) corev1.Container {
		return corev1.Container{Name: name, Image: image, ImagePullPolicy: corev1.PullNever, Ports: []corev1.ContainerPort{port}}
	}
	pods := []*corev1.Pod{
		{ObjectMeta: metav1.ObjectMeta{Name: "web-meshed", Labels: map[string]string{"app": "web"}}, Spec: corev1.PodSpec{
			ServiceAccountName: "web", TerminationGracePeriodSeconds: ptr(int64(0)),
			Containers: []corev1.Container{
				container("app", corev1.ContainerPort{Name: "http", ContainerPort: 8080}),
				container("sinew-proxy", corev1.ContainerPort{Name: "sinew-proxy", ContainerPort: 4143}),
			}}},
		// Another version: the same named port is 9090 here.
		{ObjectMeta: metav1.ObjectMeta{Name: "web-plain", Labels: map[string]string{"app": "web"}}, Spec: corev1.PodSpec{
			ServiceAccountName: "other", TerminationGracePeriodSeconds: ptr(int64(0)),
			Containers: []corev1.Container{container("app", corev1.ContainerPort{Name: "http", ContainerPort: 9090})}}},
	}
	for _, p := range pods {
		if _, err := client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	svc, err := client.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	podIP := map[string]string{}
	waitFor(t, 90*time.Second, "the pods to run", func() bool {
		for _, p := range pods {
			got, err := client.CoreV1().Pods(ns).Get(ctx, p.Name, metav1.GetOptions{})
			if err != nil || got.Status.Phase != corev1.PodRunning || got.Status.PodIP == "" {
				return false
			}
			podIP[p.Name] = got.Status.PodIP
		}
		return true
	})

	// The CA as the install would mount it, and the destination's projected token.
	dir := t.TempDir()
	anchorsPEM, issuerCert, issuerKey, err := controlplane.GenerateCA("cluster.local")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"ca-bundle.crt": anchorsPEM, "tls.crt": issuerCert, "tls.key": issuerKey,
		"token": []byte(token(t, client, ns, "sinew-destination", names.TokenAudience))}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	anchors, err := meshtls.ParseAnchors(anchorsPEM)
	if err != nil {
		t.Fatal(err)
	}

	idAddr, idAdmin := freeAddr(t), freeAddr(t)
	runCmd(t, logs, "identity", "--kubeconfig", kubeconfig, "--log-format", "json", "--log-level", "debug",
		"--identity-addr", idAddr, "--admin-addr", idAdmin,
		"--identity-trust-anchors-file", filepath.Join(dir, "ca-bundle.crt"),
		"--identity-issuer-certificate-file", filepath.Join(dir, "tls.crt"), "--identity-issuer-key-file", filepath.Join(dir, "tls.key"))
	dstAddr, polAddr, dstAdmin := freeAddr(t), freeAddr(t), freeAddr(t)
	runCmd(t, logs, "destination", "--kubeconfig", kubeconfig, "--log-format", "json",
		"--destination-addr", dstAddr, "--policy-addr", polAddr, "--admin-addr", dstAdmin, "--identity-addr", idAddr,
		"--identity-trust-anchors-file", filepath.Join(dir, "ca-bundle.crt"), "--identity-token-file", filepath.Join(dir, "token"),
		"--namespace", ns, "--service-account", "sinew-destination")
	waitFor(t, 30*time.Second, "identity /ready", func() bool { return ready(idAdmin) })
	// Ready means: a certificate from identity (TokenReview accepted the real projected token) and synced informers.
	waitFor(t, 60*time.Second, "destination /ready", func() bool { return ready(dstAdmin) })

	// A workload certificate for ns/web, obtained with that service account's projected token.
	log := slog.New(slog.NewTextHandler(logs, nil))
	webID := "spiffe://cluster.local/ns/" + ns + "/sa/web"
	web, err := identityclient.New(identityclient.Config{Addr: idAddr, ServerName: "spiffe://cluster.local/ns/sinew/sa/sinew-identity",
		LocalName: webID, Token: []byte(token(t, client, ns, "web", names.TokenAudience)), Anchors: anchors}, log, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	go func() { _ = web.Run(wctx) }()
	select {
	case <-web.Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("the web workload got no certificate")
	}

	conn, err := grpc.NewClient(dstAddr, grpc.WithTransportCredentials(credentials.NewTLS(
		meshtls.ClientConfig(anchors, "spiffe://cluster.local/ns/"+ns+"/sa/sinew-destination", web.Certificate))))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	dc := destinationv1.NewDestinationClient(conn)
	meshedAddr, plainAddr := net.JoinHostPort(podIP["web-meshed"], "4143"), net.JoinHostPort(podIP["web-plain"], "9090")

	watch := func(path string) (func(want ...string), func()) {
		sctx, cancel := context.WithCancel(ctx)
		stream, err := dc.Get(sctx, &destinationv1.GetRequest{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		ups := make(chan *destinationv1.Update, 100)
		go func() {
			defer close(ups)
			for {
				u, err := stream.Recv()
				if err != nil {
					return
				}
				ups <- u
			}
		}()
		set := map[string]*destinationv1.WeightedAddr{}
		// expect applies updates until the endpoint set is exactly want.
		expect := func(want ...string) {
			t.Helper()
			deadline := time.After(60 * time.Second)
			for {
				if len(set) == len(want) {
					all := true
					for _, w := range want {
						all = all && set[w] != nil
					}
					if all {
						break
					}
				}
				select {
				case u, ok := <-ups:
					if !ok {
						t.Fatalf("%s: stream ended; set %v", path, keys(set))
					}
					for _, a := range u.GetAdd().GetAddrs() {
						set[a.GetAddr()] = a
					}
					for _, a := range u.GetRemove().GetAddrs() {
						delete(set, a)
					}
					if u.GetNoEndpoints() != nil {
						clear(set)
					}
				case <-deadline:
					t.Fatalf("%s: endpoints %v, want %v", path, keys(set), want)
				}
			}
			if m := set[meshedAddr]; m != nil && (m.GetTargetPort() != 8080 || m.GetTlsIdentity().GetSpiffeId() != webID ||
				m.GetMetricLabels()["pod"] != "web-meshed" || m.GetProtocolHint().GetH2() == nil) {
				t.Errorf("%s: meshed endpoint %v", path, m)
			}
			if p := set[plainAddr]; p != nil && p.GetTlsIdentity() != nil {
				t.Errorf("%s: plain endpoint has an identity: %v", path, p)
			}
		}
		return expect, cancel
	}

	byName, stopName := watch("web." + ns + ".svc.cluster.local:80")
	defer stopName()
	byName(meshedAddr, plainAddr)
	byIP, stopIP := watch(net.JoinHostPort(svc.Spec.ClusterIP, "80"))
	defer stopIP()
	byIP(meshedAddr, plainAddr)

	// Churn: the plain pod goes away; both streams drop it.
	if err := client.CoreV1().Pods(ns).Delete(ctx, "web-plain", metav1.DeleteOptions{GracePeriodSeconds: ptr(int64(0))}); err != nil {
		t.Fatal(err)
	}
	byName(meshedAddr)
	byIP(meshedAddr)

	// TokenReview refuses a token for another audience, and a service account's token certifies only its own
	// identity.
	idConn, err := grpc.NewClient(idAddr, grpc.WithTransportCredentials(credentials.NewTLS(
		meshtls.ClientConfig(anchors, "spiffe://cluster.local/ns/sinew/sa/sinew-identity", func() *tls.Certificate { return nil }))))
	if err != nil {
		t.Fatal(err)
	}
	defer idConn.Close()
	ic := identityv1.NewIdentityClient(idConn)
	for name, tc := range map[string]struct {
		token   string
		want    codes.Code
		message string
	}{
		"API-server audience": {token(t, client, ns, "web"), codes.Unauthenticated, "audience"},
		"another identity":    {token(t, client, ns, "web", names.TokenAudience), codes.PermissionDenied, "may not certify"},
	} {
		_, err := ic.Certify(ctx, &identityv1.CertifyRequest{
			Identity: "spiffe://cluster.local/ns/" + ns + "/sa/sinew-destination", Token: []byte(tc.token), CertificateSigningRequest: []byte("x"),
		})
		if status.Code(err) != tc.want || !strings.Contains(err.Error(), tc.message) {
			t.Errorf("%s: %v, want %v mentioning %q", name, err, tc.want, tc.message)
		}
	}
	if !strings.Contains(logs.String(), "certify refused") {
		t.Errorf("the refusals were not logged")
	}
}

func keys(m map[string]*destinationv1.WeightedAddr) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
