package forward

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sinewmesh/sinew/internal/meshtls"
	"github.com/sinewmesh/sinew/proxy/internal/authz"
	"github.com/sinewmesh/sinew/proxy/internal/detect"
	"github.com/sinewmesh/sinew/proxy/internal/endpoint"
	"github.com/sinewmesh/sinew/proxy/internal/layer"
	"github.com/sinewmesh/sinew/proxy/internal/metrics"
	"github.com/sinewmesh/sinew/proxy/internal/pipeline"
	"github.com/sinewmesh/sinew/proxy/internal/transport"
)

// InboundPorts maps application ports. In explicit mode, Apps maps the port a peer asks for (the workload's
// declared port) to the local address the application listens on, and Default takes plaintext clients. In
// transparent mode Apps is empty and the application is on 127.0.0.1 at the original destination port.
type InboundPorts struct {
	Apps    map[uint16]string
	Default string
	// DefaultPort is the workload port of Default, whose authorization policy applies to plaintext clients.
	DefaultPort uint16
}

// Inbound carries connections from peers to the local application.
type Inbound struct {
	deps        Deps
	timeouts    Timeouts
	opaquePorts map[uint16]bool
	ports       InboundPorts
	serverTLS   *tls.Config
	dialer      *endpoint.Dialer
	plain       *endpoint.Plain
	srv         *server
	fwd         *forwarder

	series sync.Map // appAddr|tls|client -> *metrics.Series
	conns  sync.Map // same key -> *metrics.Conn
}

func inboundConnFrom(ctx context.Context) *pipeline.InboundConn {
	ic, _ := ctx.Value(ctxKey{}).(*pipeline.InboundConn)
	return ic
}

// clientIDHeader tells the application who called: the peer's mesh identity.
const clientIDHeader = "Sinew-Client-Id"

// NewInbound builds the inbound side.
func NewInbound(deps Deps, t Timeouts, opaquePorts map[uint16]bool, ports InboundPorts) *Inbound {
	in := &Inbound{
		deps:        deps,
		timeouts:    t,
		opaquePorts: opaquePorts,
		ports:       ports,
		serverTLS:   meshtls.ServerConfig(deps.Anchors, deps.Certs.Certificate, true, meshtls.ALPN),
		dialer:      endpoint.NewDialer(deps.Certs, deps.Anchors, t.Connect),
	}
	in.plain = endpoint.NewPlain(in.dialer)
	f := &forwarder{
		dir:          pipeline.Inbound,
		chain:        inboundChain(newAuthorizer(deps, t), layer.NoRoutes{}, layer.NoFaults{}, in.plain, deps.Tap),
		log:          deps.Log,
		prepare:      prepareInbound,
		failedSeries: func(req *pipeline.Request) *metrics.Series { return req.In.Series },
	}
	in.fwd = f
	in.srv = newServer(f, deps.Log)
	return in
}

// newAuthorizer is the HTTP authorization of inbound policy, which waits up to the discovery timeout for a port's
// first policy; AllowAll without an authz watcher (tests of other parts).
func newAuthorizer(deps Deps, t Timeouts) layer.Authorizer {
	if deps.Authz == nil {
		return layer.AllowAll{}
	}
	return &layer.Policy{Metrics: deps.AuthzMetrics, Wait: t.Discovery, Log: deps.Log}
}

// Handle serves one accepted connection.
func (in *Inbound) Handle(raw net.Conn) {
	appAddr, dst, port, err := in.defaultApp(raw)
	if err != nil {
		in.deps.Metrics.Error("inbound", "no_app_port")
		in.deps.Log.Warn("inbound connection refused", "remote", raw.RemoteAddr(), "err", err)
		raw.Close()
		return
	}
	untrack, ok := in.srv.track(raw)
	if !ok {
		raw.Close()
		return
	}
	conn := &trackedConn{Conn: raw, onClose: untrack}
	plain := &pipeline.InboundConn{AppAddr: appAddr, Dst: dst, TLS: "no_identity"}
	in.bindPolicy(plain, port, raw.RemoteAddr())
	opaque := in.opaquePorts[port]
	if opaque && in.ports.Apps == nil {
		// Transparent mode: mesh connections come to the inbound port itself, never as an opaque app port.
		in.forwardTCP(in.metered(conn, plain), plain)
		return
	}
	// Explicit mode: mesh connections and plaintext clients share the listener, so even for an opaque default
	// port the first bytes tell a peer proxy's mTLS from the client's own bytes (a server-speaks-first protocol
	// waits out the detect timeout).
	pc, res, err := detect.Peek(conn, in.timeouts.Detect)
	if err != nil {
		_ = conn.Close() // nothing to serve; the client is gone or silent
		return
	}
	switch {
	case res.Protocol == detect.TLS && slices.Contains(res.ALPN, meshtls.ALPN):
		in.serveMesh(pc)
	case opaque:
		in.forwardTCP(in.metered(pc, plain), plain)
	case res.Protocol == detect.HTTP1, res.Protocol == detect.HTTP2:
		in.srv.serve(in.metered(pc, plain), plain, res.Protocol == detect.HTTP2)
	default:
		// Opaque bytes, or the application's own TLS: pass through untouched.
		in.forwardTCP(in.metered(pc, plain), plain)
	}
}

// defaultApp is where plaintext connections go (app, and its port), and where their client sent them (dst).
func (in *Inbound) defaultApp(raw net.Conn) (app string, dst netip.AddrPort, port uint16, err error) {
	if in.ports.Apps != nil {
		if in.ports.Default == "" {
			return "", netip.AddrPort{}, 0, errors.New("no default application port configured")
		}
		// Explicit mode: plaintext clients dial the inbound listener itself.
		port := in.ports.DefaultPort
		if port == 0 {
			port = portOf(in.ports.Default)
		}
		return in.ports.Default, localAddrPort(raw, 0), port, nil
	}
	orig, err := OriginalDst(raw)
	if errors.Is(err, errNotRedirected) {
		// Dialed the inbound port directly: only mesh connections (which carry their port) make sense.
		return "", localAddrPort(raw, 0), 0, nil
	}
	if err != nil {
		return "", netip.AddrPort{}, 0, err
	}
	return appLoopback(orig.Port()), orig, orig.Port(), nil
}

// localAddrPort is the address c was accepted on, with port instead of its own unless port is 0; the zero
// AddrPort for a connection that is not TCP. A peer proxy dials this pod's address; the port its client asked for
// travels in the transport header.
func localAddrPort(c net.Conn, port uint16) netip.AddrPort {
	ta, ok := c.LocalAddr().(*net.TCPAddr)
	if !ok {
		return netip.AddrPort{}
	}
	ap := ta.AddrPort()
	if port == 0 {
		port = ap.Port()
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), port)
}

func appLoopback(port uint16) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))) }

func (in *Inbound) appFor(port uint16) (string, error) {
	if in.ports.Apps == nil {
		return appLoopback(port), nil
	}
	if a, ok := in.ports.Apps[port]; ok {
		return a, nil
	}
	return "", fmt.Errorf("port %d: %w", port, pipeline.ErrUnknownPort)
}

// serveMesh terminates mesh mTLS, reads the transport header, and serves what follows.
func (in *Inbound) serveMesh(conn net.Conn) {
	tc := tls.Server(conn, in.serverTLS)
	deadline := time.Now().Add(in.timeouts.Handshake)
	tc.SetDeadline(deadline) //nolint:errcheck
	if err := tc.Handshake(); err != nil {
		in.deps.Metrics.Error("inbound", "tls_handshake")
		in.deps.Log.Info("inbound mesh TLS handshake failed", "remote", conn.RemoteAddr(), "err", err)
		conn.Close()
		return
	}
	hdr, err := transport.Read(tc)
	if err != nil {
		in.deps.Metrics.Error("inbound", "bad_transport_header")
		in.deps.Log.Info("inbound mesh connection closed", "remote", conn.RemoteAddr(), "err", err)
		_ = tc.Close() // refused; the reason is logged
		return
	}
	tc.SetDeadline(time.Time{}) //nolint:errcheck
	app, err := in.appFor(hdr.Port)
	if err != nil {
		in.deps.Metrics.Error("inbound", "unknown_port")
		in.deps.Log.Warn("inbound mesh connection for an unknown port", "remote", conn.RemoteAddr(), "err", err)
		_ = tc.Close() // refused; the reason is logged
		return
	}
	info := &pipeline.InboundConn{AppAddr: app, Dst: localAddrPort(conn, hdr.Port), Mesh: true, TLS: "true",
		ClientID: meshtls.PeerID(tc.ConnectionState().PeerCertificates[0])}
	in.bindPolicy(info, hdr.Port, conn.RemoteAddr())
	mc := in.metered(tc, info)
	switch hdr.Proto {
	case transport.ProtoH2, transport.ProtoHTTP1:
		in.srv.serve(mc, info, hdr.Proto == transport.ProtoH2)
	case transport.ProtoOpaque:
		in.forwardTCP(mc, info)
	}
}

func (in *Inbound) key(ic *pipeline.InboundConn) string {
	return ic.AppAddr + "|" + ic.TLS + "|" + ic.ClientID
}

// metered attaches TCP metrics (now that TLS status is known) and the cached HTTP label set to the connection.
func (in *Inbound) metered(c net.Conn, ic *pipeline.InboundConn) net.Conn {
	k := in.key(ic)
	l := metrics.Labels{Direction: "inbound", TargetAddr: ic.AppAddr, TLS: ic.TLS, ClientID: ic.ClientID}
	m := cached(&in.conns, k, func() *metrics.Conn { return in.deps.Metrics.Conn(l, "src") })
	ic.Series = cached(&in.series, k, func() *metrics.Series { return in.deps.Metrics.Series(l) })
	m.Opened()
	return &trackedConn{Conn: &countingConn{Conn: c, m: m}, onClose: func() { m.Closed(false) }}
}

// ServeHTTP forwards one request that arrived on a connection of this side.
func (in *Inbound) ServeHTTP(w http.ResponseWriter, r *http.Request) { in.fwd.ServeHTTP(w, r) }

// prepareInbound restores what a peer proxy carried (the HTTP/1 version of the request) and tells the
// application who called. Only a peer proxy may set the mesh's headers; they never reach the application.
func prepareInbound(req *pipeline.Request) {
	ic := inboundConnFrom(req.Client.Context())
	req.In = ic
	h := req.HTTP.Header
	if orig, ok := h[layer.OrigProtoHeader]; ok {
		delete(h, layer.OrigProtoHeader)
		if ic.Mesh && len(orig) == 1 {
			proto, noHost := orig[0], false
			if p, ok := strings.CutSuffix(proto, "; no-host"); ok {
				proto, noHost = p, true
			}
			if proto == "HTTP/1.1" || proto == "HTTP/1.0" {
				req.OrigProto, req.NoHost = proto, noHost && proto == "HTTP/1.0"
			}
		}
	}
	if req.NoHost {
		req.HTTP.Host = ""
	}
	if ic.Mesh {
		h[clientIDHeader] = []string{ic.ClientID}
	} else {
		delete(h, clientIDHeader)
	}
}

func (in *Inbound) forwardTCP(conn net.Conn, ic *pipeline.InboundConn) {
	if !in.authorizeTCP(ic) {
		conn.Close()
		return
	}
	up, err := in.dialer.Plain(connCtx(), ic.AppAddr)
	if err != nil {
		in.deps.Metrics.Error("inbound", pipeline.Classify(connCtx(), err).Kind)
		in.deps.Log.Warn("inbound TCP: application unreachable", "app", ic.AppAddr, "err", err)
		conn.Close()
		return
	}
	splice(conn, up)
}

// Shutdown drains the inbound side; see server.shutdown.
func (in *Inbound) Shutdown(ctx context.Context) {
	in.srv.shutdown(ctx)
	in.plain.CloseIdle()
}

// bindPolicy attaches the authorization policy of the workload port the client asked for to ic.
func (in *Inbound) bindPolicy(ic *pipeline.InboundConn, port uint16, remote net.Addr) {
	if ta, ok := remote.(*net.TCPAddr); ok {
		ic.Peer = ta.AddrPort().Addr().Unmap()
	}
	ic.AuthzConn = authz.Conn{TargetAddr: ic.AppAddr, TLS: ic.TLS, ClientID: ic.ClientID}
	if in.deps.Authz != nil && port != 0 {
		ic.Authz = in.deps.Authz.Get(port)
	}
}

// authorizeTCP decides an opaque connection once, when it opens: refused (closed) unless an authorization of the
// port's policy admits the client. A port whose policy has not arrived within the discovery timeout refuses it.
func (in *Inbound) authorizeTCP(ic *pipeline.InboundConn) bool {
	if in.deps.Authz == nil {
		return true
	}
	var srv *authz.Server
	err := authz.ErrNoPolicy
	if ic.Authz != nil {
		ctx, cancel := context.WithTimeout(connCtx(), in.timeouts.Discovery)
		srv, err = ic.Authz.Server(ctx)
		cancel()
	}
	if err != nil {
		in.deps.AuthzMetrics.TCP(nil, nil, ic.AuthzConn)
		in.deps.Log.Warn("inbound TCP connection refused: no authorization policy", "app", ic.AppAddr, "err", err)
		return false
	}
	a := srv.Admit(authz.Client{Addr: ic.Peer, ID: ic.ClientID})
	in.deps.AuthzMetrics.TCP(srv, a, ic.AuthzConn)
	if a == nil {
		in.deps.Log.Info("inbound TCP connection refused by authorization policy", "srv_kind", srv.Kind, "srv_name", srv.Name,
			"tls", ic.TLS, "client_id", ic.ClientID, "client_addr", ic.Peer.String(), "app", ic.AppAddr)
		return false
	}
	if a.Audit {
		in.deps.Log.Info("inbound TCP connection admitted by an audit policy", "srv_kind", srv.Kind, "srv_name", srv.Name,
			"tls", ic.TLS, "client_id", ic.ClientID, "client_addr", ic.Peer.String(), "app", ic.AppAddr)
	}
	return true
}
