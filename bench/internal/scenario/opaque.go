package scenario

import (
	"context"
	"fmt"

	"github.com/sinewmesh/sinew/bench/internal/loadgen"
	"github.com/sinewmesh/sinew/bench/internal/peers"
	"github.com/sinewmesh/sinew/bench/internal/report"
)

// opaque is S6: opaque TCP to an echo server, through one plaintext proxy and through a pair with mTLS
// between, interleaved over rounds like S1/S2. Per instance: a bulk stream on one connection for
// TCPMeasure (throughput), then a 1-byte ping-pong on one connection for TCPMeasure (latency).
func (r *Runner) opaque(ctx context.Context) {
	for _, topo := range []peers.Topology{peers.TCPHop, peers.TCPMesh} {
		ps := r.available("S6", false)
		samples := map[string][]*tcpSample{}
		nproxies := map[string]int{}
		for round := 0; round < r.Plan.Rounds && ctx.Err() == nil; round++ {
			for _, p := range rotate(ps, round) {
				if ctx.Err() != nil {
					return
				}
				in, ok := r.start(ctx, "S6", p, topo)
				if !ok {
					continue
				}
				s := r.tcpOnce(ctx, in)
				in.Stop()
				nproxies[p.Name()] = len(in.Proxies)
				if samples[p.Name()] == nil {
					samples[p.Name()] = make([]*tcpSample, r.Plan.Rounds)
				}
				samples[p.Name()][round] = &s
				r.logf("S6 %-7s round %d/%d %-11s %.2f Gbit/s proxy-cores=%.2f ping p50=%.3fms p99=%.3fms p99.9=%.3fms errs=%d %s",
					topo, round+1, r.Plan.Rounds, p.Name(), s.gbps, s.cores, s.ping.P50/1000, s.ping.P99/1000, s.ping.P999/1000, s.errs, s.failed)
			}
		}
		for _, p := range ps {
			if row, ok := aggregateTCP(p.Name(), tcpMode(topo), samples[p.Name()], samples["direct"]); ok {
				row.Proxies = nproxies[p.Name()]
				r.Rep.TCP = append(r.Rep.TCP, row)
			}
		}
	}
}

func tcpMode(t peers.Topology) string {
	if t.Paired() {
		return "pair, mTLS between"
	}
	return "one hop, plaintext"
}

type tcpSample struct {
	gbps   float64
	cores  float64 // CPU-s of all proxies per wall-s during the throughput run
	ping   loadgen.Summary
	hwm    int64
	errs   int64
	failed string
}

func (r *Runner) tcpOnce(ctx context.Context, in *peers.Instance) tcpSample {
	var s tcpSample
	before := measureProcs(in.Proxies)
	n, el, err := loadgen.Throughput(ctx, in.Addr, r.Plan.TCPMeasure)
	after := measureProcs(in.Proxies)
	if err != nil {
		s.errs++
		s.failed = "throughput: " + err.Error()
	} else if el > 0 {
		s.gbps = float64(n) * 8 / el.Seconds() / 1e9
		if len(in.Proxies) > 0 {
			s.cores = (after.cpu - before.cpu).Seconds() / el.Seconds()
		}
	}
	h, err := loadgen.PingPong(ctx, in.Addr, r.Plan.TCPMeasure)
	s.ping = loadgen.Summarize(h)
	if err != nil {
		s.errs++
		if s.failed == "" {
			s.failed = "ping-pong: " + err.Error()
		}
	}
	s.hwm = measureProcs(in.Proxies).hwm
	return s
}

// aggregateTCP takes medians over rounds; added ping latency pairs each round with direct's.
func aggregateTCP(peer, mode string, rounds, direct []*tcpSample) (report.TCPRow, bool) {
	row := report.TCPRow{Peer: peer, Mode: mode}
	var gbps, cores, p50, p99, p999, mx, add50, add99 []float64
	for i, s := range rounds {
		if s == nil {
			continue
		}
		row.Rounds++
		row.Errors += s.errs
		if s.failed != "" && row.Failed == "" {
			row.Failed = s.failed
		}
		if s.hwm > row.PeakRSS {
			row.PeakRSS = s.hwm
		}
		if s.gbps > 0 {
			gbps, cores = append(gbps, s.gbps), append(cores, s.cores)
		}
		if s.ping.N == 0 {
			continue
		}
		p50, p99, p999, mx = append(p50, s.ping.P50), append(p99, s.ping.P99), append(p999, s.ping.P999), append(mx, s.ping.Max)
		if peer != "direct" && i < len(direct) && direct[i] != nil && direct[i].ping.N > 0 {
			add50 = append(add50, s.ping.P50-direct[i].ping.P50)
			add99 = append(add99, s.ping.P99-direct[i].ping.P99)
		}
	}
	if row.Rounds == 0 {
		return row, false
	}
	row.Gbps, row.ProxyCores = median(gbps), median(cores)
	row.PingP50, row.PingP99, row.PingP999, row.PingMax = median(p50), median(p99), median(p999), median(mx)
	if len(add50) > 0 {
		a, b := median(add50), median(add99)
		row.AddPingP50, row.AddPingP99 = &a, &b
	}
	if row.Errors > 0 && row.Failed == "" {
		row.Failed = fmt.Sprintf("%d errors", row.Errors)
	}
	return row, true
}
