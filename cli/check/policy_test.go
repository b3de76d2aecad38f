package check

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"

	"github.com/sinewmesh/sinew/internal/names"
)

// rawResponse is what the fake API server's pod proxy answers.
type rawResponse struct {
	body []byte
	err  error
}

func (r rawResponse) DoRaw(context.Context) ([]byte, error) { return r.body, r.err }
func (r rawResponse) Stream(context.Context) (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(r.body)), r.err
}

// TestPolicyService: the policy category passes with a ready endpoint and a destination whose admin answers; it
// fails without endpoints or when /ready fails, and warns with the model's policy problems.
func TestPolicyService(t *testing.T) {
	ready := true
	endpoints := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "sinew-policy-x", Namespace: "sinew", Labels: map[string]string{"kubernetes.io/service-name": names.PolicyService}},
		Endpoints:  []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.7"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
	}
	dst := meshedPod("sinew", "sinew-destination-1", "v1", map[string]string{names.ControlPlaneComponentLabel: "destination"})
	var (
		readyErr error
		model    = `{"version": 3, "policyProblems": []}`
		asked    []string
	)
	setup := func(objs ...runtime.Object) *Env {
		kube := fake.NewSimpleClientset(objs...)
		kube.AddProxyReactor("pods", func(a k8stesting.Action) (bool, rest.ResponseWrapper, error) {
			pa := a.(k8stesting.ProxyGetAction)
			asked = append(asked, pa.GetName()+":"+pa.GetPort()+pa.GetPath())
			switch pa.GetPath() {
			case "/ready":
				return true, rawResponse{[]byte("ok\n"), readyErr}, nil
			case "/debug/model":
				return true, rawResponse{[]byte(model), nil}, nil
			}
			return true, rawResponse{nil, errors.New("404")}, nil
		})
		return &Env{Kube: kube, Namespace: "sinew"}
	}
	results := func(rep Report) string {
		var s []string
		for _, r := range rep.Results {
			s = append(s, r.ID+"="+string(r.Status)+" "+r.Error)
		}
		return strings.Join(s, "\n")
	}

	rep := runCat(t, setup(endpoints, dst), Policy())
	if !rep.Success || strings.Contains(results(rep), "warning") {
		t.Fatalf("healthy policy service:\n%s", results(rep))
	}
	if want := "sinew-destination-1:9996/ready"; !strings.Contains(strings.Join(asked, " "), want) {
		t.Errorf("asked %v, want %s", asked, want)
	}

	model = `{"policyProblems": ["ServerAuthorization emojivoto/x: no Server \"web\""]}`
	rep = runCat(t, setup(endpoints, dst), Policy())
	if got := results(rep); !rep.Success || !strings.Contains(got, `policy-resources-consistent=warning 1 policy problem(s)`) || !strings.Contains(got, `no Server "web"`) {
		t.Fatalf("policy problems are a warning:\n%s", got)
	}

	readyErr = errors.New("the server is currently unable to handle the request")
	rep = runCat(t, setup(dst), Policy())
	got := results(rep)
	if rep.Success || !strings.Contains(got, "policy-service-endpoints=error the Service sinew/sinew-policy has no ready endpoint") ||
		!strings.Contains(got, "policy-service-ready=error not serving: sinew-destination-1: /ready on its admin port 9996") {
		t.Fatalf("no endpoints, not ready:\n%s", got)
	}
	rep = runCat(t, setup(endpoints), Policy())
	if got := results(rep); rep.Success || !strings.Contains(got, "no running sinew-destination pod") {
		t.Fatalf("no destination pod:\n%s", got)
	}
}
