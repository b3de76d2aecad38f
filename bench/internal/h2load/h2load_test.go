package h2load

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"
)

// One h2c port serves plain HTTP/2 and both gRPC call shapes, and each call checks what comes back.
func TestClientAgainstHandler(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := NewServer()
	srv := &http.Server{Handler: Handler(g, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("hello"))
	})), Protocols: H2CProtocols(), ReadHeaderTimeout: time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	c, err := NewClient(ln.Addr().String(), "", "", 1024, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for name, call := range map[string]func(context.Context) (bool, error){"get": c.Get, "unary": c.Unary, "stream": c.Stream} {
		ok, err := call(ctx)
		if !ok || err != nil {
			t.Errorf("%s: ok=%v err=%v", name, ok, err)
		}
	}
	if _, err := NewClient(ln.Addr().String(), "", "", 1, 256); err == nil {
		t.Error("a stream of 256 messages was accepted; the count travels in one byte")
	}
}
