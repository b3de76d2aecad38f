// Package h2load is S8's protocol side: a tiny gRPC echo service (unary and server streaming, on
// google.protobuf.BytesValue so that no code is generated) that the app serves beside HTTP/1.1 and h2c,
// and the client calls that the load generator paces. It must not pace or time anything itself.
package h2load

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Method names of the echo service.
const (
	UnaryMethod  = "/sinew.bench.Echo/Unary"
	StreamMethod = "/sinew.bench.Echo/Stream"
)

// echoer is the service's handler type (grpc.ServiceDesc checks that the implementation satisfies it).
type echoer interface{}

type echo struct{}

var serviceDesc = grpc.ServiceDesc{
	ServiceName: "sinew.bench.Echo",
	HandlerType: (*echoer)(nil),
	Methods: []grpc.MethodDesc{{MethodName: "Unary", Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
		in := new(wrapperspb.BytesValue)
		if err := dec(in); err != nil {
			return nil, err
		}
		return in, nil
	}}},
	Streams: []grpc.StreamDesc{{StreamName: "Stream", ServerStreams: true, Handler: func(_ any, ss grpc.ServerStream) error {
		// The request's value is n (1-255 messages) followed by the payload each message carries.
		in := new(wrapperspb.BytesValue)
		if err := ss.RecvMsg(in); err != nil {
			return err
		}
		if len(in.Value) == 0 {
			return status.Error(codes.InvalidArgument, "empty request")
		}
		out := &wrapperspb.BytesValue{Value: in.Value[1:]}
		for i := 0; i < int(in.Value[0]); i++ {
			if err := ss.SendMsg(out); err != nil {
				return err
			}
		}
		return nil
	}}},
}

// NewServer returns the gRPC echo server.
func NewServer() *grpc.Server {
	s := grpc.NewServer()
	s.RegisterService(&serviceDesc, echo{})
	return s
}

// Handler routes gRPC requests (HTTP/2, content-type application/grpc) to g and everything else to h.
// Served by an http.Server that speaks unencrypted HTTP/2 too, it gives one port for HTTP/1.1, h2c and gRPC.
func Handler(g *grpc.Server, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			g.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// H2CProtocols is HTTP/1.1 plus unencrypted HTTP/2 (prior knowledge), for servers.
func H2CProtocols() *http.Protocols {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	return p
}

// Client makes S8's calls to one address (the first hop), with host as the :authority.
type Client struct {
	h2   *http.Client
	url  string
	host string
	auth string
	conn *grpc.ClientConn
	req  *wrapperspb.BytesValue
	sreq *wrapperspb.BytesValue
	body []byte
}

// NewClient prepares an h2c client (one connection, multiplexed) and a gRPC connection. size is the
// payload of each unary message and of each streamed message; stream is messages per server stream
// (0 means 1). authorization, when set, goes with every request and call as its Authorization header.
func NewClient(addr, host, authorization string, size, stream int) (*Client, error) {
	if host == "" {
		host = addr
	}
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: p, DisableCompression: true, TLSClientConfig: &tls.Config{}}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithAuthority(host), grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", a)
		})}
	if authorization != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(authorizationHeader(authorization)))
	}
	conn, err := grpc.NewClient("passthrough:///"+addr, opts...)
	if err != nil {
		return nil, err
	}
	if stream == 0 {
		stream = 1
	}
	if stream < 1 || stream > 255 {
		return nil, fmt.Errorf("stream of %d messages: want 1-255", stream)
	}
	payload := bytes.Repeat([]byte{'x'}, size)
	return &Client{
		h2: &http.Client{Transport: tr}, url: "http://" + addr + "/", host: host, auth: authorization, conn: conn,
		req:  &wrapperspb.BytesValue{Value: payload},
		sreq: &wrapperspb.BytesValue{Value: append([]byte{byte(stream)}, payload...)},
		body: payload,
	}, nil
}

// authorizationHeader sends a fixed Authorization header with every call, over plaintext too (the load goes to
// a local sidecar).
type authorizationHeader string

func (a authorizationHeader) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": string(a)}, nil
}

func (authorizationHeader) RequireTransportSecurity() bool { return false }

// Close releases the connections.
func (c *Client) Close() {
	c.h2.CloseIdleConnections()
	_ = c.conn.Close()
}

// Status is one h2c GET's status.
func (c *Client) Status(ctx context.Context) (int, error) {
	status, _, err := c.get(ctx)
	return status, err
}

// Get is one h2c GET of the app's default response; ok when 200 over HTTP/2.
func (c *Client) Get(ctx context.Context) (bool, error) {
	status, major, err := c.get(ctx)
	return status == http.StatusOK && major == 2, err
}

// get is one h2c GET, read to the end: its status and protocol's major version.
func (c *Client) get(ctx context.Context) (status, major int, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return 0, 0, err
	}
	req.Host = c.host
	if c.auth != "" {
		req.Header.Set("Authorization", c.auth)
	}
	resp, err := c.h2.Do(req)
	if err != nil {
		return 0, 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.ProtoMajor, err
}

// Unary is one unary echo; ok when the payload comes back unchanged.
func (c *Client) Unary(ctx context.Context) (bool, error) {
	out := new(wrapperspb.BytesValue)
	if err := c.conn.Invoke(ctx, UnaryMethod, c.req, out); err != nil {
		return grpcOutcome(err)
	}
	return bytes.Equal(out.Value, c.body), nil
}

// Stream is one server stream; ok when every message arrives unchanged and the status is OK.
func (c *Client) Stream(ctx context.Context) (bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := c.conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, StreamMethod)
	if err != nil {
		return grpcOutcome(err)
	}
	if err := s.SendMsg(c.sreq); err != nil {
		return grpcOutcome(err)
	}
	if err := s.CloseSend(); err != nil {
		return grpcOutcome(err)
	}
	want, got := int(c.sreq.Value[0]), 0
	for {
		m := new(wrapperspb.BytesValue)
		err := s.RecvMsg(m)
		if err == io.EOF {
			return got == want, nil
		}
		if err != nil {
			return grpcOutcome(err)
		}
		if !bytes.Equal(m.Value, c.body) {
			return false, nil
		}
		got++
	}
}

// grpcOutcome maps a gRPC error to the load generator's two kinds: a status from the far end is a
// failed answer (like a non-2xx), Unavailable is a transport failure.
func grpcOutcome(err error) (bool, error) {
	if status.Code(err) == codes.Unavailable {
		return false, err
	}
	return false, nil
}
