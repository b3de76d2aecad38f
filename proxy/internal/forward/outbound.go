package forward

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/sinewmesh/sinew/proxy/internal/detect"
	"github.com/sinewmesh/sinew/proxy/internal/endpoint"
	"github.com/sinewmesh/sinew/proxy/internal/layer"
	"github.com/sinewmesh/sinew/proxy/internal/metrics"
	"github.com/sinewmesh/sinew/proxy/internal/pipeline"
)

// Outbound carries the application's connections to their destinations.
type Outbound struct {
	deps        Deps
	timeouts    Timeouts
	opaquePorts map[uint16]bool
	plain       *endpoint.Plain
	eps         *layer.Endpoints
	srv         *server
	fwd         *forwarder

	failSeries sync.Map // authority -> *metrics.Series
	accepted   sync.Map // listener target ("" for transparent) -> *metrics.Conn
}

func outboundConnFrom(ctx context.Context) *pipeline.OutboundConn {
	oc, _ := ctx.Value(ctxKey{}).(*pipeline.OutboundConn)
	return oc
}

// Ingress is the outbound side's ingress mode (a meshed ingress controller's proxy): each HTTP request goes to
// the Service its authority names (the sinew-dst-override header, else Host) rather than to the connection's
// destination; see layer.Ingress. Namespace is the workload's, for single-label names.
type Ingress struct {
	Enabled   bool
	Namespace string
}

// NewOutbound builds the outbound side.
func NewOutbound(deps Deps, t Timeouts, opaquePorts map[uint16]bool, ingress Ingress) *Outbound {
	dialer := endpoint.NewDialer(deps.Certs, deps.Anchors, t.Connect)
	plain := endpoint.NewPlain(dialer)
	o := &Outbound{
		deps:        deps,
		timeouts:    t,
		opaquePorts: opaquePorts,
		plain:       plain,
		eps:         &layer.Endpoints{Resolver: deps.Resolver, Metrics: deps.Metrics, Dialer: dialer, Plain: plain, Discovery: t.Discovery},
	}
	f := &forwarder{
		dir:   pipeline.Outbound,
		chain: outboundChain(deps.Policies, o.eps, deps.Tap, ingress),
		log:   deps.Log,
		prepare: func(req *pipeline.Request) {
			req.Out = outboundConnFrom(req.Client.Context())
			// Only a peer proxy may set the mesh's own headers.
			delete(req.HTTP.Header, layer.OrigProtoHeader)
		},
		failedSeries: func(req *pipeline.Request) *metrics.Series { return o.failedSeries(req.Client.Host) },
	}
	o.fwd = f
	o.srv = newServer(f, deps.Log)
	return o
}

// Handle serves one accepted connection. target is the name the listener stands for (explicit mode); empty in
// transparent mode, where the connection's original destination is the target.
func (o *Outbound) Handle(raw net.Conn, target string) {
	info := &pipeline.OutboundConn{Target: target}
	if target == "" {
		orig, err := OriginalDst(raw)
		if err != nil {
			o.deps.Metrics.Error("outbound", "no_original_dst")
			o.deps.Log.Warn("outbound connection refused", "remote", raw.RemoteAddr(), "err", err)
			raw.Close()
			return
		}
		info.Target, info.OrigDst = orig.String(), orig.String()
	}
	// Keyed by the listener's target, not the original destination: one series per explicit port, one for the
	// transparent listener, however many destinations the application calls.
	conn, ok := accept(o.srv, raw, o.acceptMetrics(target))
	if !ok {
		return
	}
	if o.opaquePorts[portOf(info.Target)] {
		o.forwardTCP(conn, info)
		return
	}
	pc, res, err := detect.Peek(conn, o.timeouts.Detect)
	if err != nil {
		if !errors.Is(err, detect.ErrEmpty) {
			o.deps.Log.Debug("outbound detection failed", "remote", raw.RemoteAddr(), "err", err)
		}
		conn.Close()
		return
	}
	switch res.Protocol {
	case detect.HTTP1, detect.HTTP2:
		o.srv.serve(pc, info, res.Protocol == detect.HTTP2)
	default:
		o.forwardTCP(pc, info)
	}
}

func (o *Outbound) acceptMetrics(target string) *metrics.Conn {
	return cached(&o.accepted, target, func() *metrics.Conn {
		return o.deps.Metrics.Conn(metrics.Labels{Direction: "outbound", TLS: "no_identity", Authority: target}, "src")
	})
}

// failedSeries is the label set of requests to authority for which no endpoint could be chosen.
func (o *Outbound) failedSeries(authority string) *metrics.Series {
	return cached(&o.failSeries, authority, func() *metrics.Series {
		return o.deps.Metrics.Series(metrics.Labels{Direction: "outbound", Authority: authority, TLS: "no_identity"})
	})
}

// Sweep forgets endpoint state no longer in use; see layer.Endpoints.Sweep.
func (o *Outbound) Sweep(idle time.Duration) { o.eps.Sweep(idle) }

// forwardTCP carries an opaque connection to one endpoint (connection-level balancing): the target's own
// endpoints, as the default route would; routes are HTTP-only.
func (o *Outbound) forwardTCP(conn net.Conn, oc *pipeline.OutboundConn) {
	ctx := connCtx()
	accrual := o.deps.Policies.Get(oc.Target).Policy().Accrual
	var ep *endpoint.Endpoint
	var up net.Conn
	var err error
	// Nothing was sent when a connect fails, so another endpoint is tried, as for HTTP.
	for range 3 {
		if ep, err = o.eps.Pick(ctx, oc.Target, oc.OrigDst, accrual, ep, ep != nil); err != nil {
			break
		}
		start := ep.Bal.Start()
		up, err = ep.DialTCP(ctx)
		ep.Bal.Done(start, err != nil)
		if err == nil || !endpoint.IsDialError(err) {
			break
		}
	}
	if err != nil {
		o.tcpFailed(conn, oc, err)
		return
	}
	release := ep.Bal.Hold()
	defer release()
	um := ep.TCPMetrics()
	um.Opened()
	failed := splice(conn, &countingConn{Conn: up, m: um})
	um.Closed(failed)
}

func (o *Outbound) tcpFailed(conn net.Conn, oc *pipeline.OutboundConn, err error) {
	f := pipeline.Classify(context.Background(), err)
	o.deps.Metrics.Error("outbound", f.Kind)
	o.deps.Log.Warn("outbound TCP connection failed", "target", oc.Target, "kind", f.Kind, "err", err)
	conn.Close()
}

// Shutdown drains the outbound side; see server.shutdown.
func (o *Outbound) Shutdown(ctx context.Context) {
	o.srv.shutdown(ctx)
	o.plain.CloseIdle()
}

func portOf(hostport string) uint16 {
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseUint(p, 10, 16)
	return uint16(n)
}

// ServeHTTP forwards one request that arrived on a connection of this side.
func (o *Outbound) ServeHTTP(w http.ResponseWriter, r *http.Request) { o.fwd.ServeHTTP(w, r) }
