package forward

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/sinewmesh/sinew/internal/meshtls"
	"github.com/sinewmesh/sinew/proxy/internal/detect"
	"github.com/sinewmesh/sinew/proxy/internal/metrics"
	"github.com/sinewmesh/sinew/proxy/internal/tap"
	"github.com/sinewmesh/sinew/proxy/internal/transport"
)

// InboundPorts maps application ports. In explicit mode, Apps maps the port a peer asks for (the workload's
// declared port) to the local address the application listens on, and Default takes plaintext clients. In
// transparent mode Apps is empty and the application is on 127.0.0.1 at the original destination port.
type InboundPorts struct {
	Apps    map[uint16]string
	Default string
}

// Inbound carries connections from peers to the local application.
type Inbound struct {
	deps        Deps
	timeouts    Timeouts
	opaquePorts map[uint16]bool
	ports       InboundPorts
	serverTLS   *tls.Config
	plain       *plainTransports
	srv         *server
	rp          *httputil.ReverseProxy

	series sync.Map // appAddr|tls|client -> *metrics.Series
	conns  sync.Map // same key -> *metrics.Conn
}

// inboundConn is what the inbound side knows of a connection, for each request served on it.
type inboundConn struct {
	appAddr string // where the application listens
	// dst is where the client sent the connection, the tap events' destination: this pod's address and the port
	// the client asked for (from a peer proxy's transport header, or a captured connection's original
	// destination), not the application's loopback address. Kept as a value: only tap formats it.
	dst      netip.AddrPort
	mesh     bool   // a peer proxy's mTLS connection
	tls      string // the tls label: "true" or why not
	clientID string // the peer's mesh identity; empty unless mesh
	// series is the resolved metrics of this connection's requests (see metered).
	series *metrics.Series
}

func inboundConnFrom(ctx context.Context) *inboundConn {
	ic, _ := ctx.Value(ctxKey{}).(*inboundConn)
	return ic
}

// NewInbound builds the inbound side.
func NewInbound(deps Deps, t Timeouts, opaquePorts map[uint16]bool, ports InboundPorts) *Inbound {
	in := &Inbound{
		deps:        deps,
		timeouts:    t,
		opaquePorts: opaquePorts,
		ports:       ports,
		serverTLS:   meshtls.ServerConfig(deps.Anchors, deps.Certs.Certificate, true, meshtls.ALPN),
		plain:       newPlainTransports(t.Connect),
	}
	in.rp = newReverseProxy(deps.Log, "inbound")
	in.srv = newServer(in, deps.Log)
	return in
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
	plain := &inboundConn{appAddr: appAddr, dst: dst, tls: "no_identity"}
	if in.opaquePorts[port] {
		in.forwardTCP(in.metered(conn, plain), plain)
		return
	}
	pc, res, err := detect.Peek(conn, in.timeouts.Detect)
	if err != nil {
		_ = conn.Close() // nothing to serve; the client is gone or silent
		return
	}
	switch {
	case res.Protocol == detect.TLS && slices.Contains(res.ALPN, meshtls.ALPN):
		in.serveMesh(pc)
	case res.Protocol == detect.HTTP1:
		in.srv.serveHTTP1(in.metered(pc, plain), plain)
	case res.Protocol == detect.HTTP2:
		in.srv.serveHTTP2(connCtx(), in.metered(pc, plain), plain, in)
		pc.Close()
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
		return in.ports.Default, localAddrPort(raw, 0), portOf(in.ports.Default), nil
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
	return "", fmt.Errorf("port %d: %w", port, errUnknownPort)
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
	info := &inboundConn{appAddr: app, dst: localAddrPort(conn, hdr.Port), mesh: true, tls: "true",
		clientID: meshtls.PeerID(tc.ConnectionState().PeerCertificates[0])}
	mc := in.metered(tc, info)
	switch hdr.Proto {
	case transport.ProtoH2:
		in.srv.serveHTTP2(connCtx(), mc, info, in)
		mc.Close()
	case transport.ProtoHTTP1:
		in.srv.serveHTTP1(mc, info)
	case transport.ProtoOpaque:
		in.forwardTCP(mc, info)
	}
}

func (in *Inbound) key(ic *inboundConn) string { return ic.appAddr + "|" + ic.tls + "|" + ic.clientID }

// metered attaches TCP metrics (now that TLS status is known) and the cached HTTP label set to the connection.
func (in *Inbound) metered(c net.Conn, ic *inboundConn) net.Conn {
	k := in.key(ic)
	l := metrics.Labels{Direction: "inbound", TargetAddr: ic.appAddr, TLS: ic.tls, ClientID: ic.clientID}
	m := cached(&in.conns, k, func() *metrics.Conn { return in.deps.Metrics.Conn(l, "src") })
	ic.series = cached(&in.series, k, func() *metrics.Series { return in.deps.Metrics.Series(l) })
	m.Opened()
	return &trackedConn{Conn: &countingConn{Conn: c, m: m}, onClose: func() { m.Closed(false) }}
}

// ServeHTTP forwards one request to the application.
func (in *Inbound) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ic := inboundConnFrom(r.Context())
	st := &reqState{start: time.Now(), series: ic.series, addr: ic.appAddr}
	// Only a peer proxy may ask for HTTP/1 to be restored; the header never reaches the application.
	restoreH1 := ic.mesh && r.Header.Get(origProtoHeader) != ""
	r.Header.Del(origProtoHeader)
	if restoreH1 {
		st.rt = in.plain.h1
	} else {
		st.rt = in.plain.pick(r)
	}
	if ic.mesh {
		r.Header.Set(clientIDHeader, ic.clientID)
	} else {
		r.Header.Del(clientIDHeader)
	}
	st.startRequest(r)
	if in.deps.Tap.Active() {
		st.tap = in.deps.Tap.Start(func() *tap.Meta { return in.tapMeta(r, ic) })
	}
	in.rp.ServeHTTP(w, withState(r, st))
}

func (in *Inbound) forwardTCP(conn net.Conn, ic *inboundConn) {
	up, err := (&net.Dialer{Timeout: in.timeouts.Connect}).Dial("tcp", ic.appAddr)
	if err != nil {
		in.deps.Metrics.Error("inbound", classify(connCtx(), err).kind)
		in.deps.Log.Warn("inbound TCP: application unreachable", "app", ic.appAddr, "err", err)
		conn.Close()
		return
	}
	splice(conn, up)
}

// Shutdown drains the inbound side; see server.shutdown.
func (in *Inbound) Shutdown(ctx context.Context) {
	in.srv.shutdown(ctx)
	in.plain.closeIdle()
}

// tapMeta describes an inbound request for tap: from the client (its mesh identity's namespace and service
// account as labels) to this pod at the address the client sent the request to, as Linkerd shows it.
func (in *Inbound) tapMeta(r *http.Request, ic *inboundConn) *tap.Meta {
	local := in.deps.Tap.Local()
	var dst string
	if ic.dst.IsValid() {
		dst = ic.dst.String()
	}
	m := &tap.Meta{
		Inbound: true, Source: r.RemoteAddr, Destination: dst, DestinationLabels: local.Labels,
		TLS: ic.tls, ClientID: ic.clientID,
		Scheme: requestScheme(r), Method: r.Method, Authority: r.Host, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Header: r.Header,
	}
	if ic.mesh {
		m.ServerID = local.ID
		if _, ns, sa, err := meshtls.ParseID(ic.clientID); err == nil {
			m.SourceLabels = map[string]string{"namespace": ns, "serviceaccount": sa}
		}
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
