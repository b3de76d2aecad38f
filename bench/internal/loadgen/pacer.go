package loadgen

import (
	"context"
	"os"
	"syscall"
	"time"
	"unsafe"
)

// pace sends 0..total-1 on queue, index n no earlier than start+n*interval, and returns how many it sent.
//
// Go's timers wake through epoll_pwait's millisecond timeout, which on this kind of machine overshoots a
// sub-millisecond sleep by ~0.4 ms — more than the latency being measured. A periodic timerfd read
// through the runtime poller wakes within tens of microseconds, so it is used where available; a late
// wake-up releases every request that has come due at once (their intended times stay the scheduled ones).
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
	// due is how many requests are due at now: indices whose intended time has come.
	due := func(now time.Time) int64 {
		if now.Before(start) {
			return 0
		}
		return int64(now.Sub(start)/interval) + 1
	}
	tf, err := newTimerfd(start, interval)
	if err != nil {
		if d := time.Until(start); d > 0 {
			time.Sleep(d)
		}
		t := time.NewTicker(interval)
		defer t.Stop()
		for release(due(time.Now())) {
			select {
			case <-ctx.Done():
				return n
			case <-t.C:
			}
		}
		return n
	}
	defer tf.Close()
	stopRead := context.AfterFunc(ctx, func() { tf.Close() })
	defer stopRead()
	// The timer is only the wake-up source; what is released is decided by the clock, so a timer armed a
	// little late (or a reader woken late) never shifts the schedule.
	var buf [8]byte
	for {
		if _, err := tf.Read(buf[:]); err != nil {
			return n
		}
		if !release(due(time.Now())) {
			return n
		}
	}
}

type itimerspec struct {
	interval, value syscall.Timespec
}

// newTimerfd returns a non-blocking periodic CLOCK_MONOTONIC timerfd whose first expiry is at start
// (armed with an absolute time, so arming late does not shift the phase), wrapped in an *os.File so reads
// park the goroutine in the runtime poller.
func newTimerfd(start time.Time, interval time.Duration) (*os.File, error) {
	const clockMonotonic, timerAbstime = 1, 1
	fd, _, e := syscall.Syscall(syscall.SYS_TIMERFD_CREATE, clockMonotonic, syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if e != 0 {
		return nil, e
	}
	var mono syscall.Timespec
	now := time.Now()
	if _, _, e := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockMonotonic, uintptr(unsafe.Pointer(&mono)), 0); e != 0 {
		_ = syscall.Close(int(fd)) // the setup error is the one to report
		return nil, e
	}
	// Keep the phase of start even if start has already passed (setting up many connections' workers can
	// take longer than the lead time): expiries must fall on start+k*interval, or every request is
	// released up to one interval late.
	first := mono.Nano() + int64(start.Sub(now))
	if iv := int64(interval); first <= mono.Nano() {
		first += ((mono.Nano()-first)/iv + 1) * iv
	}
	spec := itimerspec{interval: syscall.NsecToTimespec(int64(interval)), value: syscall.NsecToTimespec(first)}
	if _, _, e := syscall.Syscall6(syscall.SYS_TIMERFD_SETTIME, fd, timerAbstime, uintptr(unsafe.Pointer(&spec)), 0, 0, 0); e != 0 {
		_ = syscall.Close(int(fd)) // the setup error is the one to report
		return nil, e
	}
	return os.NewFile(fd, "timerfd"), nil
}
