package scenario

import (
	"context"
	"fmt"
	"time"

	"github.com/sinewmesh/sinew/bench/internal/loadgen"
	"github.com/sinewmesh/sinew/bench/internal/peers"
	"github.com/sinewmesh/sinew/bench/internal/report"
)

// memory is S4: grow idle keep-alive connections through one proxy, each used for one request, and read
// the proxy's resident memory at each step.
func (r *Runner) memory(ctx context.Context) {
	for _, p := range r.available("S4", true) {
		if ctx.Err() != nil {
			return
		}
		in, ok := r.start(ctx, "S4", p, peers.Hop)
		if !ok {
			continue
		}
		row := r.memoryOnce(ctx, p.Name(), in)
		in.Stop()
		r.Rep.Memory = append(r.Rep.Memory, row)
	}
}

func (r *Runner) memoryOnce(ctx context.Context, name string, in *peers.Instance) report.MemoryRow {
	row := report.MemoryRow{Peer: name}
	gen, err := loadgen.New(ctx, loadgen.Config{Addr: in.Addr, Host: in.Host, Authorization: in.Authorization, Conns: 1, BodySize: r.Plan.BodySize, DialTimeout: 10 * time.Second})
	if err != nil {
		row.Failed, row.Errors = err.Error(), 1
		return row
	}
	defer gen.Close()
	primed := 0
	for _, n := range r.Plan.MemSteps {
		if err := gen.Grow(ctx, n, 32); err != nil {
			row.Failed = err.Error()
			row.Errors++
			break
		}
		res := gen.Prime(ctx, primed, 32)
		primed = n
		row.Errors += res.Errors()
		if res.Errors() > 0 && row.Failed == "" {
			row.Failed = fmt.Sprintf("%d errors priming %d connections", res.Errors(), n)
		}
		// Let the proxy settle (return buffers to pools, finish upstream bookkeeping) before reading RSS.
		select {
		case <-ctx.Done():
			return row
		case <-time.After(time.Second):
		}
		u := measureProcs(in.Proxies)
		row.Conns = append(row.Conns, n)
		row.RSS = append(row.RSS, u.rss)
		if u.hwm > row.PeakRSS {
			row.PeakRSS = u.hwm
		}
		r.logf("S4 %-11s conns=%-6d rss=%.1f MB errs=%d", name, n, float64(u.rss)/1e6, res.Errors())
	}
	if k := len(row.Conns); k >= 2 && row.Conns[k-1] > row.Conns[0] {
		row.PerConn = float64(row.RSS[k-1]-row.RSS[0]) / float64(row.Conns[k-1]-row.Conns[0])
	}
	return row
}
