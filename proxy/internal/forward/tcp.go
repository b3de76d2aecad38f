package forward

import (
	"io"
	"net"
	"sync"
	"sync/atomic"

	"github.com/sinewmesh/sinew/proxy/internal/metrics"
)

// countingConn meters the bytes of an accepted connection.
type countingConn struct {
	net.Conn
	m *metrics.Conn
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.m.Read(n)
	}
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.m.Wrote(n)
	}
	return n, err
}

func (c *countingConn) CloseWrite() error { return closeWrite(c.Conn) }

func closeWrite(c net.Conn) error {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Close()
}

// splice copies both ways until both directions end, passing half-closes through, then closes both. It
// reports whether either direction failed with something other than a normal close.
func splice(a, b net.Conn) (failed bool) {
	var wg sync.WaitGroup
	var bad atomic.Bool
	pipe := func(dst, src net.Conn) {
		defer wg.Done()
		bp := bufPool.Get().(*[]byte)
		_, err := io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, *bp)
		bufPool.Put(bp)
		if !isClosedConnErr(err) {
			bad.Store(true)
			// The other direction cannot finish meaningfully either.
			a.Close()
			b.Close()
			return
		}
		closeWrite(dst) //nolint:errcheck // peer may be gone
	}
	wg.Add(2)
	go pipe(a, b)
	go pipe(b, a)
	wg.Wait()
	a.Close()
	b.Close()
	return bad.Load()
}
