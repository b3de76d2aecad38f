package scenario

import (
	"context"
	"fmt"
	"time"

	"github.com/sinewmesh/sinew/bench/internal/loadgen"
	"github.com/sinewmesh/sinew/bench/internal/peers"
	"github.com/sinewmesh/sinew/bench/internal/report"
)

// churnSchedule says which changes S10 makes at each tick: the endpoint set at every tick, the route at every
// routeEvery/endpointEvery-th. Ticks fall mid-period (½, 1½, … periods into the window), so a window of n periods
// holds exactly n endpoint changes, not n or n−1 depending on when the generator's drain ends.
type churnSchedule struct {
	endpointEvery time.Duration
	routeEach     int // route change at every routeEach-th tick
}

func newChurnSchedule(endpointEvery, routeEvery time.Duration) churnSchedule {
	k := max(int(routeEvery/endpointEvery), 1)
	return churnSchedule{endpointEvery: endpointEvery, routeEach: k}
}

// at is the offset of tick i (0-based) from the window's start, and whether the route changes there too.
func (s churnSchedule) at(i int) (time.Duration, bool) {
	return s.endpointEvery/2 + time.Duration(i)*s.endpointEvery, (i+1)%s.routeEach == 0
}

// counts is how many changes a window of d holds.
func (s churnSchedule) counts(d time.Duration) (endpoints, routes int) {
	for i := 0; ; i++ {
		off, route := s.at(i)
		if off >= d {
			return endpoints, routes
		}
		endpoints++
		if route {
			routes++
		}
	}
}

// churn is S10: S2's load (one cell, meshed) on sinew while the server Services' endpoint set changes every
// EndpointEvery (a standby server proxy moves in and out of their selection) and the HTTPRoute's split weights
// every RouteEvery. One instance, one window; it passes with zero errors.
func (r *Runner) churn(ctx context.Context) {
	for _, p := range r.Peers {
		if ctx.Err() != nil {
			return
		}
		if why := peers.ChurnSkip(p); why != "" {
			r.skip("S10", p.Name(), why)
			continue
		}
		if why := p.Available(r.Env); why != "" {
			r.skip("S10", p.Name(), why)
			continue
		}
		in, ok := r.start(ctx, "S10", p, peers.ChurnMesh)
		if !ok {
			continue
		}
		row := r.churnOnce(ctx, p.Name(), in)
		in.Stop()
		r.Rep.Churn = append(r.Rep.Churn, row)
	}
}

func (r *Runner) churnOnce(ctx context.Context, peer string, in *peers.Instance) report.ChurnRow {
	pl := r.Plan
	row := report.ChurnRow{Peer: peer, Conns: pl.S10.Conns, Rate: pl.S10.Rate, EndpointEvery: pl.EndpointEvery.String(),
		RouteEvery: pl.RouteEvery.String(), Proxies: len(in.Proxies)}
	fail := func(err error) report.ChurnRow {
		row.Errors++
		row.Failed = err.Error()
		return row
	}
	gen, err := loadgen.New(ctx, loadgen.Config{Addr: in.Addr, Host: in.Host, Authorization: in.Authorization, Conns: pl.S10.Conns, BodySize: pl.BodySize})
	if err != nil {
		return fail(err)
	}
	defer gen.Close()
	gen.Run(ctx, pl.S10.Rate, pl.Warmup)

	// What the proxies served before the window (the start's route check, the warm-up) is not the window's.
	standby0, backends0, err := in.Churn.Served(ctx)
	if err != nil {
		return fail(fmt.Errorf("reading the proxies' metrics: %w", err))
	}
	sched := newChurnSchedule(pl.EndpointEvery, pl.RouteEvery)
	cctx, stop := context.WithCancel(ctx)
	type changes struct {
		endpoints, routes int
		err               error
	}
	done := make(chan changes, 1)
	start := time.Now()
	go func() {
		var c changes
		defer func() { done <- c }()
		for i := 0; ; i++ {
			off, route := sched.at(i)
			select {
			case <-cctx.Done():
				return
			case <-time.After(time.Until(start.Add(off))):
			}
			in2, err := in.Churn.ToggleEndpoints()
			if err != nil {
				c.err = err
				return
			}
			c.endpoints++
			msg := fmt.Sprintf("standby in=%t", in2)
			if route {
				w, err := in.Churn.NextRoute()
				if err != nil {
					c.err = err
					return
				}
				c.routes++
				msg += fmt.Sprintf(", route %d/%d", w[0], w[1])
			}
			r.logf("S10 %-11s t=%5.2fs %s", peer, time.Since(start).Seconds(), msg)
		}
	}()
	res := gen.Run(ctx, pl.S10.Rate, pl.ChurnMeasure)
	stop()
	c := <-done

	s := loadgen.Summarize(res.Hist)
	row.Duration = res.Elapsed.Round(10 * time.Millisecond).String()
	row.Requests, row.Achieved = res.Requests, res.Achieved()
	row.P50, row.P99, row.P999, row.Max = s.P50, s.P99, s.P999, s.Max
	row.Errors = res.Errors()
	row.EndpointChanges, row.RouteChanges = c.endpoints, c.routes
	standby, backends, err := in.Churn.Served(ctx)
	if err == nil {
		row.StandbyRequests = int64(standby - standby0)
		row.BackendRequests = map[string]int64{}
		for b, n := range backends {
			row.BackendRequests[b] = int64(n - backends0[b])
		}
	}
	switch {
	case c.err != nil:
		row.Failed = "changing resources: " + c.err.Error()
	case res.ConnErrors > 0 || res.Non2xx > 0:
		row.Failed = fmt.Sprintf("%d connection errors, %d non-2xx", res.ConnErrors, res.Non2xx)
	case res.Unsent > 0:
		row.Failed = fmt.Sprintf("saturated: %d requests unsent", res.Unsent)
	case err != nil:
		row.Failed = "reading the proxies' metrics: " + err.Error()
	case row.StandbyRequests == 0:
		row.Failed = "the standby proxy served no request: the endpoint changes did not reach the client proxy"
	}
	r.logf("S10 %-11s conns=%d rate=%.0f requests=%d errors=%d p50=%.3fms p99=%.3fms endpoint changes=%d route changes=%d standby served=%d backends=%v %s",
		peer, row.Conns, row.Rate, row.Requests, row.Errors, s.P50/1000, s.P99/1000, row.EndpointChanges, row.RouteChanges,
		row.StandbyRequests, row.BackendRequests, row.Failed)
	return row
}
