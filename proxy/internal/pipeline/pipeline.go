// Package pipeline is the contract of the proxy's HTTP request path: the typed state of one request, the Handler
// every layer implements, and Chain, which stacks layers. Layers live in proxy/internal/layer; the two chains are
// assembled in proxy/internal/forward/chains.go, the only place that knows their order. This package holds no
// policy and does no I/O.
package pipeline

import (
	"net/http"
	"net/netip"
	"time"

	"github.com/sinewmesh/sinew/proxy/internal/authz"
	"github.com/sinewmesh/sinew/proxy/internal/endpoint"
	"github.com/sinewmesh/sinew/proxy/internal/metrics"
	"github.com/sinewmesh/sinew/proxy/internal/policy"
)

// Handler handles one request: it returns the response to send back, or an error that Classify turns into the
// status the client sees. A handler that returns a response hands its body to the caller, who must close it.
type Handler interface {
	Handle(*Request) (*http.Response, error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(*Request) (*http.Response, error)

// Handle calls f.
func (f HandlerFunc) Handle(r *Request) (*http.Response, error) { return f(r) }

// Layer is one stage of a chain: given the rest of the chain, it returns a handler that does its work and calls
// next zero times (it answered itself), once, or several times (a retry).
type Layer func(next Handler) Handler

// Chain stacks layers on end; layers[0] is the outermost, the first to see a request.
func Chain(end Handler, layers ...Layer) Handler {
	h := end
	for i := len(layers) - 1; i >= 0; i-- {
		h = layers[i](h)
	}
	return h
}

// Pass is the layer that does nothing: a chain's place for a layer that is off in this proxy. It adds no work.
func Pass(next Handler) Handler { return next }

// Direction says which side of the proxy a request is on.
type Direction uint8

const (
	// Outbound requests come from the local application.
	Outbound Direction = iota
	// Inbound requests go to the local application.
	Inbound
)

func (d Direction) String() string {
	if d == Inbound {
		return "inbound"
	}
	return "outbound"
}

// InboundConn is what the inbound side knows of the connection a request came on.
type InboundConn struct {
	AppAddr string // where the application listens
	// Dst is where the client sent the connection, the tap events' destination: this pod's address and the port
	// the client asked for, not the application's loopback address. Kept as a value: only tap formats it.
	Dst      netip.AddrPort
	Mesh     bool   // a peer proxy's mTLS connection
	TLS      string // the tls label: "true" or why not
	ClientID string // the peer's mesh identity; empty unless Mesh
	// Series is the resolved metrics of this connection's requests.
	Series *metrics.Series
	// Peer is the client's address; Authz the policy of the workload port the client asked for, and AuthzConn
	// the connection's labels on authorization metrics. Authz is nil when the proxy enforces no inbound policy.
	Peer      netip.Addr
	Authz     *authz.Port
	AuthzConn authz.Conn
}

// OutboundConn is what the outbound side knows of the connection a request came on.
type OutboundConn struct {
	Target  string // the name to resolve: a service authority, or ip:port
	OrigDst string // transparent mode: the original destination, where unknown names go; empty otherwise
}

// Request is the state of one request that the layers share. Each field says which layer sets it; a layer reads
// only what layers before it set.
type Request struct {
	// HTTP is the request as it will be sent on: the client's request with the proxy's changes. Its context is
	// the request's; layers that bound the request derive from it. Layers may change its headers and body.
	HTTP *http.Request
	// Client is the request as the client sent it; its context ends when the client goes away.
	Client *http.Request
	Start  time.Time
	Dir    Direction
	// Upgrade is an HTTP/1 Upgrade request (WebSocket): it cannot be retried and needs an HTTP/1 connection.
	Upgrade bool
	// OrigProto is the HTTP/1 version to restore on the far side ("HTTP/1.1", "HTTP/1.0"; empty for HTTP/2).
	OrigProto string
	// NoHost is an HTTP/1.0 request that carried no Host header; none may be invented on the way.
	NoHost bool
	// ToHTTP1 sends an HTTP/2 request on as HTTP/1.1: a gateway's client chose HTTP/2 by ALPN, which says nothing of
	// what the backend speaks (set by the gateway for all but gRPC).
	ToHTTP1 bool

	In  *InboundConn  // inbound: set by the forwarder
	Out *OutboundConn // outbound: set by the forwarder

	// Outbound, set by the route layer: the target's policy, the rule that matched and which of its matches (nil
	// for a rule without matches).
	Policy *policy.Outbound
	Rule   *policy.Rule
	Match  *policy.Match
	// Outbound, set by the split layer: the backend authority chosen for this request.
	Backend string
	// Outbound, set by the balancer per attempt: the endpoint this attempt goes to. A retry sees the previous
	// attempt's endpoint here and avoids it.
	Endpoint *endpoint.Endpoint
	// Attempt counts attempts at a backend, from 1; set by the retry layer.
	Attempt int
	// Unprocessed: the previous attempt never reached an application, so this one is worth waiting a moment for
	// another endpoint; set by the retry layer.
	Unprocessed bool

	// Observed is set by the metrics layer once it counted the request; the forwarder counts the ones that
	// failed before reaching it (no endpoint could be chosen).
	Observed bool
}
