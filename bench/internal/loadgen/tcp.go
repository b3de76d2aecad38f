package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Opaque TCP (S6) against an echo server: a 1-byte ping-pong for latency, and a bulk stream for
// throughput. Both are closed loop by nature (one byte in flight; a window of bytes in flight).

// PingPong sends one byte and waits for it to come back, back to back on one connection for d, and
// returns the round-trip times in µs. Dial time is not measured.
func PingPong(ctx context.Context, addr string, d time.Duration) (*hdrhistogram.Histogram, error) {
	h := NewHistogram()
	nc, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return h, err
	}
	defer nc.Close()
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	end := time.Now().Add(d)
	_ = nc.SetDeadline(end.Add(10 * time.Second))
	var b [1]byte
	for i := 0; time.Now().Before(end) && ctx.Err() == nil; i++ {
		b[0] = byte(i)
		t0 := time.Now()
		if _, err := nc.Write(b[:]); err != nil {
			return h, err
		}
		if _, err := io.ReadFull(nc, b[:]); err != nil {
			return h, err
		}
		if b[0] != byte(i) {
			return h, fmt.Errorf("echo returned byte %d, want %d", b[0], byte(i))
		}
		_ = h.RecordValue(clampUS(time.Since(t0)))
	}
	return h, nil
}

// Throughput writes for d on one connection while reading the echo back, then waits until every byte
// sent has returned. It returns the bytes echoed and the time from the first write to the last byte read.
// Half-close is not used: not every proxy carries it through TLS.
func Throughput(ctx context.Context, addr string, d time.Duration) (int64, time.Duration, error) {
	nc, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, 0, err
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(d + 30*time.Second))
	// The reader counts bytes; whichever of it and the writer sees the count reach the total sent (known
	// only when writing stops) closes done, so neither can miss the other's last update.
	var got, target atomic.Int64
	target.Store(-1)
	done := make(chan struct{})
	var once sync.Once
	finish := func() { once.Do(func() { close(done) }) }
	readErr := make(chan error, 1)
	var last atomic.Int64 // unix ns of the last byte read
	start := time.Now()
	go func() {
		rbuf := make([]byte, 256<<10)
		for {
			k, err := nc.Read(rbuf)
			if k > 0 {
				last.Store(time.Now().UnixNano())
				if n := got.Add(int64(k)); target.Load() >= 0 && n >= target.Load() {
					finish()
					return
				}
			}
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = fmt.Errorf("connection closed after %d bytes echoed", got.Load())
				}
				readErr <- err
				finish()
				return
			}
		}
	}()
	buf := make([]byte, 64<<10)
	for i := range buf {
		buf[i] = byte(i)
	}
	var sent int64
	for time.Since(start) < d && ctx.Err() == nil {
		k, err := nc.Write(buf)
		sent += int64(k)
		if err != nil {
			return got.Load(), time.Since(start), err
		}
	}
	target.Store(sent)
	if got.Load() >= sent {
		finish()
	}
	<-done
	select {
	case err := <-readErr:
		return got.Load(), time.Since(start), err
	default:
	}
	return got.Load(), time.Duration(last.Load() - start.UnixNano()), nil
}

// RunEcho serves a TCP echo on ln until ctx ends.
func RunEcho(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		go func() {
			defer c.Close()
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetNoDelay(true)
			}
			// A plain read/write loop: io.Copy(c, c) would splice a socket into itself.
			buf := make([]byte, 64<<10)
			for {
				n, err := c.Read(buf)
				if n > 0 {
					if _, werr := c.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
}
