package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"
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

// servePodProxy makes the fake cluster's pod proxy (pods/POD:PORT/proxy/PATH) answer bodies by "POD:PORT/PATH";
// anything else is an error, as a pod that does not listen there.
func servePodProxy(c *cluster, bodies map[string]string) {
	c.kube.PrependProxyReactor("pods", func(a k8stesting.Action) (bool, rest.ResponseWrapper, error) {
		pa := a.(k8stesting.ProxyGetAction)
		key := pa.GetName() + ":" + pa.GetPort() + pa.GetPath()
		if b, ok := bodies[key]; ok {
			return true, rawResponse{[]byte(b), nil}, nil
		}
		return true, rawResponse{nil, fmt.Errorf("error trying to reach service: dial tcp: connection refused (%s)", key)}, nil
	})
}
