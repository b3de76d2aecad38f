package loadgen

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Call is one request of a protocol the Generator does not speak itself (HTTP/2, gRPC). It returns
// whether the response was a success; err is a transport failure. Both count as errors when not ok.
type Call func(ctx context.Context) (ok bool, err error)

// RunFunc is Run for any Call: open loop at rate for d, with at most workers calls in flight, latency
// from each call's intended send time, and the same accounting of unsent calls. Non-success answers
// count as Non2xx, transport failures as ConnErrors.
func RunFunc(ctx context.Context, rate float64, d time.Duration, workers int, call Call) Result {
	total := max(int64(rate*d.Seconds()), 1)
	interval := time.Duration(float64(time.Second) / rate)
	drain := max(d, 2*time.Second)
	queue := make(chan int64, min(total, 1<<16))
	start := time.Now().Add(time.Millisecond)
	hardStop := start.Add(d + drain)
	var unsent atomic.Int64
	ws := make([]*worker, max(workers, 1))
	var wg sync.WaitGroup
	for i := range ws {
		w := &worker{hist: NewHistogram(), lag: NewHistogram()}
		ws[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range queue {
				if ctx.Err() != nil || time.Now().After(hardStop) {
					unsent.Add(1)
					continue
				}
				intended := start.Add(time.Duration(n) * interval)
				_ = w.lag.RecordValue(clampUS(time.Since(intended)))
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				ok, err := call(cctx)
				cancel()
				if err != nil {
					w.connErrors++
					continue
				}
				now := time.Now()
				w.requests++
				if !ok {
					w.non2xx++
				}
				_ = w.hist.RecordValue(clampUS(now.Sub(intended)))
				w.last = now
			}
		}()
	}
	released := pace(ctx, start, interval, total, hardStop, queue)
	close(queue)
	wg.Wait()
	res := merge(ws, start)
	res.Target = rate
	res.Unsent = unsent.Load() + (total - released)
	return res
}
