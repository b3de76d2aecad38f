//go:build e2e

package cli

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"
)

// TestCRDValidationOnAPIServer applies `sinew install --crds` to a real cluster and checks that the API server
// rejects malformed Servers with the schema's messages, and accepts a good one. It removes the CRDs it created.
func TestCRDValidationOnAPIServer(t *testing.T) {
	path := os.Getenv("SINEW_E2E_KUBECONFIG")
	if path == "" {
		t.Skip("SINEW_E2E_KUBECONFIG is not set: point it at a cluster's kubeconfig (see docs/operations/local-cluster.md)")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	ext := apiextclient.NewForConfigOrDie(cfg)
	dyn := dynamic.NewForConfigOrDie(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// sinew's own CRDs: the Gateway API's may be in the cluster already, and are not sinew's to remove
	for _, o := range decodeAll(t, mustRun(t, testEnv(t, nil), "install", "--crds", "--set", "installGatewayAPI=false")) {
		crd := o.(*apiextv1.CustomResourceDefinition)
		if _, err := ext.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, crd, metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating CRD %s: %v", crd.Name, err)
		}
		name := crd.Name
		t.Cleanup(func() {
			_ = ext.ApiextensionsV1().CustomResourceDefinitions().Delete(context.Background(), name, metav1.DeleteOptions{})
		})
	}
	servers := dyn.Resource(schema.GroupVersionResource{Group: "policy.sinew.dev", Version: "v1alpha1", Resource: "servers"}).Namespace("default")
	server := func(spec map[string]any) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "policy.sinew.dev/v1alpha1", "kind": "Server",
			"metadata": map[string]any{"generateName": "e2e-"}, "spec": spec,
		}}
	}
	// the CRDs take a moment to be served
	deadline := time.Now().Add(time.Minute)
	for {
		_, err := servers.Create(ctx, server(map[string]any{"podSelector": map[string]any{}, "port": int64(8080)}), metav1.CreateOptions{DryRun: []string{"All"}})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a good Server is not accepted: %v", err)
		}
		time.Sleep(time.Second)
	}
	bad := map[string]struct {
		spec map[string]any
		want string
	}{
		"port out of range": {map[string]any{"podSelector": map[string]any{}, "port": int64(70000)}, "must be a port number between 1 and 65535"},
		"two selectors":     {map[string]any{"podSelector": map[string]any{}, "workloadSelector": map[string]any{}, "port": "http"}, "give exactly one of podSelector"},
		"bad protocol":      {map[string]any{"podSelector": map[string]any{}, "port": int64(80), "proxyProtocol": "HTTP/3"}, `Unsupported value: "HTTP/3"`},
		"no port":           {map[string]any{"podSelector": map[string]any{}}, "spec.port: Required value"},
	}
	for name, c := range bad {
		_, err := servers.Create(ctx, server(c.spec), metav1.CreateOptions{DryRun: []string{"All"}})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error containing %q", name, err, c.want)
		}
	}
	// HTTPFault: the API server checks what the control plane's own validation checks.
	faults := dyn.Resource(schema.GroupVersionResource{Group: "policy.sinew.dev", Version: "v1alpha1", Resource: "httpfaults"}).Namespace("default")
	fault := func(spec map[string]any) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "policy.sinew.dev/v1alpha1", "kind": "HTTPFault",
			"metadata": map[string]any{"generateName": "e2e-"}, "spec": spec,
		}}
	}
	good := map[string]any{"abort": map[string]any{"httpStatus": int64(503), "percentage": 10.5},
		"delay": map[string]any{"fixedDelay": "250ms", "percentage": int64(50)}, "maxActiveFaults": int64(10)}
	if _, err := faults.Create(ctx, fault(good), metav1.CreateOptions{DryRun: []string{"All"}}); err != nil {
		t.Errorf("a good HTTPFault is refused: %v", err)
	}
	badFaults := map[string]struct {
		spec map[string]any
		want string
	}{
		"nothing":          {map[string]any{}, "give at least one of abort and delay"},
		"abort, no status": {map[string]any{"abort": map[string]any{"percentage": int64(5)}}, "give httpStatus, grpcStatus or both"},
		"status":           {map[string]any{"abort": map[string]any{"httpStatus": int64(700)}}, "should be less than or equal to 599"},
		"percentage":       {map[string]any{"abort": map[string]any{"httpStatus": int64(503), "percentage": int64(101)}}, "should be less than or equal to 100"},
		"delay":            {map[string]any{"delay": map[string]any{"fixedDelay": "soon"}}, "spec.delay.fixedDelay"},
	}
	for name, c := range badFaults {
		_, err := faults.Create(ctx, fault(c.spec), metav1.CreateOptions{DryRun: []string{"All"}})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("HTTPFault %s: got %v, want an error containing %q", name, err, c.want)
		}
	}
}
