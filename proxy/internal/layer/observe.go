// Package layer holds the stages of the proxy's HTTP request path, one file each. Every stage is a
// pipeline.Layer; proxy/internal/forward/chains.go stacks them into the inbound and outbound chains. A layer
// reads the request state the layers before it set and sets its own; none reaches into another's.
package layer

import (
	"errors"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sinewmesh/sinew/internal/meshtls"
	"github.com/sinewmesh/sinew/proxy/internal/metrics"
	"github.com/sinewmesh/sinew/proxy/internal/pipeline"
	"github.com/sinewmesh/sinew/proxy/internal/policy"
	"github.com/sinewmesh/sinew/proxy/internal/tap"
)

// Observe counts requests and responses (request_total, response_total, response_latency_ms, the per-path
// route_* series and, outbound, the outbound_http_route_* series of the parent, route and backend) and feeds tap.
// Outbound it sits after the balancer, so it sees each attempt at its endpoint, labelled as the endpoint; inbound
// it sees each request to the application. The response is counted when its body ends, so a gRPC status in the
// trailers is counted.
func Observe(hub *tap.Hub) pipeline.Layer {
	routes := &routeCache{}
	return func(next pipeline.Handler) pipeline.Handler {
		return pipeline.HandlerFunc(func(req *pipeline.Request) (*http.Response, error) {
			if req.Dir == pipeline.Inbound {
				return count(req, req.In.Series, nil, hub, next)
			}
			series := req.Endpoint.Series(req.HTTP.Host)
			route := routes.get(series, req)
			route.Request()
			return count(req, series, route, hub, next)
		})
	}
}

// Meter counts every request of a gateway as the gateway's own inbound traffic, on its listener port's series
// (request_total, response_total, response_latency_ms with direction="inbound"), whatever answers it: a backend,
// a refusal, a 404. It is the first layer of the gateway chain; Observe counts the attempts at backends again,
// outbound, as a sidecar's are. Tap sees those attempts, not this.
func Meter() pipeline.Layer {
	return func(next pipeline.Handler) pipeline.Handler {
		return pipeline.HandlerFunc(func(req *pipeline.Request) (*http.Response, error) {
			return count(req, req.In.Series, nil, nil, next)
		})
	}
}

// count counts req on series (and route, when set) and shows it to tap when hub has tappers, around next.
func count(req *pipeline.Request, series *metrics.Series, route *metrics.RouteStats, hub *tap.Hub, next pipeline.Handler) (*http.Response, error) {
	r := req.HTTP
	o := &observed{series: series, path: series.Path(r.Host, r.URL.Path), route: route, start: time.Now()}
	o.series.Request()
	o.path.Request()
	req.Observed = true
	if hub != nil && hub.Active() {
		o.tap = hub.Start(func() *tap.Meta { return tapMeta(hub, req) })
	}
	resp, err := next.Handle(req)
	if err != nil {
		status, grpc := failureStatus(req, err)
		o.respond(status, grpc, true, msSince(o.start))
		tapFailure(o.tap, status, grpc, err)
		return nil, err
	}
	o.status, o.grpc, o.ttfb, o.resp = resp.StatusCode, pipeline.GRPCStatus(resp.Header), msSince(o.start), resp
	if o.tap != nil {
		o.tap.Response(resp.StatusCode, resp.Header)
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// The body is the upgraded stream, which the forwarder needs unwrapped.
		o.finish()
		return resp, nil
	}
	o.ReadCloser = resp.Body
	resp.Body = o
	return resp, nil
}

// observed records a response when its body ends.
type observed struct {
	io.ReadCloser
	series *metrics.Series
	path   *metrics.PathStats
	route  *metrics.RouteStats // outbound only
	tap    *tap.Request
	start  time.Time
	resp   *http.Response
	status int
	grpc   int
	ttfb   float64 // milliseconds
	done   bool
	n      uint64 // response bytes read
	err    error  // why the stream failed; nil when it ended normally
}

func (o *observed) Read(p []byte) (int, error) {
	n, err := o.ReadCloser.Read(p)
	o.n += uint64(n)
	if err != nil && !o.done {
		if !errors.Is(err, io.EOF) {
			o.err = err
		}
		o.finish()
	}
	return n, err
}

func (o *observed) Close() error {
	err := o.ReadCloser.Close()
	if !o.done {
		o.finish()
	}
	return err
}

func (o *observed) finish() {
	o.done = true
	grpc := o.grpc
	if grpc < 0 && o.resp != nil {
		grpc = pipeline.GRPCStatus(o.resp.Trailer)
	}
	o.respond(o.status, grpc, o.err != nil || pipeline.Failed(o.status, grpc), o.ttfb)
	if o.tap != nil {
		reset := ""
		if o.err != nil {
			reset = o.err.Error()
		}
		o.tap.End(grpc, o.n, reset)
	}
}

// respond counts a response, with its time to first byte in milliseconds, on the series and the path.
func (o *observed) respond(status, grpc int, failed bool, ttfbMs float64) {
	r := o.series.Response(status, grpc, failed)
	r.ObserveLatency(ttfbMs)
	r.End()
	r = o.path.Response(status, grpc, failed)
	r.ObserveLatency(ttfbMs)
	r.End()
	if o.route != nil {
		o.route.ObserveLatency(ttfbMs)
		o.route.End(status, grpc, failed)
	}
}

// routeCache is the route metrics of each (policy, route, backend) an attempt went by, keyed by the policy's and
// route's identity so that an attempt costs one lookup of two pointers and a string instead of reading their
// labels. A new policy from the control plane is new pointers: the cache is cleared when it holds maxRouteCache
// entries, so superseded policies are not kept alive for long.
type routeCache struct {
	m sync.Map // routeCacheKey -> *metrics.RouteStats
	n atomic.Int64
}

type routeCacheKey struct {
	policy  *policy.Outbound
	route   *policy.Route
	backend string
}

const maxRouteCache = 1024

func (c *routeCache) get(series *metrics.Series, req *pipeline.Request) *metrics.RouteStats {
	k := routeCacheKey{policy: req.Policy, backend: req.Backend}
	if req.Rule != nil {
		k.route = req.Rule.Route
	}
	if rs, ok := c.m.Load(k); ok {
		return rs.(*metrics.RouteStats)
	}
	rs := series.Route(routeKey(req))
	if c.n.Add(1) > maxRouteCache {
		c.m.Clear()
		c.n.Store(1)
	}
	c.m.Store(k, rs)
	return rs
}

// routeKey names an outbound attempt's parent (the Service the control plane says the target is, else the target
// the application called), route (the one whose rule matched, by the labels the control plane gave it) and backend
// (the one the split chose).
func routeKey(req *pipeline.Request) metrics.RouteKey {
	k := metrics.RouteKey{Target: req.Out.Target, Backend: req.Backend}
	if req.Policy != nil {
		if l := req.Policy.Labels; l["kind"] == "Service" || l["kind"] == "Gateway" {
			k.ParentKind, k.ParentName, k.ParentNamespace, k.ParentPort = l["kind"], l["name"], l["namespace"], l["port"]
		}
	}
	if req.Rule != nil && req.Rule.Route != nil {
		l := req.Rule.Route.Labels
		k.RouteKind, k.RouteName, k.RouteNamespace = l["kind"], l["name"], l["namespace"]
	}
	return k
}

// failureStatus is what the client is answered for err: the HTTP status, and the gRPC status of a gRPC request
// (-1 otherwise).
func failureStatus(req *pipeline.Request, err error) (status, grpc int) {
	f := pipeline.Classify(req.Client.Context(), err)
	grpc = -1
	if pipeline.IsGRPC(req.HTTP) {
		grpc = f.GRPC
	}
	return f.Status, grpc
}

// tapFailure shows tap (t nil: nobody taps this request) an answer the proxy made itself, with why.
func tapFailure(t *tap.Request, status, grpc int, err error) {
	if t == nil {
		return
	}
	t.Response(status, nil)
	t.End(grpc, 0, err.Error())
}

func msSince(t time.Time) float64 { return float64(time.Since(t)) / float64(time.Millisecond) }

// tapMeta describes a request for tap. Inbound: from the client (its mesh identity's namespace and service
// account as labels) to this pod at the address the client sent the request to, as Linkerd shows it. Outbound:
// from the local application to the endpoint chosen, with the endpoint's labels and identity.
func tapMeta(hub *tap.Hub, req *pipeline.Request) *tap.Meta {
	r, local := req.HTTP, hub.Local()
	m := &tap.Meta{
		Source: req.Client.RemoteAddr, Scheme: requestScheme(req.Client), Method: r.Method, Authority: r.Host,
		Path: r.URL.Path, RawQuery: r.URL.RawQuery, Header: r.Header, TLS: "no_identity",
	}
	if req.Dir == pipeline.Inbound {
		ic := req.In
		m.Inbound, m.DestinationLabels, m.TLS, m.ClientID = true, local.Labels, ic.TLS, ic.ClientID
		if ic.Dst.IsValid() {
			m.Destination = ic.Dst.String()
		}
		if ic.Mesh {
			m.ServerID = local.ID
			if _, ns, sa, err := meshtls.ParseID(ic.ClientID); err == nil {
				m.SourceLabels = map[string]string{"namespace": ns, "serviceaccount": sa}
			}
		}
		return m
	}
	ep := req.Endpoint
	m.SourceLabels, m.Destination = local.Labels, ep.Info.Addr
	m.DestinationLabels, m.TLS, m.ServerID = ep.Labels.Dst, ep.Labels.TLS, ep.Info.Identity
	if ep.Meshed() {
		m.ClientID = local.ID
	}
	return m
}

// requestScheme is the scheme the client used towards the application (mesh TLS is invisible to it).
func requestScheme(r *http.Request) string {
	if r.URL.Scheme != "" {
		return r.URL.Scheme
	}
	return "http"
}
