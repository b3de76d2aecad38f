package forward

import (
	"context"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sinewmesh/sinew/proxy/internal/sock"
)

// Parking holds an idle keep-alive HTTP/1 connection as a bare socket: no goroutine, no net.Conn, no context, no
// buffers. A connection that idled past parkAfter detaches its socket (sock.Conn.Detach: a duplicate descriptor,
// the net.Conn closed, the client sees nothing), hands the descriptor to the parker and ends its goroutine. The
// parker waits for the descriptors in an epoll set of its own, which Go's poller watches as one file; when one
// becomes readable it is removed from the set and the connection resumes on a fresh goroutine, its socket attached
// again. A parked connection costs its h1conn and wrappers and an epoll entry, which is what lets a sidecar hold
// thousands of idle client connections in about a kilobyte each (issue #11, S4).
//
// Ownership: whoever removes a connection from the parker's table, under its lock, owns its descriptor: the loop
// (readable: resume), the idle timer (close), or a drain (close). Only the owner touches the connection.

// parkedConn is what a connection keeps while parked; its fields belong to the parker's lock.
type parkedConn struct {
	sc         *sock.Conn // the connection's socket, detached while parked
	fd         int        // the descriptor the parker waits on
	gen        uint32     // tells this parking from an earlier one of the same descriptor number
	until      time.Time  // when the idle timeout closes it
	prev, next *h1conn    // the parker's list, oldest first
}

type parker struct {
	mu    sync.Mutex
	epfd  int
	gen   uint32
	byFD  map[int]*h1conn
	head  *h1conn
	tail  *h1conn
	timer *time.Timer // the idle timeout of the oldest
	trim  *trimmer
}

// parkedIdle is how long a parked connection may stay idle: idleTimeout, shorter in tests. It is the same for every
// connection, so the parker's list in parking order is also in order of expiry.
var parkedIdle atomic.Int64

func init() { parkedIdle.Store(int64(idleTimeout)) }

var (
	parkerOnce sync.Once
	theParker  *parker
	parkerErr  error
)

// noCancel stands in for a parked connection's context cancel: it has no context until it resumes.
var noCancel context.CancelFunc = func() {}

// getParker returns the process's parker, starting it on first use.
func getParker() (*parker, error) {
	parkerOnce.Do(func() {
		theParker, parkerErr = newParker()
	})
	return theParker, parkerErr
}

func newParker() (*parker, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd) //nolint:errcheck // nothing to do about it
		return nil, err
	}
	// Go's poller watches the epoll set as a file: readable when one of its sockets is.
	f := os.NewFile(uintptr(epfd), "sinew-parked")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	p := &parker{epfd: epfd, byFD: map[int]*h1conn{}, trim: newTrimmer()}
	p.timer = time.AfterFunc(time.Hour, p.expire)
	p.timer.Stop()
	go p.loop(f, rc)
	return p, nil
}

// loop resumes the connections whose sockets become readable (or hang up).
func (p *parker) loop(f *os.File, rc syscall.RawConn) {
	defer f.Close()
	events := make([]unix.EpollEvent, 256)
	for {
		var n int
		err := rc.Read(func(uintptr) bool {
			for {
				var werr error
				n, werr = unix.EpollWait(p.epfd, events, 0)
				if errors.Is(werr, unix.EINTR) {
					continue
				}
				return n > 0 // none ready: wait for the poller
			}
		})
		if err != nil {
			return // the file was closed: never, in a running proxy
		}
		for i := range events[:n] {
			ev := &events[i]
			if hc := p.take(int(ev.Fd), uint32(ev.Pad)); hc != nil {
				go hc.resume()
			}
		}
	}
}

// park hands hc's socket to the parker. It reports false when hc cannot be parked, with nothing changed; after
// a true the connection belongs to the parker (or was closed), and the calling goroutine lets it go.
func (p *parker) park(hc *h1conn, sc *sock.Conn) bool {
	if !hc.state.CompareAndSwap(connIdle, connParked) {
		return false // a drain closes it
	}
	fd, err := sc.Detach()
	if err != nil { // out of descriptors: wait the usual way, unless a drain began
		if hc.state.CompareAndSwap(connParked, connIdle) {
			return false
		}
		hc.end()
		return true
	}
	hc.watch.drop()
	hc.cancel()
	hc.ctx, hc.cancel = nil, noCancel
	hc.srv.parked.Add(1)

	p.mu.Lock()
	p.gen++
	hc.pk = parkedConn{sc: sc, fd: fd, gen: p.gen, until: time.Now().Add(time.Duration(parkedIdle.Load()))}
	if hc.state.Load() != connParked || hc.srv.draining.Load() {
		p.mu.Unlock()
		hc.closeParked() // a drain began while it parked
		return true
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: int32(fd), Pad: int32(p.gen)}
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		p.mu.Unlock()
		hc.srv.log.Debug("parking an idle connection failed", "remote", hc.remote, "err", err)
		if hc.unpark() {
			go hc.wait() // wait the usual way
		}
		return true
	}
	hc.pk.prev = p.tail
	p.byFD[fd] = hc
	if p.tail != nil {
		p.tail.pk.next = hc
	} else {
		p.head = hc
		p.timer.Reset(time.Until(hc.pk.until))
	}
	p.tail = hc
	p.mu.Unlock()
	p.trim.parked()
	return true
}

// take removes the connection parked on fd (of parking gen) from the set, and returns it to its new owner; nil
// when it was taken already.
func (p *parker) take(fd int, gen uint32) *h1conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	hc := p.byFD[fd]
	if hc == nil || hc.pk.gen != gen {
		return nil
	}
	p.remove(hc)
	return hc
}

// remove drops hc from the set and the list; the caller holds the lock. hc.pk.fd stays open for the new owner.
func (p *parker) remove(hc *h1conn) {
	unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, hc.pk.fd, nil) //nolint:errcheck // gone with the descriptor anyway
	delete(p.byFD, hc.pk.fd)
	if hc.pk.prev != nil {
		hc.pk.prev.pk.next = hc.pk.next
	} else {
		p.head = hc.pk.next
	}
	if hc.pk.next != nil {
		hc.pk.next.pk.prev = hc.pk.prev
	} else {
		p.tail = hc.pk.prev
	}
	hc.pk.prev, hc.pk.next = nil, nil
}

// evict closes hc if it is in the parker's set (a drain). One on its way in or out sees the drain itself.
func (p *parker) evict(hc *h1conn) {
	p.mu.Lock()
	parked := p.byFD[hc.pk.fd] == hc
	if parked {
		p.remove(hc)
	}
	p.mu.Unlock()
	if parked {
		hc.closeParked()
	}
}

// expire closes the connections parked longer than the idle timeout, and sets the timer for the next one.
func (p *parker) expire() {
	now := time.Now()
	var due []*h1conn
	p.mu.Lock()
	for p.head != nil && !p.head.pk.until.After(now) {
		hc := p.head
		p.remove(hc)
		due = append(due, hc)
	}
	if p.head != nil {
		p.timer.Reset(p.head.pk.until.Sub(now))
	}
	p.mu.Unlock()
	for _, hc := range due {
		hc.closeParked()
	}
}

// closeParked ends a parked connection that its owner took from the parker.
func (hc *h1conn) closeParked() {
	unix.Close(hc.pk.fd) //nolint:errcheck // the connection is done with either way
	hc.srv.parked.Add(-1)
	hc.end()
}

// unpark attaches the parked socket to hc again. It reports false, with the connection ended, when that fails or
// a drain began.
func (hc *h1conn) unpark() bool {
	hc.srv.parked.Add(-1)
	if err := hc.pk.sc.Attach(hc.pk.fd); err != nil {
		hc.srv.log.Debug("resuming an idle connection failed", "remote", hc.remote, "err", err)
		hc.end()
		return false
	}
	hc.newContext()
	if !hc.state.CompareAndSwap(connParked, connIdle) {
		hc.end() // a drain began
		return false
	}
	return true
}

// resume serves a parked connection whose socket became readable, on the calling (fresh) goroutine.
func (hc *h1conn) resume() {
	if hc.unpark() {
		hc.serve(false)
	}
}

// park parks hc if it can (see parker); it reports false when hc must wait for its next request itself.
func (hc *h1conn) park() bool {
	sc, ok := socketOf(hc.c)
	if !ok {
		return false
	}
	p, err := getParker()
	if err != nil {
		return false
	}
	return p.park(hc, sc)
}
