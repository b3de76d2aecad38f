package loadgen

import (
	"context"
	"time"
)

// Call is one request of a protocol the Generator does not speak itself (HTTP/2, gRPC). It returns
// whether the response was a success; err is a transport failure. Both count as errors when not ok.
type Call func(ctx context.Context) (ok bool, err error)

// RunFunc is Run for any Call: open loop at rate for d, with at most workers calls in flight, latency
// from each call's intended send time, and the same accounting of unsent calls. Non-success answers
// count as Non2xx, transport failures as ConnErrors.
func RunFunc(ctx context.Context, rate float64, d time.Duration, workers int, call Call) Result {
	return openLoop(ctx, rate, d, max(workers, 1), func(_ int, w *worker) bool {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		ok, err := call(cctx)
		cancel()
		if err != nil {
			w.connErrors++
			return false
		}
		w.requests++
		if !ok {
			w.non2xx++
		}
		return true
	})
}
