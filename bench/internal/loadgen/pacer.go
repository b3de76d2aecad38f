package loadgen

import (
	"context"
	"encoding/binary"
	"os"
	"syscall"
	"time"
	"unsafe"
)

// pace sends 0..total-1 on queue, index n no earlier than start+n*interval, and returns how many it sent.
//
// Go's timers wake through epoll_pwait's millisecond timeout, which on this kind of machine overshoots a
// sub-millisecond sleep by ~0.4 ms — more than the latency being measured. A periodic timerfd read
// through the runtime poller wakes within tens of microseconds, so it is used where available; each read
// returns how many periods elapsed, and late wake-ups release several requests at once (their intended
// times are still the scheduled ones).
func pace(ctx context.Context, start time.Time, interval time.Duration, total int64, hardStop time.Time, queue chan<- int64) int64 {
	var n int64
	release := func(upto int64) bool {
		if upto > total {
			upto = total
		}
		for ; n < upto; n++ {
			select {
			case queue <- n:
			case <-ctx.Done():
				return false
			}
		}
		return n < total && time.Now().Before(hardStop)
	}
	// The timer first fires at start, then every interval: after k expiries, indices < k are due.
	first := time.Until(start)
	if first < time.Microsecond {
		first = time.Microsecond
	}
	tf, err := newTimerfd(first, interval)
	if err != nil {
		if d := time.Until(start); d > 0 {
			time.Sleep(d)
		}
		if !release(1) {
			return n
		}
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return n
			case now := <-t.C:
				if !release(int64(now.Sub(start)/interval) + 1) {
					return n
				}
			}
		}
	}
	defer tf.Close()
	stopRead := context.AfterFunc(ctx, func() { tf.Close() })
	defer stopRead()
	var buf [8]byte
	expired := int64(0)
	for {
		if _, err := tf.Read(buf[:]); err != nil {
			return n
		}
		expired += int64(binary.NativeEndian.Uint64(buf[:]))
		if !release(expired) {
			return n
		}
	}
}

type itimerspec struct {
	interval, value syscall.Timespec
}

// newTimerfd returns a non-blocking periodic CLOCK_MONOTONIC timerfd, first firing after first, wrapped
// in an *os.File so reads park the goroutine in the runtime poller.
func newTimerfd(first, interval time.Duration) (*os.File, error) {
	const clockMonotonic = 1
	fd, _, e := syscall.Syscall(syscall.SYS_TIMERFD_CREATE, clockMonotonic, syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if e != 0 {
		return nil, e
	}
	spec := itimerspec{interval: syscall.NsecToTimespec(int64(interval)), value: syscall.NsecToTimespec(int64(first))}
	if _, _, e := syscall.Syscall6(syscall.SYS_TIMERFD_SETTIME, fd, 0, uintptr(unsafe.Pointer(&spec)), 0, 0, 0); e != 0 {
		syscall.Close(int(fd))
		return nil, e
	}
	return os.NewFile(fd, "timerfd"), nil
}
