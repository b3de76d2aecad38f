package layer

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/sinewmesh/sinew/internal/names"
	"github.com/sinewmesh/sinew/proxy/internal/pipeline"
)

// OverrideHeader names a request's destination for an ingress-mode proxy, in place of its Host: the way an
// ingress controller that sends every request to one address (its own upstream, a ClusterIP, a pod) says which
// Service the request is for. The proxy removes it before the request goes on.
const OverrideHeader = "sinew-dst-override"

// Ingress is the first layer of an ingress-mode proxy's outbound chain (the proxy of an ingress controller). It
// chooses each request's target by the request's authority instead of by where the connection was going: the
// sinew-dst-override header when the request has one, else its Host. When that names a destination the mesh
// knows (a Service and one of its ports, or a meshed pod's address), that destination is the request's target:
// its routes, retries, timeouts, balancing, mTLS and metrics apply, whatever address the controller dialled.
// Anything else (a public host name, a Service port that does not exist) goes where the connection was going:
// the original destination, or the listener's target in explicit mode. namespace qualifies single-label names
// (as the pod's DNS search path would): "web-svc" in namespace "emojivoto" is web-svc.emojivoto.
func Ingress(names Names, namespace string) pipeline.Layer {
	return func(next pipeline.Handler) pipeline.Handler {
		return pipeline.HandlerFunc(func(req *pipeline.Request) (*http.Response, error) {
			name := req.HTTP.Header.Get(OverrideHeader)
			if name != "" {
				req.HTTP.Header.Del(OverrideHeader)
			} else {
				name = req.HTTP.Host
			}
			if target, ok := IngressTarget(name, namespace); ok && target != req.Out.Target && names.Known(req.HTTP.Context(), target) {
				req.Out = &pipeline.OutboundConn{Target: target, OrigDst: req.Out.OrigDst}
			}
			return next.Handle(req)
		})
	}
}

// Names says which names the mesh knows; implemented by Endpoints.
type Names interface {
	Known(ctx context.Context, authority string) bool
}

var _ Names = (*Endpoints)(nil)

// IngressTarget turns a request's authority into the name to ask discovery about: host:port, lower case, port 80
// when the authority names none (HTTP's default), single-label names qualified with namespace. ok is false for
// an authority that cannot name anything in the cluster (a host name that is not a Service's: more than two
// labels without "svc" as the third, characters no DNS name has), so that arbitrary Host headers sent to an
// ingress do not each start a discovery watch.
func IngressTarget(authority, namespace string) (target string, ok bool) {
	if authority == "" {
		return "", false
	}
	host, port, err := net.SplitHostPort(authority)
	if err != nil {
		host, port = strings.TrimSuffix(strings.TrimPrefix(authority, "["), "]"), "80"
	}
	if !validPort(port) {
		return "", false
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return net.JoinHostPort(a.Unmap().String(), port), true
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	labels := strings.Split(host, ".")
	for _, l := range labels {
		if !names.IsDNSLabel(l) {
			return "", false
		}
	}
	switch {
	case len(labels) == 1:
		if namespace == "" {
			return "", false
		}
		host += "." + namespace
	case len(labels) == 2:
	case labels[2] != "svc":
		return "", false
	}
	return net.JoinHostPort(host, port), true
}

func validPort(p string) bool {
	if p == "" || len(p) > 5 || p[0] == '0' {
		return false
	}
	n := 0
	for _, c := range []byte(p) {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n <= 65535
}

// Known reports whether discovery knows authority (a Service's port, or a meshed endpoint's address), waiting up
// to the discovery timeout for its first answer about a name not asked about before.
func (e *Endpoints) Known(ctx context.Context, authority string) bool {
	snap := e.snapshot(ctx, e.pool(authority).Target)
	return snap.Known && snap.Exists
}
