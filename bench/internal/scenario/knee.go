package scenario

import (
	"context"
	"fmt"
	"time"

	"github.com/sinewmesh/sinew/bench/internal/loadgen"
	"github.com/sinewmesh/sinew/bench/internal/peers"
	"github.com/sinewmesh/sinew/bench/internal/report"
)

// knee finds, per peer, the throughput knee through topology topo: the low-load p99, the closed-loop maximum,
// then open-loop steps at fractions of that maximum until p99 > 10× low-load p99, errors, or < 95 % of the rate
// achieved. S3 runs it through one hop, S12 through the edge hop (TLS from the client; the knee's proxy cores are
// the edge's and the server-side proxy's together, which share the proxy core, and the edge's alone).
func (r *Runner) knee(ctx context.Context, sc string, topo peers.Topology) []report.KneeRow {
	ps := r.available(sc, false)
	perPeer := map[string][]report.KneeRow{}
	for round := 0; round < r.Plan.KneeRounds && ctx.Err() == nil; round++ {
		for _, p := range rotate(ps, round) {
			if ctx.Err() != nil {
				return nil
			}
			in, ok := r.start(ctx, sc, p, topo)
			if !ok {
				continue
			}
			row := r.kneeOnce(ctx, p.Name(), in)
			in.Stop()
			r.logf("%s knee round %d/%d %-11s low-p99=%.3fms closed-max=%.0f knee=%.0f rps cores=%.2f (first hop %.2f) rps/core=%.0f (%s)",
				sc, round+1, r.Plan.KneeRounds, p.Name(), row.LowLoadP99/1000, row.ClosedMax, row.KneeRPS, row.ProxyCores, row.FrontCores, row.RPSPerCore, row.StoppedBy)
			perPeer[p.Name()] = append(perPeer[p.Name()], row)
		}
	}
	var out []report.KneeRow
	for _, p := range ps {
		rows := perPeer[p.Name()]
		if len(rows) == 0 {
			continue
		}
		last := rows[len(rows)-1] // steps and stop reason of the last round
		var low, cmax, knee, p99, cores, per, front, perFront []float64
		last.Errors = 0
		for _, k := range rows {
			low, cmax, knee = append(low, k.LowLoadP99), append(cmax, k.ClosedMax), append(knee, k.KneeRPS)
			p99, cores, per = append(p99, k.P99AtKnee), append(cores, k.ProxyCores), append(per, k.RPSPerCore)
			front, perFront = append(front, k.FrontCores), append(perFront, k.RPSPerFrontCore)
			last.Errors += k.Errors
		}
		last.LowLoadP99, last.ClosedMax, last.KneeRPS = median(low), median(cmax), median(knee)
		last.P99AtKnee, last.ProxyCores, last.RPSPerCore = median(p99), median(cores), median(per)
		last.FrontCores, last.RPSPerFrontCore = median(front), median(perFront)
		last.Rounds = len(rows)
		out = append(out, last)
	}
	return out
}

func (r *Runner) kneeOnce(ctx context.Context, name string, in *peers.Instance) report.KneeRow {
	row := report.KneeRow{Peer: name}
	gen, err := loadgen.New(ctx, loadgen.Config{Addr: in.Addr, Host: in.Host, Authorization: in.Authorization, Conns: r.Plan.KneeConns,
		BodySize: r.Plan.BodySize, TLS: in.ClientTLS})
	if err != nil {
		row.StoppedBy, row.Errors = "dial: "+err.Error(), 1
		return row
	}
	defer gen.Close()
	gen.Run(ctx, r.Plan.KneeLowRate, r.Plan.Warmup)
	// The knee threshold hangs on the low-load p99, so take the best of three short runs: one stall from a
	// neighbour on this shared machine must not move the threshold tenfold.
	var lowErrs int64
	for i := 0; i < 3; i++ {
		low := gen.Run(ctx, r.Plan.KneeLowRate, r.Plan.KneeStep/2)
		lowErrs += low.Errors()
		if p := loadgen.Summarize(low.Hist).P99; i == 0 || p < row.LowLoadP99 {
			row.LowLoadP99 = p
		}
	}
	row.Errors += lowErrs
	closed := gen.RunClosed(ctx, r.Plan.KneeStep)
	row.ClosedMax = closed.Achieved()
	row.Errors += closed.Errors()
	if lowErrs > 0 || closed.Errors() > 0 || row.ClosedMax == 0 {
		row.StoppedBy = "errors before the ramp"
		return row
	}
	limit := 10 * row.LowLoadP99
	row.StoppedBy = "ramp ended (knee ≥ last step)"
	var lastCores float64
	for _, f := range r.Plan.KneeFractions {
		rate := f * row.ClosedMax
		var st report.KneeStep
		var why string
		// A latency failure is retried once: on this shared machine one neighbour's burst can push a short
		// step's p99 over the line. Errors are never retried.
		for try := 0; try < 2; try++ {
			before := measureProcs(in.Proxies)
			t0 := time.Now()
			res := gen.Run(ctx, rate, r.Plan.KneeStep)
			wall := time.Since(t0)
			after := measureProcs(in.Proxies)
			st = report.KneeStep{Rate: rate, Achieved: res.Achieved(), P99: loadgen.Summarize(res.Hist).P99, Errors: res.Errors()}
			if len(in.Proxies) > 0 {
				st.ProxyCores = (after.cpu - before.cpu).Seconds() / wall.Seconds()
			}
			if len(in.Proxies) > 1 {
				st.FrontCores = (after.each[0] - before.each[0]).Seconds() / wall.Seconds()
			}
			row.Errors += st.Errors
			switch {
			case st.Errors > 0:
				why = fmt.Sprintf("errors at %.0f rps", rate)
				try = 2
			case st.P99 > limit:
				why = fmt.Sprintf("p99 %.2f ms > 10× low-load at %.0f rps", st.P99/1000, rate)
			case st.Achieved < 0.95*rate:
				why = fmt.Sprintf("achieved %.0f of %.0f rps", st.Achieved, rate)
			default:
				st.Pass = true
				try = 2
			}
		}
		lastCores = st.ProxyCores
		row.Steps = append(row.Steps, st)
		if !st.Pass {
			row.StoppedBy = why
			break
		}
		row.KneeRPS, row.P99AtKnee, row.ProxyCores, row.FrontCores = st.Achieved, st.P99, st.ProxyCores, st.FrontCores
		if st.ProxyCores > 0 {
			row.RPSPerCore = st.Achieved / st.ProxyCores
		}
		if st.FrontCores > 0 {
			row.RPSPerFrontCore = st.Achieved / st.FrontCores
		}
	}
	// If the proxy never used most of its core, the load generator and app (sharing the other core) were the
	// limit, and rps/core is an extrapolation from an unsaturated proxy.
	row.HarnessBound = len(in.Proxies) > 0 && lastCores < 0.85
	return row
}
