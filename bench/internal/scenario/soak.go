package scenario

import (
	"context"
	"fmt"
	"time"

	"github.com/sinewmesh/sinew/bench/internal/loadgen"
	"github.com/sinewmesh/sinew/bench/internal/peers"
	"github.com/sinewmesh/sinew/bench/internal/report"
)

// soak is S9: per proxy (one hop), open loop at half the knee for a long time, sampling latency and
// RSS every window. The knee is S3's for that peer when S3 ran in this run, else measured on the soak
// instance first (same procedure as S3, one round). direct is not soaked: the targets are the proxy's own
// p99.9 / p99 ratio and RSS over time.
func (r *Runner) soak(ctx context.Context) {
	for _, p := range r.available("S9", true) {
		if ctx.Err() != nil {
			return
		}
		in, ok := r.start(ctx, "S9", p, peers.Hop)
		if !ok {
			continue
		}
		row := report.SoakRow{Peer: p.Name(), KneeFrom: "S3"}
		for _, k := range r.Rep.Knee {
			if k.Peer == p.Name() {
				row.KneeRPS = k.KneeRPS
			}
		}
		if row.KneeRPS == 0 {
			k := r.kneeOnce(ctx, p.Name(), in)
			row.KneeRPS, row.KneeFrom = k.KneeRPS, "measured first"
			r.logf("S9 %-11s knee=%.0f rps (%s)", p.Name(), k.KneeRPS, k.StoppedBy)
		}
		if row.KneeRPS > 0 {
			r.soakOnce(ctx, in, &row)
		} else {
			row.Failed, row.Errors = "no knee (errors before or at the first step)", 1
		}
		in.Stop()
		r.Rep.Soak = append(r.Rep.Soak, row)
	}
}

func (r *Runner) soakOnce(ctx context.Context, in *peers.Instance, row *report.SoakRow) {
	row.Rate = row.KneeRPS / 2
	gen, err := loadgen.New(ctx, loadgen.Config{Addr: in.Addr, Host: in.Host, Authorization: in.Authorization, Conns: r.Plan.KneeConns, BodySize: r.Plan.BodySize})
	if err != nil {
		row.Failed, row.Errors = err.Error(), 1
		return
	}
	defer gen.Close()
	gen.Run(ctx, row.Rate, r.Plan.Warmup)
	row.RSSStart = measureProcs(in.Proxies).rss
	total := loadgen.NewHistogram()
	start := time.Now()
	for time.Since(start) < r.Plan.SoakDuration && ctx.Err() == nil {
		w := r.Plan.SoakWindow
		if left := r.Plan.SoakDuration - time.Since(start); left < w {
			w = left
		}
		res := gen.Run(ctx, row.Rate, w)
		total.Merge(res.Hist)
		u := measureProcs(in.Proxies)
		s := loadgen.Summarize(res.Hist)
		win := report.SoakWindow{At: time.Since(start).Seconds(), Achieved: res.Achieved(), P99: s.P99, P999: s.P999, Max: s.Max,
			RSS: u.rss, Errors: res.Errors()}
		row.Windows = append(row.Windows, win)
		row.Errors += win.Errors
		row.RSSEnd = u.rss
		if u.hwm > row.PeakRSS {
			row.PeakRSS = u.hwm
		}
		r.logf("S9 %-11s t=%4.0fs rate=%.0f p99=%.3fms p99.9=%.3fms max=%.3fms rss=%.1f MB errs=%d", row.Peer, win.At, row.Rate,
			s.P99/1000, s.P999/1000, s.Max/1000, float64(u.rss)/1e6, win.Errors)
	}
	row.Duration = time.Since(start).Round(time.Second).String()
	s := loadgen.Summarize(total)
	row.P50, row.P99, row.P999, row.Max = s.P50, s.P99, s.P999, s.Max
	if row.Errors > 0 {
		row.Failed = fmt.Sprintf("%d errors (non-2xx, connection errors or unsent)", row.Errors)
	}
}
