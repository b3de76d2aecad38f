package sock

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
)

// pair returns a wrapped client connection and the server's end, plain.
func pair(t testing.TB) (*Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	srv, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	sc, ok := Wrap(c).(*Conn)
	if !ok {
		t.Fatalf("Wrap(%T) did not wrap", c)
	}
	t.Cleanup(func() { sc.Close(); srv.Close() })
	return sc, srv
}

// Bytes go both ways unchanged, including writes far larger than the socket buffers (the writer waits for the
// reader), and the end of the stream reads as io.EOF.
func TestConnCarriesBytesBothWays(t *testing.T) {
	c, srv := pair(t)
	big := make([]byte, 8<<20)
	rand.Read(big) //nolint:errcheck // never fails
	var got []byte
	var wg sync.WaitGroup
	wg.Go(func() {
		var err error
		got, err = io.ReadAll(srv)
		if err != nil {
			t.Error(err)
		}
	})
	if n, err := c.Write(big); n != len(big) || err != nil {
		t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(big))
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if !bytes.Equal(got, big) {
		t.Fatalf("the server read %d bytes, not the %d written", len(got), len(big))
	}

	go func() {
		srv.Write([]byte("hello")) //nolint:errcheck
		srv.Close()
	}()
	b, err := io.ReadAll(c)
	if err != nil || string(b) != "hello" {
		t.Fatalf("ReadAll = %q, %v", b, err)
	}
	if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Errorf("after the peer closed: %d, %v; want 0, EOF", n, err)
	}
}

// Deadlines and Close work as on a TCPConn: a read past its deadline fails with os.ErrDeadlineExceeded, a read
// blocked when the connection closes fails with net.ErrClosed, a reset shows as ECONNRESET.
func TestConnDeadlinesCloseAndErrors(t *testing.T) {
	c, srv := pair(t)
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond)) //nolint:errcheck
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v", err)
	}
	c.SetReadDeadline(time.Time{}) //nolint:errcheck

	done := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		done <- err
	}()
	c.Close() // whether the read has blocked yet or not, it fails the same way
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read on a closed connection: %v", err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write on a closed connection: %v", err)
	}

	c2, srv2 := pair(t)
	srv2.(*net.TCPConn).SetLinger(0) //nolint:errcheck // close with RST
	srv2.Close()
	_, err := c2.Read(make([]byte, 1))
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read after a reset: %v", err)
	}
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "read" {
		t.Errorf("error %#v, want a *net.OpError for read, as a TCPConn returns", err)
	}
	_ = srv
}

// Reading and writing the same connection at once, from two goroutines each, is safe.
func TestConnConcurrentReadsAndWrites(t *testing.T) {
	c, srv := pair(t)
	go io.Copy(srv, srv) //nolint:errcheck // echo
	const each = 1 << 20
	var wg sync.WaitGroup
	var read int64
	var mu sync.Mutex
	for range 2 {
		wg.Go(func() {
			buf := make([]byte, 4096)
			for i := 0; i < each; i += len(buf) {
				if _, err := c.Write(buf); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second)) //nolint:errcheck // a failed test ends
	var rg sync.WaitGroup
	for range 2 {
		rg.Go(func() {
			buf := make([]byte, 3000)
			for {
				n, err := c.Read(buf)
				mu.Lock()
				read += int64(n)
				total := read
				mu.Unlock()
				if total >= 2*each {
					c.SetReadDeadline(time.Now()) //nolint:errcheck // wakes the other reader
				}
				if err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	rg.Wait()
	if read != 2*each {
		t.Errorf("read %d bytes back, want %d", read, 2*each)
	}
}

// The point of the package: reads and writes allocate nothing.
func TestConnReadWriteAllocateNothing(t *testing.T) {
	c, srv := pair(t)
	buf := make([]byte, 64)
	back := make([]byte, 64)
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := c.Write(buf); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(srv, back); err != nil {
			t.Fatal(err)
		}
		if _, err := srv.Write(back); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 0 {
		t.Errorf("%v allocations per round trip, want 0", allocs)
	}
	runtime.KeepAlive(c)
}

// Detach hands the socket over without closing it (the peer sees nothing); a detached Conn refuses calls, and
// Attach makes the same socket its own again, as a parked connection does when it resumes.
func TestConnDetachAndAttach(t *testing.T) {
	c, srv := pair(t)
	fd, err := c.Detach()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("a write while detached: %v, want EINVAL", err)
	}
	if err := c.Close(); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("Close while detached: %v, want EINVAL (the socket is the descriptor's)", err)
	}
	srv.SetReadDeadline(time.Now().Add(50 * time.Millisecond)) //nolint:errcheck
	if _, err := srv.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the peer of a detached socket read %v, want nothing (no FIN)", err)
	}
	srv.SetReadDeadline(time.Time{}) //nolint:errcheck
	if _, err := srv.Write([]byte("sent while detached")); err != nil {
		t.Fatal(err)
	}

	if err := c.Attach(fd); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, len("sent while detached"))
	if _, err := io.ReadFull(c, b); err != nil || string(b) != "sent while detached" {
		t.Fatalf("after Attach: %q, %v", b, err)
	}
	if _, err := c.Write([]byte("y")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(srv, b[:1]); err != nil || b[0] != 'y' {
		t.Fatalf("the peer read %q, %v after Attach", b[:1], err)
	}
	if err := c.Attach(-1); err == nil {
		t.Error("Attach of a bad descriptor should fail")
	}
}

// A 64-byte ping-pong over loopback, through a wrapped connection and through the plain TCPConn it wraps: what
// the raw calls cost or save per read and write (the runtime's monitor thread is not in this picture; the
// benchmark keeps the process busy).
func BenchmarkPingPong(b *testing.B) {
	for _, name := range []string{"TCPConn", "sock.Conn"} {
		b.Run(name, func(b *testing.B) {
			sc, srv := pair(b)
			var c net.Conn = sc
			if name == "TCPConn" {
				c = sc.TCPConn
			}
			go io.Copy(srv, srv) //nolint:errcheck // echo
			buf := make([]byte, 64)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Write(buf); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
