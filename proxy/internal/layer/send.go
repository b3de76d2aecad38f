package layer

import (
	"net/http"

	"github.com/sinewmesh/sinew/proxy/internal/endpoint"
	"github.com/sinewmesh/sinew/proxy/internal/pipeline"
)

// OrigProtoHeader tells the inbound proxy that an HTTP/1.0 request travelled over the HTTP/1.1 hop between proxies,
// so it is restored for the application: "HTTP/1.0", or "HTTP/1.0; no-host" when the client sent no Host. Only a
// peer proxy may set it.
const OrigProtoHeader = "Sinew-Orig-Proto"

// OrigProto is the header value for req.
func OrigProto(req *pipeline.Request) string {
	switch {
	case req.OrigProto == "":
		return ""
	case req.NoHost:
		return req.OrigProto + "; no-host"
	}
	return req.OrigProto
}

// ToEndpoint is the end of the outbound chain: it sends the attempt to the endpoint the balancer chose, over the
// endpoint's connection pool (mTLS to a peer proxy through the mesh dialer, or plain).
func ToEndpoint() pipeline.Handler {
	return pipeline.HandlerFunc(func(req *pipeline.Request) (*http.Response, error) {
		ep, r := req.Endpoint, req.HTTP
		r.URL.Host = ep.Info.Addr
		if ep.Meshed() && req.OrigProto == "HTTP/1.0" {
			r.Header[OrigProtoHeader] = []string{OrigProto(req)}
		} else {
			delete(r.Header, OrigProtoHeader)
		}
		return ep.RoundTrip(r, req.Client.ProtoMajor == 2 && !req.ToHTTP1, req.Upgrade, req.OrigProto, req.NoHost)
	})
}

// ToApp is the end of the inbound chain: it sends the request to the application on this host, in the protocol
// the client spoke (HTTP/1 restored when a peer proxy carried it over HTTP/2).
func ToApp(plain *endpoint.Plain) pipeline.Handler {
	return pipeline.HandlerFunc(func(req *pipeline.Request) (*http.Response, error) {
		r := req.HTTP
		r.URL.Host = req.In.AppAddr
		resp, err := plain.RoundTrip(r, req.OrigProto == "" && req.Client.ProtoMajor == 2, req.Upgrade, req.OrigProto, req.NoHost)
		if err == nil {
			// Only the proxy may say that it failed: the client's proxy retries what carries this header.
			delete(resp.Header, pipeline.ProxyErrorHeader)
		}
		return resp, err
	})
}
