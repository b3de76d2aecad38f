package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/sinewmesh/sinew/cli/internal/localmesh"
	"github.com/sinewmesh/sinew/cli/internal/portforward"
	"github.com/sinewmesh/sinew/viz/server"
)

// vizConn is a way to the viz API, and what to release when done with it.
type vizConn struct {
	client *server.Client
	where  string // how it was reached, for messages
	close  func()
}

// connectViz finds the viz API: --viz-url or $SINEW_VIZ_URL, else a local mesh's viz on the demo's default port,
// else sinew-viz in the selected cluster through a port-forward.
func (e *Env) connectViz(ctx context.Context, explicit string) (*vizConn, error) {
	if c, err := e.directViz(ctx, explicit); c != nil || err != nil {
		return c, err
	}
	f, err := e.forwardViz(ctx, "", 0)
	if err != nil {
		return nil, fmt.Errorf("cannot reach viz: no local mesh answers at %s, and in Kubernetes: %w\n"+
			"(run `sinew demo`, or `sinew viz install | kubectl apply -f -`, or pass --viz-url)", localVizURL, err)
	}
	base := "http://127.0.0.1:" + strconv.Itoa(f.Local)
	c, _ := server.NewClient(base, nil)
	return &vizConn{client: c, where: "sinew-viz in the cluster (pod " + f.Pod + ")", close: func() { _ = f.Close() }}, nil
}

// localVizURL is where sinew demo serves viz by default.
var localVizURL = "http://" + localmesh.DemoViz(localmesh.DefaultPortBase)

// directViz is the viz reached without Kubernetes: --viz-url or $SINEW_VIZ_URL, else a local mesh's viz that
// answers on the demo's default port within 300 ms; nil when neither.
func (e *Env) directViz(ctx context.Context, explicit string) (*vizConn, error) {
	if explicit == "" && e.Getenv != nil {
		explicit = e.Getenv("SINEW_VIZ_URL")
	}
	if explicit != "" {
		c, err := server.NewClient(explicit, nil)
		if err != nil {
			return nil, fmt.Errorf("--viz-url: %w", err)
		}
		return &vizConn{client: c, where: explicit, close: func() {}}, nil
	}
	if c, err := server.NewClient(localVizURL, &http.Client{Timeout: 300 * time.Millisecond}); err == nil {
		if v, err := c.Version(ctx); err == nil && v.Mode == server.ModeLocal {
			c, _ = server.NewClient(localVizURL, nil)
			return &vizConn{client: c, where: "the local mesh at " + localVizURL, close: func() {}}, nil
		}
	}
	return nil, nil
}

// forwardViz port-forwards address:localPort to sinew-viz's API in the selected cluster.
func (e *Env) forwardViz(ctx context.Context, address string, localPort int) (*portforward.Forward, error) {
	cfg, err := e.Config()
	if err != nil {
		return nil, err
	}
	cl, err := e.kubeClients()
	if err != nil {
		return nil, err
	}
	f, err := portforward.ToService(ctx, cfg, cl.Kube, vizExtNamespace, vizExtService, vizExtServicePort, address, localPort)
	if err != nil {
		return nil, errors.Join(err, errors.New("is viz installed? sinew viz install | kubectl apply -f - && sinew viz check"))
	}
	return f, nil
}
