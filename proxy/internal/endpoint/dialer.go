// Package endpoint holds the proxy's connections to where requests go: the mesh dialer (mTLS to a peer proxy plus
// the transport header), one Endpoint per balanced address with its connection pools, a Pool per resolved
// authority that follows discovery, and the plain transports to applications and unmeshed destinations. It
// decides nothing about requests: the layers pick; this package connects.
package endpoint

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/sinewmesh/sinew/internal/meshtls"
	"github.com/sinewmesh/sinew/proxy/internal/sock"
	"github.com/sinewmesh/sinew/proxy/internal/transport"
)

// CertSource supplies the workload certificate.
type CertSource interface {
	Certificate() *tls.Certificate
}

// ErrNoCertificate: the proxy has no workload certificate yet, so it cannot speak mTLS.
var ErrNoCertificate = errors.New("no workload certificate yet")

// DialError is a failure to connect: nothing of the request was sent, so it is always safe to try another
// endpoint.
type DialError struct {
	Addr string
	Err  error
}

func (e *DialError) Error() string { return fmt.Sprintf("connecting to %s: %v", e.Addr, e.Err) }
func (e *DialError) Unwrap() error { return e.Err }

// IsDialError reports whether err is a failure to connect.
func IsDialError(err error) bool {
	var de *DialError
	return errors.As(err, &de)
}

// Dialer opens connections: mTLS to peer proxies, plain TCP to everything else.
type Dialer struct {
	Certs   CertSource
	Anchors *x509.CertPool
	Timeout time.Duration
	net     net.Dialer
}

// NewDialer returns a dialer whose connects time out after timeout.
func NewDialer(certs CertSource, anchors *x509.CertPool, timeout time.Duration) *Dialer {
	return &Dialer{Certs: certs, Anchors: anchors, Timeout: timeout, net: net.Dialer{KeepAlive: 30 * time.Second}}
}

// Mesh connects to a peer proxy at addr that must prove identity id, and announces hdr.
func (d *Dialer) Mesh(ctx context.Context, addr, id string, hdr transport.Header) (net.Conn, error) {
	if d.Certs == nil || d.Certs.Certificate() == nil {
		return nil, ErrNoCertificate
	}
	ctx, cancel := context.WithTimeout(ctx, d.Timeout)
	defer cancel()
	raw, err := d.net.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, &DialError{addr, err}
	}
	raw = sock.Wrap(raw)
	tc := tls.Client(raw, meshtls.ClientConfig(d.Anchors, id, d.Certs.Certificate, meshtls.ALPN))
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, &DialError{addr, fmt.Errorf("mesh TLS (%s): %w", id, err)}
	}
	if p := tc.ConnectionState().NegotiatedProtocol; p != meshtls.ALPN {
		_ = tc.Close() // the dial failed; that error is the one to report
		return nil, &DialError{addr, fmt.Errorf("peer negotiated %q, not a sinew proxy", p)}
	}
	if _, err := tc.Write(hdr.Append(make([]byte, 0, transport.Size))); err != nil {
		_ = tc.Close() // the write's error is the one to report
		return nil, &DialError{addr, err}
	}
	return tc, nil
}

// Plain connects to addr over TCP.
func (d *Dialer) Plain(ctx context.Context, addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, d.Timeout)
	defer cancel()
	c, err := d.net.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, &DialError{addr, err}
	}
	return sock.Wrap(c), nil
}
