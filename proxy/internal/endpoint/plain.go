package endpoint

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// Plain holds the shared transports to applications and to destinations outside the mesh. Each speaks the
// protocol the client spoke; the proxy never negotiates anything on its own.
type Plain struct {
	h1     *http.Transport // Upgrade requests
	h2c    *http.Transport
	dialer *Dialer
	byAddr sync.Map // addr -> *h1Client, for every other HTTP/1 request
}

// Idle connection limits of the plain HTTP/1 pools: an application on this host, or a destination outside the
// mesh. Below the 90 s idle timeout of most servers (net/http's default is no limit; nginx's 75 s).
const (
	plainMaxIdle     = 256
	plainIdleTimeout = 60 * time.Second
)

// NewPlain returns transports that connect with d.
func NewPlain(d *Dialer) *Plain {
	dial := func(ctx context.Context, _, addr string) (net.Conn, error) { return d.Plain(ctx, addr) }
	h2c := new(http.Protocols)
	h2c.SetUnencryptedHTTP2(true)
	return &Plain{
		dialer: d,
		h1: &http.Transport{
			DialContext:         dial,
			MaxIdleConns:        4096,
			MaxIdleConnsPerHost: 1024,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
		h2c: &http.Transport{
			DialContext:        dial,
			Protocols:          h2c,
			DisableCompression: true,
			IdleConnTimeout:    90 * time.Second,
			HTTP2:              &http.HTTP2Config{SendPingTimeout: 30 * time.Second, PingTimeout: 10 * time.Second},
		},
	}
}

// RoundTrip sends r to r.URL.Host in the protocol the client spoke: HTTP/2 (prior knowledge) when http2 is true,
// HTTP/1.0 when origProto says so (no Host is invented when noHost), HTTP/1.1 otherwise; upgrade requests go
// through net/http's Transport, which hands back the upgraded connection.
func (p *Plain) RoundTrip(r *http.Request, http2, upgrade bool, origProto string, noHost bool) (*http.Response, error) {
	switch {
	case http2:
		return p.h2c.RoundTrip(r)
	case origProto == "HTTP/1.0":
		return p.roundTrip10(r, noHost)
	case upgrade:
		return p.h1.RoundTrip(r)
	}
	return p.client(r.URL.Host).RoundTrip(r)
}

func (p *Plain) client(addr string) *h1Client {
	if c, ok := p.byAddr.Load(addr); ok {
		return c.(*h1Client)
	}
	c, _ := p.byAddr.LoadOrStore(addr, newH1Client(func(ctx context.Context) (net.Conn, error) {
		return p.dialer.Plain(ctx, addr)
	}, plainMaxIdle, plainIdleTimeout))
	return c.(*h1Client)
}

// CloseIdle closes idle connections, and forgets the addresses that had nothing in use.
func (p *Plain) CloseIdle() {
	p.h1.CloseIdleConnections()
	p.h2c.CloseIdleConnections()
	p.byAddr.Range(func(k, v any) bool {
		v.(*h1Client).closeIdle()
		p.byAddr.Delete(k)
		return true
	})
}

// roundTrip10 sends an HTTP/1.0 request on a connection of its own, as HTTP/1.0: net/http's Transport only
// speaks HTTP/1.1 and always sends a Host. The connection is closed when the response body is.
func (p *Plain) roundTrip10(r *http.Request, noHost bool) (*http.Response, error) {
	c, err := p.dialer.Plain(r.Context(), r.URL.Host)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(r.Context(), func() { c.Close() })
	resp, err := exchange10(c, r, noHost)
	if err != nil {
		stop()
		c.Close()
		if r.Context().Err() != nil {
			return nil, r.Context().Err()
		}
		return nil, err
	}
	resp.Body = &connBody{ReadCloser: resp.Body, c: c, stop: stop}
	return resp, nil
}

func exchange10(c net.Conn, r *http.Request, noHost bool) (*http.Response, error) {
	bw := bufio.NewWriterSize(c, 4<<10)
	uri := r.URL.RequestURI()
	if r.Method == http.MethodConnect || r.URL.Opaque != "" {
		uri = r.URL.Opaque
	}
	fmt.Fprintf(bw, "%s %s HTTP/1.0\r\n", r.Method, uri)
	if !noHost && r.Host != "" {
		fmt.Fprintf(bw, "Host: %s\r\n", r.Host)
	}
	h := r.Header
	if r.ContentLength > 0 && h.Get("Content-Length") == "" {
		h = h.Clone()
		h.Set("Content-Length", fmt.Sprint(r.ContentLength))
	}
	if err := h.Write(bw); err != nil {
		return nil, err
	}
	bw.WriteString("\r\n") //nolint:errcheck // reported by Flush
	if r.Body != nil && r.Body != http.NoBody {
		// HTTP/1.0 has no chunked encoding: the body is exactly ContentLength bytes.
		if _, err := io.CopyN(bw, r.Body, r.ContentLength); err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
	}
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	return http.ReadResponse(bufio.NewReader(c), r)
}

// connBody closes its connection with the body.
type connBody struct {
	io.ReadCloser
	c    net.Conn
	stop func() bool
}

func (b *connBody) Close() error {
	err := b.ReadCloser.Close()
	b.stop()
	b.c.Close()
	return err
}
