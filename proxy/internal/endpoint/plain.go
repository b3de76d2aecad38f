package endpoint

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// Plain holds the shared transports to applications and to destinations outside the mesh. Each speaks the
// protocol the client spoke; the proxy never negotiates anything on its own.
type Plain struct {
	h1     *http.Transport
	h2c    *http.Transport
	dialer *Dialer
}

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
// HTTP/1.0 when origProto says so (no Host is invented when noHost), HTTP/1.1 otherwise.
func (p *Plain) RoundTrip(r *http.Request, http2 bool, origProto string, noHost bool) (*http.Response, error) {
	switch {
	case http2:
		return p.h2c.RoundTrip(r)
	case origProto == "HTTP/1.0":
		return p.roundTrip10(r, noHost)
	}
	return p.h1.RoundTrip(r)
}

// CloseIdle closes idle connections.
func (p *Plain) CloseIdle() {
	p.h1.CloseIdleConnections()
	p.h2c.CloseIdleConnections()
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
