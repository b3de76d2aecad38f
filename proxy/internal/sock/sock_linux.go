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
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
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

// noSocket is a detached Conn's TCPConn: a zero TCPConn answers every call with EINVAL.
var noSocket = new(net.TCPConn)

// Detach hands the socket over as a duplicate descriptor, which the caller then owns, and closes the Conn's own
// (the socket stays open through the duplicate, so the peer sees nothing). Until Attach, every call on the Conn
// fails with EINVAL. Nothing else may use the Conn meanwhile. An idle HTTP/1 connection detaches while it parks,
// so that it holds no net.Conn.
func (c *Conn) Detach() (int, error) {
	if c.rc == nil {
		return -1, syscall.EINVAL
	}
	fd := -1
	var derr error
	if err := c.rc.Control(func(s uintptr) { fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, derr // out of descriptors: nothing changed
	}
	c.Close() //nolint:errcheck // the duplicate keeps the socket open: no FIN
	c.TCPConn, c.rc = noSocket, nil
	return fd, nil
}

// Attach makes fd, a descriptor from Detach, the Conn's socket again. fd is the Conn's either way: closed when
// Attach fails.
func (c *Conn) Attach(fd int) error {
	f := os.NewFile(uintptr(fd), "")
	if f == nil {
		return syscall.EBADF // a negative descriptor
	}
	nc, err := net.FileConn(f) // a net.Conn on a duplicate of fd
	f.Close()
	if err != nil {
		return err
	}
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		nc.Close() //nolint:errcheck // the error that matters is the type
		return fmt.Errorf("descriptor %d is a %T, not a TCP socket", fd, nc)
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		tc.Close() //nolint:errcheck // the error that matters is SyscallConn's
		return err
	}
	c.TCPConn, c.rc = tc, rc
	return nil
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
