package peers

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sinewmesh/sinew/bench/internal/h2load"
	"github.com/sinewmesh/sinew/bench/internal/loadgen"
)

// MaxPayload is the largest response the app serves on PayloadPath.
const MaxPayload = 16 << 20

// PayloadPath is the app path whose response is n bytes (S5); other paths answer the app's default size.
func PayloadPath(n int) string { return "/bytes/" + strconv.Itoa(n) }

// RunApp serves the benchmark's backend: every request's body is read and discarded, and the answer is
// size bytes (n bytes on PayloadPath(n)) with an explicit Content-Length, written in chunks so that the
// app never holds a large response. Over TLS (tcfg set) it speaks HTTP/1.1 only. It returns when ctx ends.
func RunApp(ctx context.Context, addr string, size int, tcfg *tls.Config) error {
	chunk := make([]byte, 64<<10)
	for i := range chunk {
		chunk[i] = 'a' + byte(i%26)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		n := size
		if rest, ok := strings.CutPrefix(r.URL.Path, "/bytes/"); ok {
			v, err := strconv.Atoi(rest)
			if err != nil || v < 0 || v > MaxPayload {
				http.Error(w, "bad size", http.StatusBadRequest)
				return
			}
			n = v
		}
		hd := w.Header()
		hd["Content-Type"] = []string{"application/octet-stream"}
		hd["Content-Length"] = []string{strconv.Itoa(n)}
		for n > 0 {
			k := min(n, len(chunk))
			if _, err := w.Write(chunk[:k]); err != nil {
				return
			}
			n -= k
		}
	})
	if tcfg != nil {
		return serve(ctx, addr, h, tcfg, nil)
	}
	// One port for HTTP/1.1, h2c and gRPC (S8).
	return serve(ctx, addr, h2load.Handler(h2load.NewServer(), h), nil, h2load.H2CProtocols())
}

// AppOptions are the app process's listeners.
type AppOptions struct {
	Addr    string      // HTTP/1.1, h2c and gRPC
	Echo    string      // TCP echo (S6); "" for none
	TLSAddr string      // the app over TLS (S7 with TLS); "" for none
	TLS     *tls.Config // for TLSAddr
	Size    int         // default response bytes
}

// RunAppAndEcho runs the app and the listeners beside it until ctx ends or one of them fails.
func RunAppAndEcho(ctx context.Context, o AppOptions) error {
	var ln net.Listener
	if o.Echo != "" {
		var err error
		if ln, err = net.Listen("tcp", o.Echo); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 3)
	n := 1
	go func() { errc <- RunApp(ctx, o.Addr, o.Size, nil) }()
	if ln != nil {
		n++
		go func() { errc <- loadgen.RunEcho(ctx, ln) }()
	}
	if o.TLSAddr != "" {
		n++
		go func() { errc <- RunApp(ctx, o.TLSAddr, o.Size, o.TLS) }()
	}
	err := <-errc
	cancel()
	for i := 1; i < n; i++ {
		err = errors.Join(err, <-errc)
	}
	return err
}

// RevProxyOptions configures the naive-Go peer (net/http/httputil.ReverseProxy).
type RevProxyOptions struct {
	Listen    string
	Upstream  string      // host:port
	ServerTLS *tls.Config // non-nil: terminate TLS (the server side of a meshed hop)
	ClientTLS *tls.Config // non-nil: originate TLS to Upstream (the client side)
	H2        bool        // HTTP/2 on both sides: h2c in the clear, ALPN h2 over TLS (S8)
}

// RunRevProxy runs one ReverseProxy instance until ctx ends. Keep-alive pools are sized so that the pool,
// not a default of 2 idle connections per host, is never what the benchmark measures.
func RunRevProxy(ctx context.Context, o RevProxyOptions) error {
	scheme := "http"
	if o.ClientTLS != nil {
		scheme = "https"
	}
	target := &url.URL{Scheme: scheme, Host: o.Upstream}
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     o.ClientTLS,
		MaxIdleConns:        0,
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     300 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	var protos *http.Protocols
	if o.H2 {
		tr.Protocols = new(http.Protocols)
		if o.ClientTLS != nil {
			o.ClientTLS.NextProtos = []string{"h2"}
			tr.Protocols.SetHTTP2(true)
		} else {
			tr.Protocols.SetUnencryptedHTTP2(true)
		}
		protos = h2load.H2CProtocols()
		if o.ServerTLS != nil {
			o.ServerTLS.NextProtos = []string{"h2"}
			protos = new(http.Protocols)
			protos.SetHTTP2(true)
		}
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
		},
		Transport:     tr,
		ErrorLog:      log.Default(),
		FlushInterval: -1, // stream each write (gRPC server streams)
	}
	return serve(ctx, o.Listen, rp, o.ServerTLS, protos)
}

func serve(ctx context.Context, addr string, h http.Handler, tcfg *tls.Config, protos *http.Protocols) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, IdleTimeout: 300 * time.Second, ReadHeaderTimeout: 10 * time.Second, Protocols: protos}
	if tcfg != nil {
		srv.TLSConfig = tcfg
		ln = tls.NewListener(ln, tcfg)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		return nil
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	}
}
