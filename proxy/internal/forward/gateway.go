package forward

import (
	"context"
	"crypto/tls"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/sinewmesh/sinew/proxy/internal/detect"
	"github.com/sinewmesh/sinew/proxy/internal/gateway"
	"github.com/sinewmesh/sinew/proxy/internal/layer"
	"github.com/sinewmesh/sinew/proxy/internal/metrics"
	"github.com/sinewmesh/sinew/proxy/internal/pipeline"
)

// Gateway serves the listeners of a gateway proxy (sinew's ingress gateway): clients outside the mesh connect to
// a listener port, HTTPS ports terminate TLS with the certificate of the listener that serves the client's server
// name, and each request runs through the gateway chain: the port's inbound policy, the routes of the listener
// and host name the request's authority names, then the outbound chain to meshed backends over mTLS.
type Gateway struct {
	deps     Deps
	timeouts Timeouts
	config   func() *gateway.Config
	srv      *server

	series   sync.Map // listener port -> *metrics.Series
	accepted sync.Map // listener port -> *metrics.Conn
}

// gatewayConn is what the gateway knows of a client connection.
type gatewayConn struct {
	in pipeline.InboundConn // the client, and the port's inbound policy
	// out is every request's outbound state: no target (the routes name the backends), shared and never changed.
	out pipeline.OutboundConn
	// tls is the connection's TLS state on an HTTPS listener, nil on an HTTP one. Our server does not set
	// http.Request.TLS itself (it serves the *tls.Conn through its own HTTP/1 and HTTP/2 paths), and what reads it
	// must know the request came over TLS: a redirect without a scheme keeps https.
	tls *tls.ConnectionState
}

// NewGateway builds the gateway side on the outbound side's endpoints (pools, balancers, the mesh dialer), which
// it shares; config returns the gateway's current configuration.
func NewGateway(out *Outbound, config func() *gateway.Config) *Gateway {
	deps := out.deps
	g := &Gateway{deps: deps, timeouts: out.timeouts, config: config}
	fwd := &forwarder{
		dir:   pipeline.Outbound,
		chain: gatewayChain(newAuthorizer(deps, out.timeouts), config, out.eps, deps.Tap),
		log:   deps.Log,
		prepare: func(req *pipeline.Request) {
			gc, _ := req.Client.Context().Value(ctxKey{}).(*gatewayConn)
			req.In, req.Out = &gc.in, &gc.out
			scheme := "http"
			if gc.tls != nil {
				scheme = "https"
				if req.Client.TLS == nil {
					req.Client.TLS = gc.tls
				}
			}
			h := req.HTTP.Header
			// Only a peer proxy may set the mesh's own headers.
			delete(h, layer.OrigProtoHeader)
			delete(h, clientIDHeader)
			if gc.in.Peer.IsValid() {
				h["X-Forwarded-For"] = append(h["X-Forwarded-For"], gc.in.Peer.String())
			}
			h["X-Forwarded-Proto"] = []string{scheme}
			// Backends get HTTP/1.1 unless the request is gRPC, which needs HTTP/2 end to end.
			req.ToHTTP1 = req.Client.ProtoMajor == 2 && !pipeline.IsGRPC(req.Client)
		},
		failedSeries: func(req *pipeline.Request) *metrics.Series { return req.In.Series },
	}
	g.srv = newServer(fwd, deps.Log)
	return g
}

// Handle serves one connection accepted on the listener port port.
func (g *Gateway) Handle(raw net.Conn, port uint16) {
	conn, ok := accept(g.srv, raw, g.acceptMetrics(port))
	if !ok {
		return
	}
	gc := &gatewayConn{}
	gc.in = pipeline.InboundConn{Dst: localAddrPort(raw, port), TLS: "no_identity"}
	if ta, ok := raw.RemoteAddr().(*net.TCPAddr); ok {
		gc.in.Peer = ta.AddrPort().Addr().Unmap()
	}
	gc.in.Series = g.portSeries(port)
	gc.in.AuthzConn.TargetAddr = gc.in.Dst.String()
	gc.in.AuthzConn.TLS = gc.in.TLS
	if g.deps.Authz != nil {
		gc.in.Authz = g.deps.Authz.Get(port)
	}
	p := g.config().Ports[port]
	if p == nil {
		// The listener went away between accept and now.
		conn.Close()
		return
	}
	if p.TLS {
		g.serveTLS(conn, gc, port)
		return
	}
	pc, res, err := detect.Peek(conn, g.timeouts.Detect)
	if err != nil {
		conn.Close()
		return
	}
	if res.Protocol != detect.HTTP1 && res.Protocol != detect.HTTP2 {
		g.deps.Metrics.Error("gateway", "not_http")
		g.deps.Log.Debug("gateway: a client spoke something other than HTTP", "port", port, "remote", raw.RemoteAddr())
		pc.Close()
		return
	}
	g.srv.serve(pc, gc, res.Protocol == detect.HTTP2)
}

// serveTLS terminates TLS with the certificate of the listener that serves the client's server name, looked up
// in the configuration current at the handshake (a new certificate applies to the next handshake), then serves
// HTTP/2 or HTTP/1.1 as ALPN chose.
func (g *Gateway) serveTLS(conn net.Conn, gc *gatewayConn, port uint16) {
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			p := g.config().Ports[port]
			if p == nil || !p.TLS {
				return nil, gateway.ErrNoCertificate
			}
			return p.Certificate(hello.ServerName)
		},
	}
	tc := tls.Server(conn, cfg)
	tc.SetDeadline(time.Now().Add(g.timeouts.Handshake)) //nolint:errcheck
	if err := tc.Handshake(); err != nil {
		g.deps.Metrics.Error("gateway", "tls_handshake")
		g.deps.Log.Debug("gateway TLS handshake failed", "port", port, "remote", conn.RemoteAddr(), "err", err)
		conn.Close()
		return
	}
	tc.SetDeadline(time.Time{}) //nolint:errcheck
	st := tc.ConnectionState()
	gc.tls = &st
	g.srv.serve(tc, gc, st.NegotiatedProtocol == "h2")
}

func (g *Gateway) acceptMetrics(port uint16) *metrics.Conn {
	return cached(&g.accepted, port, func() *metrics.Conn {
		return g.deps.Metrics.Conn(metrics.Labels{Direction: "inbound", TLS: "no_identity", TargetAddr: gatewayTarget(port)}, "src")
	})
}

// portSeries counts the requests of a listener port as the gateway's inbound traffic (layer.Meter).
func (g *Gateway) portSeries(port uint16) *metrics.Series {
	return cached(&g.series, port, func() *metrics.Series {
		return g.deps.Metrics.Series(metrics.Labels{Direction: "inbound", TLS: "no_identity", TargetAddr: gatewayTarget(port)})
	})
}

func gatewayTarget(port uint16) string {
	return netip.AddrPortFrom(netip.IPv4Unspecified(), port).String()
}

// Shutdown drains the gateway's client connections; see server.shutdown. The endpoints' connections are the
// outbound side's.
func (g *Gateway) Shutdown(ctx context.Context) { g.srv.shutdown(ctx) }
