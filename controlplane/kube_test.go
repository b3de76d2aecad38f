package controlplane_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"net/url"
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
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	destinationv1 "github.com/sinewmesh/sinew/api/destination/v1"
	identityv1 "github.com/sinewmesh/sinew/api/identity/v1"
	"github.com/sinewmesh/sinew/controlplane"
	"github.com/sinewmesh/sinew/internal/identityclient"
	"github.com/sinewmesh/sinew/internal/meshtls"
	"github.com/sinewmesh/sinew/internal/names"
	"github.com/sinewmesh/sinew/internal/testutil"
)

func ptr[T any](v T) *T { return &v }

// fakeCluster is an API server with emojivoto's web pod behind web-svc, and TokenReview answers for the tokens
// named in users (token → "namespace:serviceaccount").
func fakeCluster(t *testing.T, users map[string]string) *fake.Clientset {
	t.Helper()
	client := fake.NewClientset(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "emojivoto"}},
		&corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "emojivoto", Name: "web-1", Labels: map[string]string{"app": "web"}},
			Spec: corev1.PodSpec{ServiceAccountName: "web", Containers: []corev1.Container{
				{Name: "web", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}},
				{Name: "sinew-proxy", Ports: []corev1.ContainerPort{{Name: "sinew-proxy", ContainerPort: 4143}}},
			}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.1"},
		},
		&corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: "emojivoto", Name: "web-svc"},
			Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.5", ClusterIPs: []string{"10.96.0.5"}, Selector: map[string]string{"app": "web"},
				Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}}},
		},
		&discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Namespace: "emojivoto", Name: "web-svc-1", Labels: map[string]string{discoveryv1.LabelServiceName: "web-svc"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: ptr("http"), Port: ptr(int32(8080))}},
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr(true)},
				TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: "emojivoto", Name: "web-1"}}},
		},
	)
	client.PrependReactor("create", "tokenreviews", func(action k8stesting.Action) (bool, runtime.Object, error) {
		tr := action.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenReview).DeepCopy()
		if user, ok := users[tr.Spec.Token]; ok && len(tr.Spec.Audiences) == 1 && tr.Spec.Audiences[0] == names.TokenAudience {
			tr.Status = authenticationv1.TokenReviewStatus{Authenticated: true, Audiences: tr.Spec.Audiences,
				User: authenticationv1.UserInfo{Username: "system:serviceaccount:" + user}}
		} else {
			tr.Status = authenticationv1.TokenReviewStatus{Error: "invalid bearer token"}
		}
		return true, tr, nil
	})
	return client
}

func writeCA(t *testing.T) (anchors, cert, key string) {
	t.Helper()
	a, c, k, err := controlplane.GenerateCA("cluster.local")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	anchors, cert, key = filepath.Join(dir, "ca-bundle.crt"), filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	for p, b := range map[string][]byte{anchors: a, cert: c, key: k} {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return anchors, cert, key
}

func httpStatus(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// Kubernetes mode end to end in one process, with a fake API server: identity checks tokens with TokenReview;
// destination obtains its own certificate from identity like a workload, then serves what the informers see.
func TestKubernetesMode(t *testing.T) {
	t.Parallel()
	anchorsFile, certFile, keyFile := writeCA(t)
	client := fakeCluster(t, map[string]string{"dst-token": "sinew:sinew-destination", "web-token": "emojivoto:web"})
	log := slog.New(slog.DiscardHandler)

	id, err := controlplane.NewIdentity(controlplane.IdentityConfig{
		Addr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", KubeClient: client, Logger: log, Registerer: prometheus.NewRegistry(),
		TrustAnchorsFile: anchorsFile, IssuerCertFile: certFile, IssuerKeyFile: keyFile,
	})
	if err != nil {
		t.Fatal(err)
	}
	testutil.RunInBackground(t, id.Run)

	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("dst-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	dst, err := controlplane.NewDestination(controlplane.DestinationConfig{
		DestinationAddr: "127.0.0.1:0", PolicyAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
		IdentityAddr: id.Addr(), TrustAnchorsFile: anchorsFile, TokenFile: tokenFile,
		KubeClient: client, Logger: log, Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if dst.Ready() {
		t.Error("ready before running")
	}
	testutil.RunInBackground(t, dst.Run)
	testutil.Eventually(t, 15*time.Second, "destination /ready", func() bool { return httpStatus("http://"+dst.AdminAddr()+"/ready") == http.StatusOK })
	testutil.Eventually(t, 15*time.Second, "identity /ready", func() bool { return httpStatus("http://"+id.AdminAddr()+"/ready") == http.StatusOK })

	// A workload (emojivoto/web) obtains its certificate with its token, then asks the destination service.
	pem, _ := os.ReadFile(anchorsFile)
	anchors, err := meshtls.ParseAnchors(pem)
	if err != nil {
		t.Fatal(err)
	}
	web, err := identityclient.New(identityclient.Config{
		Addr: id.Addr(), ServerName: "spiffe://cluster.local/ns/sinew/sa/sinew-identity",
		LocalName: "spiffe://cluster.local/ns/emojivoto/sa/web", Token: []byte("web-token"), Anchors: anchors,
	}, log, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	testutil.RunInBackground(t, web.Run)
	select {
	case <-web.Ready():
	case <-time.After(15 * time.Second):
		t.Fatal("the workload never got a certificate")
	}
	creds := credentials.NewTLS(meshtls.ClientConfig(anchors, "spiffe://cluster.local/ns/sinew/sa/sinew-destination", web.Certificate))
	conn, err := grpc.NewClient(dst.DestinationAddr(), grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	dc := destinationv1.NewDestinationClient(conn)

	for _, path := range []string{"web-svc.emojivoto.svc.cluster.local:80", "10.96.0.5:80"} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		stream, err := dc.Get(ctx, &destinationv1.GetRequest{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		u, err := stream.Recv()
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		addrs := u.GetAdd().GetAddrs()
		if len(addrs) != 1 || addrs[0].GetAddr() != "10.0.0.1:4143" || addrs[0].GetTargetPort() != 8080 ||
			addrs[0].GetTlsIdentity().GetSpiffeId() != "spiffe://cluster.local/ns/emojivoto/sa/web" {
			t.Errorf("%s: first update %v", path, u)
		}
		if path != "10.96.0.5:80" {
			cancel()
			continue
		}
		// The ClusterIP stream follows the cluster: the endpoint goes not-ready.
		es, _ := client.DiscoveryV1().EndpointSlices("emojivoto").Get(ctx, "web-svc-1", metav1.GetOptions{})
		es.Endpoints[0].Conditions.Ready = ptr(false)
		if _, err := client.DiscoveryV1().EndpointSlices("emojivoto").Update(ctx, es, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		u, err = stream.Recv()
		if err != nil || len(u.GetRemove().GetAddrs()) != 1 || u.GetRemove().GetAddrs()[0] != "10.0.0.1:4143" {
			t.Errorf("after the endpoint went not-ready: %v, %v", u, err)
		}
		cancel()
	}

	// The identity service refuses a token TokenReview does not accept, and a token for another identity.
	idConn, err := grpc.NewClient(id.Addr(), grpc.WithTransportCredentials(credentials.NewTLS(
		meshtls.ClientConfig(anchors, "spiffe://cluster.local/ns/sinew/sa/sinew-identity", func() *tls.Certificate { return nil }))))
	if err != nil {
		t.Fatal(err)
	}
	defer idConn.Close()
	ic := identityv1.NewIdentityClient(idConn)
	for token, want := range map[string]codes.Code{"forged": codes.Unauthenticated, "web-token": codes.PermissionDenied} {
		_, err := ic.Certify(context.Background(), &identityv1.CertifyRequest{
			Identity: "spiffe://cluster.local/ns/sinew/sa/sinew-destination", Token: []byte(token), CertificateSigningRequest: []byte("x"),
		})
		if status.Code(err) != want {
			t.Errorf("token %s: %v, want %v", token, err, want)
		}
	}
}

func TestKubernetesModeConfigErrors(t *testing.T) {
	t.Parallel()
	anchorsFile, certFile, keyFile := writeCA(t)
	client := fake.NewClientset()
	for name, tc := range map[string]struct {
		run  func() error
		want string
	}{
		"identity without issuer files": {func() error {
			_, err := controlplane.NewIdentity(controlplane.IdentityConfig{KubeClient: client, TrustAnchorsFile: anchorsFile,
				IssuerCertFile: filepath.Join(t.TempDir(), "missing.crt"), IssuerKeyFile: keyFile, Addr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0"})
			return err
		}, "missing.crt"},
		"identity with a key of another issuer": {func() error {
			_, _, otherKey := writeCA(t)
			_, err := controlplane.NewIdentity(controlplane.IdentityConfig{KubeClient: client, TrustAnchorsFile: anchorsFile,
				IssuerCertFile: certFile, IssuerKeyFile: otherKey, Addr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0"})
			return err
		}, "does not match the issuer certificate"},
		"identity bad trust domain": {func() error {
			_, err := controlplane.NewIdentity(controlplane.IdentityConfig{TrustDomain: "Bad Domain", KubeClient: client})
			return err
		}, "TrustDomain"},
		"destination without a token file": {func() error {
			_, err := controlplane.NewDestination(controlplane.DestinationConfig{KubeClient: client, TrustAnchorsFile: anchorsFile,
				TokenFile: filepath.Join(t.TempDir(), "token")})
			return err
		}, "identity token"},
		"destination bad opaque ports": {func() error {
			_, err := controlplane.NewDestination(controlplane.DestinationConfig{KubeClient: client, DefaultOpaquePorts: "25,smtp"})
			return err
		}, "DefaultOpaquePorts"},
		"destination bad service account": {func() error {
			_, err := controlplane.NewDestination(controlplane.DestinationConfig{KubeClient: client, ServiceAccount: "Not_A_Name"})
			return err
		}, "ServiceAccount"},
	} {
		err := tc.run()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error mentioning %q", name, err, tc.want)
		}
	}
}

// A rotated issuer (the Secret's files change) is picked up without a restart; files that do not form a valid
// CA are refused and the previous issuer stays in use.
func TestIdentityReloadsRotatedIssuer(t *testing.T) {
	t.Parallel()
	anchorsFile, certFile, keyFile := writeCA(t)
	oldIssuer, _ := os.ReadFile(certFile)
	client := fakeCluster(t, map[string]string{"web-token": "emojivoto:web"})
	id, err := controlplane.NewIdentity(controlplane.IdentityConfig{
		Addr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", KubeClient: client, Logger: slog.New(slog.DiscardHandler),
		TrustAnchorsFile: anchorsFile, IssuerCertFile: certFile, IssuerKeyFile: keyFile, IssuerReloadInterval: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	testutil.RunInBackground(t, id.Run)

	newAnchors, newCert, newKey, err := controlplane.GenerateCA("cluster.local")
	if err != nil {
		t.Fatal(err)
	}
	oldAnchors, _ := os.ReadFile(anchorsFile)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(oldAnchors)
	pool.AppendCertsFromPEM(newAnchors)
	issuerOf := func() []byte {
		t.Helper()
		conn, err := grpc.NewClient(id.Addr(), grpc.WithTransportCredentials(credentials.NewTLS(
			meshtls.ClientConfig(pool, "spiffe://cluster.local/ns/sinew/sa/sinew-identity", func() *tls.Certificate { return nil }))))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		u, _ := url.Parse("spiffe://cluster.local/ns/emojivoto/sa/web")
		csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{u}}, key)
		resp, err := identityv1.NewIdentityClient(conn).Certify(context.Background(), &identityv1.CertifyRequest{
			Identity: u.String(), Token: []byte("web-token"), CertificateSigningRequest: csr,
		})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetIntermediateCertificates()[0]
	}
	der := func(pemBytes []byte) []byte { b, _ := pemDecode(pemBytes); return b }
	if !bytes.Equal(issuerOf(), der(oldIssuer)) {
		t.Fatal("not issuing with the configured issuer")
	}

	// The issuer Secret changes first: the new issuer does not chain to the old anchors yet, so nothing changes.
	writeAtomically(t, keyFile, newKey)
	writeAtomically(t, certFile, newCert)
	testutil.Eventually(t, 15*time.Second, "the refusal to be counted", func() bool {
		return strings.Contains(scrape(t, "http://"+id.AdminAddr()+"/metrics"), `identity_issuer_reloads_total{result="error"}`)
	})
	if !bytes.Equal(issuerOf(), der(oldIssuer)) {
		t.Fatal("switched to an issuer that does not chain to the trust anchors")
	}
	// Then the trust roots: now the set is valid and in use.
	writeAtomically(t, anchorsFile, newAnchors)
	testutil.Eventually(t, 15*time.Second, "the new issuer", func() bool { return bytes.Equal(issuerOf(), der(newCert)) })
}

func writeAtomically(t *testing.T, path string, b []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func pemDecode(b []byte) ([]byte, bool) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, false
	}
	return blk.Bytes, true
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
