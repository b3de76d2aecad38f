package forward

import (
	"errors"
	"net"
	"syscall"

	"github.com/sinewmesh/sinew/proxy/internal/detect"
	"github.com/sinewmesh/sinew/proxy/internal/sock"
)

// socketOf finds the socket under an accepted connection's wrappers, when none of them holds bytes already read:
// then the socket being readable is the connection having its next bytes. TLS connections have none (they
// buffer records), so they are never parked.
// Only a sock.Conn can park (it can detach its socket); the proxy wraps every connection it accepts in one.
func socketOf(c net.Conn) (*sock.Conn, bool) {
	for {
		switch w := c.(type) {
		case *trackedConn:
			c = w.Conn
		case *countingConn:
			c = w.Conn
		case *detect.Conn:
			if len(w.Buffered()) > 0 {
				return nil, false
			}
			c = w.Conn
		case *sock.Conn:
			return w, true
		default:
			return nil, false
		}
	}
}

// waitReadable blocks until the socket has bytes to read, or its peer closed it, without reading anything, so
// that a connection waiting for its next request holds no read buffer. It honours the connection's read deadline
// (os.ErrDeadlineExceeded) and returns an error once the connection is closed.
func waitReadable(rc syscall.RawConn) error {
	var (
		b    [1]byte
		serr error
	)
	err := rc.Read(func(fd uintptr) bool {
		for {
			_, _, e := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			switch {
			case errors.Is(e, syscall.EINTR):
				continue
			case errors.Is(e, syscall.EAGAIN):
				return false // nothing yet: wait for the poller
			}
			serr = e // nil for bytes, or for the peer's FIN (a read will see EOF)
			return true
		}
	})
	if err != nil {
		return err
	}
	return serr
}
