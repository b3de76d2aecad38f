// Package sock gives the proxy's TCP connections reads and writes that do not enter the Go scheduler's system
// call state.
//
// A net.TCPConn reads and writes a non-blocking socket through syscall.Read/Write, which tell the runtime they may
// block: the P goes into the syscall state, and the runtime's monitor thread (sysmon) wakes from its deep sleep
// on the first one after an idle spell and then polls every 20 µs, retaking Ps from system calls it catches twice.
// On a sidecar that makes a few system calls per request and idles between requests, that monitor was the largest
// single item of the CPU profile: 27 % of the proxies' samples at 1k requests per second (S2), 14 % at
// saturation (S3), in wakeups, sleeps and lock handoffs (issue #11).
//
// A non-blocking socket read or write never blocks, so Conn makes them raw system calls inside the socket's
// syscall.RawConn: the runtime's poller still waits for readiness, deadlines and Close work as on the TCPConn,
// and the monitor sleeps.
package sock

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// Conn is a TCP connection whose Read and Write are raw system calls; everything else is the TCPConn's.
type Conn struct {
	*net.TCPConn
	rc syscall.RawConn
	r  op
	w  op
}

// op is one direction's call in progress: its buffer, what it did, and the callback the RawConn runs, made once
// per connection so that calls allocate nothing.
type op struct {
	mu  sync.Mutex
	buf []byte
	n   int
	err syscall.Errno
	fn  func(fd uintptr) bool
}

// Wrap returns c with raw reads and writes when it is a TCP connection, else c.
func Wrap(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	sc := &Conn{TCPConn: tc, rc: rc}
	sc.r.fn = sc.read
	sc.w.fn = sc.write
	return sc
}

// Reset makes the connection use its TCPConn's current socket: after the TCPConn was given another one (an idle
// connection parked and resumed), or, with a zero TCPConn, none (the old one is let go).
func (c *Conn) Reset() {
	c.rc = nil
	if rc, err := c.SyscallConn(); err == nil {
		c.rc = rc
	}
}

func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, errno, err := c.call(&c.r, p, false)
	switch {
	case err != nil:
		return n, err
	case errno != 0:
		return n, c.opError("read", errno)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

func (c *Conn) read(fd uintptr) bool {
	b := c.r.buf
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b))) //nolint:gosec // the buffer's address for read(2), within its length
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // the poller waits for readability, then calls again
		case 0:
			c.r.n = int(n)
		default:
			c.r.err = e
		}
		return true
	}
}

func (c *Conn) Write(p []byte) (int, error) {
	n, errno, err := c.call(&c.w, p, true)
	switch {
	case err != nil:
		return n, err
	case errno != 0:
		return n, c.opError("write", errno)
	}
	return n, nil
}

// call runs one read or write of p through the socket's RawConn: the poller waits while the socket is not ready.
func (c *Conn) call(o *op, p []byte, write bool) (int, syscall.Errno, error) {
	if c.rc == nil {
		return 0, syscall.EINVAL, nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf, o.n, o.err = p, 0, 0
	var err error
	if write {
		err = c.rc.Write(o.fn)
	} else {
		err = c.rc.Read(o.fn)
	}
	n, errno := o.n, o.err
	o.buf = nil
	return n, errno, err
}

// write writes all of the buffer, waiting for writability when the socket's buffer is full.
func (c *Conn) write(fd uintptr) bool {
	for c.w.n < len(c.w.buf) {
		b := c.w.buf[c.w.n:]
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b))) //nolint:gosec // the buffer's address for write(2), within its length
		switch e {
		case 0:
			c.w.n += int(n)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			c.w.err = e
			return true
		}
	}
	return true
}

// opError wraps errno as the TCPConn's own Read and Write do.
func (c *Conn) opError(op string, errno syscall.Errno) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError(op, errno)}
}
