package cmd

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sinewmesh/sinew/cli/cmdenv"
	"github.com/sinewmesh/sinew/viz"
	"github.com/sinewmesh/sinew/viz/internal/portforward"
	"github.com/sinewmesh/sinew/viz/server"
)

// vizConn is a way to the viz API, and what to release when done with it.
type vizConn struct {
	client *server.Client
	where  string // how it was reached, for messages
	close  func()
}

// localProbeTimeout bounds how long a local mesh's viz may take to answer /api/version before it is passed over.
const localProbeTimeout = 300 * time.Millisecond

// connectViz finds the viz API: --viz-url or $SINEW_VIZ_URL, else a local mesh's viz (directViz), else sinew-viz in
// the selected cluster through a port-forward.
func connectViz(ctx context.Context, env *cmdenv.Env, explicit string) (*vizConn, error) {
	if c, err := directViz(ctx, env, explicit); c != nil || err != nil {
		return c, err
	}
	f, err := forwardViz(ctx, env, "", 0)
	if err != nil {
		return nil, fmt.Errorf("cannot reach viz: %s, and in Kubernetes: %w\n"+
			"(run `sinew demo`, or `sinew viz install | kubectl apply -f -`, or pass --viz-url)", noLocalMesh(env), err)
	}
	base := "http://127.0.0.1:" + strconv.Itoa(f.Local)
	c, _ := server.NewClient(base, nil)
	return &vizConn{client: c, where: "sinew-viz in the cluster (pod " + f.Pod + ")", close: func() { _ = f.Close() }}, nil
}

// directViz is the viz reached without Kubernetes: --viz-url or $SINEW_VIZ_URL, else the first local mesh's viz
// that answers within localProbeTimeout, of those that left their URL in viz.StateDir (newest first) and the demo's
// default address; nil when none.
func directViz(ctx context.Context, env *cmdenv.Env, explicit string) (*vizConn, error) {
	if explicit == "" {
		explicit = env.Lookup("SINEW_VIZ_URL")
	}
	if explicit != "" {
		c, err := server.NewClient(explicit, nil)
		if err != nil {
			return nil, fmt.Errorf("--viz-url: %w", err)
		}
		return &vizConn{client: c, where: explicit, close: func() {}}, nil
	}
	for _, u := range localCandidates(env) {
		probe, err := server.NewClient(u, &http.Client{Timeout: localProbeTimeout})
		if err != nil {
			continue
		}
		if v, err := probe.Version(ctx); err == nil && v.Mode == server.ModeLocal {
			c, _ := server.NewClient(u, nil)
			return &vizConn{client: c, where: "the local mesh at " + u, close: func() {}}, nil
		}
	}
	return nil, nil
}

// localCandidates are the URLs a local mesh's viz may answer at: those the running meshes left (newest first), then
// the demo's default address.
func localCandidates(env *cmdenv.Env) []string {
	var urls []string
	if dir := viz.StateDir(env.Lookup); dir != "" {
		urls, _ = viz.LocalURLs(dir) // unreadable: only the default address
	}
	def := "http://" + viz.DefaultLocalAddr
	for _, u := range urls {
		if u == def {
			return urls
		}
	}
	return append(urls, def)
}

// noLocalMesh says where no local mesh answered, for errors.
func noLocalMesh(env *cmdenv.Env) string {
	c := localCandidates(env)
	if len(c) == 1 {
		return "no local mesh answers at " + c[0]
	}
	return "no local mesh answers at " + strings.Join(c, ", ")
}

// forwardViz port-forwards address:localPort to sinew-viz's API in the selected cluster.
func forwardViz(ctx context.Context, env *cmdenv.Env, address string, localPort int) (*portforward.Forward, error) {
	cfg, err := env.Config()
	if err != nil {
		return nil, err
	}
	cl, err := env.KubeClients()
	if err != nil {
		return nil, err
	}
	f, err := portforward.ToService(ctx, cfg, cl.Kube, vizExtNamespace, vizExtService, vizExtServicePort, address, localPort)
	if err != nil {
		return nil, errors.Join(err, errors.New("is viz installed? sinew viz install | kubectl apply -f - && sinew viz check"))
	}
	return f, nil
}
