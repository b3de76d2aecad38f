package forward

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"sync"
	"time"

	"github.com/sinewmesh/sinew/proxy/internal/detect"
	"github.com/sinewmesh/sinew/proxy/internal/discovery"
	"github.com/sinewmesh/sinew/proxy/internal/metrics"
	"github.com/sinewmesh/sinew/proxy/internal/tap"
)

// Outbound carries the application's connections to their destinations.
type Outbound struct {
	deps        Deps
	timeouts    Timeouts
	opaquePorts map[uint16]bool
	dialer      *meshDialer
	plain       *plainTransports
	srv         *server
	rp          *httputil.ReverseProxy

	pools       sync.Map // target -> *pool
	passthrough sync.Map // addr -> *endpoint
	failSeries  sync.Map // authority -> *metrics.Series
	accepted    sync.Map // listener target ("" for transparent) -> *metrics.Conn
}

// outboundConn is what the outbound side knows of a connection, for each request served on it.
type outboundConn struct {
	target  string // the name to resolve: a service authority, or ip:port
	origDst string // transparent mode: the original destination, where unknown names go; empty otherwise
}

func outboundConnFrom(ctx context.Context) *outboundConn {
	oc, _ := ctx.Value(ctxKey{}).(*outboundConn)
	return oc
}

// NewOutbound builds the outbound side.
func NewOutbound(deps Deps, t Timeouts, opaquePorts map[uint16]bool) *Outbound {
	o := &Outbound{
		deps:        deps,
		timeouts:    t,
		opaquePorts: opaquePorts,
		dialer:      &meshDialer{certs: deps.Certs, anchors: deps.Anchors, timeout: t.Connect},
		plain:       newPlainTransports(t.Connect),
	}
	o.rp = newReverseProxy(deps.Log, "outbound")
	o.srv = newServer(o, deps.Log)
	return o
}

// Handle serves one accepted connection. target is the name the listener stands for (explicit mode); empty in
// transparent mode, where the connection's original destination is the target.
func (o *Outbound) Handle(raw net.Conn, target string) {
	info := &outboundConn{target: target}
	if target == "" {
		orig, err := OriginalDst(raw)
		if err != nil {
			o.deps.Metrics.Error("outbound", "no_original_dst")
			o.deps.Log.Warn("outbound connection refused", "remote", raw.RemoteAddr(), "err", err)
			raw.Close()
			return
		}
		info.target, info.origDst = orig.String(), orig.String()
	}
	// Keyed by the listener's target, not the original destination: one series per explicit port, one for the
	// transparent listener, however many destinations the application calls.
	conn, ok := accept(o.srv, raw, o.acceptMetrics(target))
	if !ok {
		return
	}
	if o.opaquePorts[portOf(info.target)] {
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
	case detect.HTTP1:
		o.srv.serveHTTP1(pc, info)
	case detect.HTTP2:
		o.srv.serveHTTP2(connCtx(), pc, info, o)
		pc.Close()
	default:
		o.forwardTCP(pc, info)
	}
}

func (o *Outbound) acceptMetrics(target string) *metrics.Conn {
	return cached(&o.accepted, target, func() *metrics.Conn {
		return o.deps.Metrics.Conn(metrics.Labels{Direction: "outbound", TLS: "no_identity", Authority: target}, "src")
	})
}

// ServeHTTP forwards one request from the application.
func (o *Outbound) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	oc := outboundConnFrom(r.Context())
	start := time.Now()
	// Only a peer proxy may set the mesh's own headers.
	r.Header.Del(origProtoHeader)
	ep, err := o.pick(r.Context(), oc)
	if err != nil {
		st := &reqState{start: start, series: o.failedSeries(r.Host)}
		st.startRequest(r)
		if o.deps.Tap.Active() {
			st.tap = o.deps.Tap.Start(func() *tap.Meta { return o.tapMeta(r, oc.target, nil) })
		}
		o.rp.ErrorHandler(w, withState(r, st), err)
		return
	}
	upgrade := isUpgrade(r)
	st := &reqState{
		start:     start,
		series:    ep.series(r.Host),
		addr:      ep.info.Addr,
		rt:        ep.transport(r, upgrade, o.plain),
		ep:        ep.bal,
		origProto: ep.info.Meshed() && r.ProtoMajor == 1 && !upgrade,
	}
	st.startRequest(r)
	if o.deps.Tap.Active() {
		st.tap = o.deps.Tap.Start(func() *tap.Meta { return o.tapMeta(r, ep.info.Addr, ep) })
	}
	o.rp.ServeHTTP(w, withState(r, st))
}

// failedSeries is the label set of requests to authority for which no endpoint could be chosen.
func (o *Outbound) failedSeries(authority string) *metrics.Series {
	return cached(&o.failSeries, authority, func() *metrics.Series {
		return o.deps.Metrics.Series(metrics.Labels{Direction: "outbound", Authority: authority, TLS: "no_identity"})
	})
}

// pick resolves the target and chooses an endpoint.
func (o *Outbound) pick(ctx context.Context, oc *outboundConn) (*endpoint, error) {
	p := o.pool(oc.target)
	snap := p.target.Snapshot()
	if !snap.Known {
		wctx, cancel := context.WithTimeout(ctx, o.timeouts.Discovery)
		var err error
		snap, err = p.target.Wait(wctx)
		cancel()
		if err != nil && !snap.Known {
			if oc.origDst != "" {
				return o.passthroughEndpoint(oc.origDst), nil
			}
			return nil, fmt.Errorf("%s: %w", oc.target, errUnresolved)
		}
	}
	if !snap.Exists {
		// Not a name the mesh knows: send it where the application meant it to go.
		addr := oc.origDst
		if addr == "" {
			addr = oc.target
		}
		return o.passthroughEndpoint(addr), nil
	}
	be := p.current(snap).set.Pick()
	if be == nil {
		return nil, fmt.Errorf("%s: %w", oc.target, errNoEndpoints)
	}
	return be.Value.(*endpoint), nil
}

func (o *Outbound) pool(target string) *pool {
	if p, ok := o.pools.Load(target); ok {
		pl := p.(*pool)
		if !pl.target.Evicted() {
			return pl
		}
		o.pools.Delete(target)
	}
	p, _ := o.pools.LoadOrStore(target, &pool{target: o.deps.Resolver.Get(target), m: o.deps.Metrics, dialer: o.dialer})
	return p.(*pool)
}

func (o *Outbound) passthroughEndpoint(addr string) *endpoint {
	e := cached(&o.passthrough, addr, func() *endpoint {
		return newEndpoint(discovery.Endpoint{Addr: addr, Weight: 1}, nil, o.deps.Metrics, o.dialer)
	})
	e.lastUsed.Store(time.Now().UnixNano())
	return e
}

// Sweep forgets state no longer in use: pools whose target the resolver stopped watching, and pass-through
// endpoints unused for longer than idle. In transparent mode every distinct external ip:port creates such state,
// so without this a long-lived proxy would grow without bound. In-flight requests keep their own references.
func (o *Outbound) Sweep(idle time.Duration) {
	o.pools.Range(func(k, v any) bool {
		if v.(*pool).target.Evicted() {
			o.pools.CompareAndDelete(k, v)
		}
		return true
	})
	cutoff := time.Now().Add(-idle).UnixNano()
	o.passthrough.Range(func(k, v any) bool {
		// Pass-through endpoints use the shared plain transports, whose idle connections time out by themselves.
		if v.(*endpoint).lastUsed.Load() < cutoff {
			o.passthrough.CompareAndDelete(k, v)
		}
		return true
	})
}

// forwardTCP carries an opaque connection to one endpoint (connection-level balancing).
func (o *Outbound) forwardTCP(conn net.Conn, oc *outboundConn) {
	ctx := connCtx()
	ep, err := o.pick(ctx, oc)
	if err != nil {
		o.tcpFailed(conn, oc, err)
		return
	}
	start := ep.bal.Start()
	up, err := ep.dialTCP(ctx, o.timeouts.Connect)
	ep.bal.Done(start, err != nil)
	if err != nil {
		o.tcpFailed(conn, oc, err)
		return
	}
	release := ep.bal.Hold()
	defer release()
	um := ep.tcpMetrics()
	um.Opened()
	failed := splice(conn, &countingConn{Conn: up, m: um})
	um.Closed(failed)
}

func (o *Outbound) tcpFailed(conn net.Conn, oc *outboundConn, err error) {
	f := classify(context.Background(), err)
	o.deps.Metrics.Error("outbound", f.kind)
	o.deps.Log.Warn("outbound TCP connection failed", "target", oc.target, "kind", f.kind, "err", err)
	conn.Close()
}

// Shutdown drains the outbound side; see server.shutdown.
func (o *Outbound) Shutdown(ctx context.Context) {
	o.srv.shutdown(ctx)
	o.plain.closeIdle()
}

func portOf(hostport string) uint16 {
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseUint(p, 10, 16)
	return uint16(n)
}

// tapMeta describes an outbound request for tap: from the local application to the endpoint chosen (ep nil
// when none could be chosen), with the endpoint's labels and identity as the metrics know them.
func (o *Outbound) tapMeta(r *http.Request, dst string, ep *endpoint) *tap.Meta {
	local := o.deps.Tap.Local()
	m := &tap.Meta{
		Source: r.RemoteAddr, SourceLabels: local.Labels, Destination: dst, TLS: "no_identity",
		Scheme: requestScheme(r), Method: r.Method, Authority: r.Host, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Header: r.Header,
	}
	if ep != nil {
		m.DestinationLabels, m.TLS, m.ServerID = ep.labels.Dst, ep.labels.TLS, ep.info.Identity
		if ep.info.Meshed() {
			m.ClientID = local.ID
		}
	}
	return m
}
