package detect

import (
	"errors"
	"io"
	"net"
	"os"
	"time"
)

// Conn is a net.Conn whose first bytes were read for detection and are replayed to the next reader.
type Conn struct {
	net.Conn
	buf []byte
}

// Read returns the peeked bytes first, then reads from the connection.
func (c *Conn) Read(p []byte) (int, error) {
	if len(c.buf) > 0 {
		n := copy(p, c.buf)
		c.buf = c.buf[n:]
		if len(c.buf) == 0 {
			c.buf = nil // an idle connection should not keep the detection buffer
		}
		return n, nil
	}
	return c.Conn.Read(p)
}

// CloseWrite half-closes the underlying connection when it supports it.
func (c *Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// Buffered returns the peeked bytes not yet read.
func (c *Conn) Buffered() []byte { return c.buf }

// ErrEmpty means the peer closed the connection before sending anything.
var ErrEmpty = errors.New("connection closed before any bytes were sent")

// Peek reads from conn until Classify decides, the deadline passes (result: Opaque), or conn fails. The returned
// Conn replays everything read. The read deadline is cleared before returning.
func Peek(conn net.Conn, timeout time.Duration) (*Conn, Result, error) {
	buf := make([]byte, 0, 512)
	deadline := time.Now().Add(timeout)
	if err := conn.SetReadDeadline(deadline); err != nil {
		return nil, Result{}, err
	}
	defer conn.SetReadDeadline(time.Time{}) //nolint:errcheck // best effort: conn may be closed
	for {
		if len(buf) == cap(buf) {
			nb := make([]byte, len(buf), min(2*cap(buf), MaxPeek))
			copy(nb, buf)
			buf = nb
		}
		n, err := conn.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if n > 0 {
			res, cerr := Classify(buf)
			if cerr == nil {
				return &Conn{Conn: conn, buf: buf}, res, nil
			}
			if len(buf) >= MaxPeek {
				return &Conn{Conn: conn, buf: buf}, Result{Protocol: Opaque}, nil
			}
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				// Timed out waiting for more bytes: a server-speaks-first protocol or a quiet client.
				return &Conn{Conn: conn, buf: buf}, Result{Protocol: Opaque}, nil
			}
			if errors.Is(err, io.EOF) {
				if len(buf) == 0 {
					return nil, Result{}, ErrEmpty
				}
				return &Conn{Conn: conn, buf: buf}, Result{Protocol: Opaque}, nil
			}
			return nil, Result{}, err
		}
	}
}
