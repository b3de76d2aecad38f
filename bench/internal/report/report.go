// Package report holds the benchmark's results and renders them as Markdown (for people and for
// bench/RESULTS.md) and JSON (for tools). Rendering is a pure function of the Report value so that it can
// be tested against a golden file; it must not run or time anything.
package report

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Report is one run of sinew-bench.
type Report struct {
	Mode      string            `json:"mode"` // "quick" or "full"
	Date      string            `json:"date"`
	Command   string            `json:"command"`
	Machine   Machine           `json:"machine"`
	GoVersion string            `json:"go_version"`
	Commit    string            `json:"commit"`
	Versions  map[string]string `json:"versions"` // peer → version string
	Rounds    int               `json:"rounds"`
	Duration  string            `json:"duration"` // wall time of the whole run
	Method    []string          `json:"method"`   // one line per setting worth knowing
	Skipped   []Skip            `json:"skipped,omitempty"`
	Latency   []LatencyRow      `json:"latency"`
	Knee      []KneeRow         `json:"knee"`
	Memory    []MemoryRow       `json:"memory"`
	TCP       []TCPRow          `json:"tcp,omitempty"`
	Soak      []SoakRow         `json:"soak,omitempty"`
	Churn     []ChurnRow        `json:"churn,omitempty"`
	// EdgeKnee is S12's knee: S3's search through the edge hop (HTTPS in, edge proxy, mTLS, server-side proxy).
	EdgeKnee []KneeRow `json:"edge_knee,omitempty"`
	Notes    []string  `json:"notes,omitempty"`
}

// Machine names the host.
type Machine struct {
	CPUModel string `json:"cpu_model"`
	Cores    int    `json:"cores"`
	Kernel   string `json:"kernel"`
	MemTotal string `json:"mem_total"`
}

// Skip records a peer or scenario that did not run, and why.
type Skip struct {
	Scenario string `json:"scenario"`
	Peer     string `json:"peer"`
	Reason   string `json:"reason"`
}

// LatencyRow is one (scenario, peer, connections, rate) cell: medians over rounds. Times are µs.
type LatencyRow struct {
	Scenario string   `json:"scenario"`
	Peer     string   `json:"peer"`
	Variant  string   `json:"variant,omitempty"` // payload (S5), client connection mode (S7)
	Conns    int      `json:"conns"`
	Rate     float64  `json:"target_rps"`
	Achieved float64  `json:"achieved_rps"`
	P50      float64  `json:"p50_us"`
	P99      float64  `json:"p99_us"`
	P999     float64  `json:"p999_us"`
	Max      float64  `json:"max_us"`
	AddP50   *float64 `json:"added_p50_us,omitempty"` // median over rounds of (peer − direct in that round)
	AddP99   *float64 `json:"added_p99_us,omitempty"`
	CPUPer1k *float64 `json:"cpu_s_per_1k_req_per_proxy,omitempty"` // = vCPU per 1,000 rps per proxy
	// A pair's proxies apart: the first hop (client-side proxy; S12: the edge proxy) and the server-side proxy.
	FrontCPUPer1k *float64 `json:"front_cpu_s_per_1k_req,omitempty"`
	BackCPUPer1k  *float64 `json:"back_cpu_s_per_1k_req,omitempty"`
	PeakRSS       int64    `json:"peak_rss_bytes_per_proxy,omitempty"` // max VmHWM over the proxies
	// S5: how far the peak RSS (max over proxies) rose above its value after the first (smallest) cell,
	// max over rounds; cells run in order on one instance, so it is cumulative. Flat = no full buffering.
	RSSGrowth *int64 `json:"rss_growth_bytes,omitempty"`
	Proxies   int    `json:"proxies"`
	Errors    int64  `json:"errors"` // non-2xx + connection errors + unsent, summed over rounds
	Rounds    int    `json:"rounds"`
	// Harness health: µs from a request's intended time to its write (pacing + waiting for a free
	// connection), median over rounds. Large values with direct mean the load generator was starved.
	SendLagP50 float64 `json:"send_lag_p50_us"`
	SendLagP99 float64 `json:"send_lag_p99_us"`
	Failed     string  `json:"failed,omitempty"`
}

// KneeRow is scenario S3 for one peer (one proxy hop, proxy pinned to one core), or S12's knee through the edge
// hop (two proxies sharing the proxy core: ProxyCores counts both, FrontCores the edge proxy alone).
type KneeRow struct {
	Peer       string  `json:"peer"`
	LowLoadP99 float64 `json:"low_load_p99_us"`
	ClosedMax  float64 `json:"closed_loop_max_rps"`
	KneeRPS    float64 `json:"knee_rps"`
	P99AtKnee  float64 `json:"p99_at_knee_us"`
	ProxyCores float64 `json:"proxy_cores_at_knee"` // CPU-s per wall-s of the proxy at the knee rate
	RPSPerCore float64 `json:"rps_per_proxy_core"`  // knee rps / proxy cores used
	// A pair (S12): the first hop's (edge proxy's) cores at the knee, and knee rps / those cores.
	FrontCores      float64    `json:"front_proxy_cores_at_knee,omitempty"`
	RPSPerFrontCore float64    `json:"rps_per_front_proxy_core,omitempty"`
	Rounds          int        `json:"rounds"`
	Steps           []KneeStep `json:"steps"` // of the last round
	StoppedBy       string     `json:"stopped_by"`
	Errors          int64      `json:"errors"`
	HarnessBound    bool       `json:"harness_bound"` // the proxy core was not saturated at the last step
}

// KneeStep is one open-loop rate tried during the knee search.
type KneeStep struct {
	Rate       float64 `json:"target_rps"`
	Achieved   float64 `json:"achieved_rps"`
	P99        float64 `json:"p99_us"`
	ProxyCores float64 `json:"proxy_cores"`
	FrontCores float64 `json:"front_proxy_cores,omitempty"` // a pair's first hop alone
	Errors     int64   `json:"errors"`
	Pass       bool    `json:"pass"`
}

// MemoryRow is scenario S4 for one peer: resident memory of the proxy holding n idle keep-alive
// connections (each used once, so the proxy's upstream side is set up too).
type MemoryRow struct {
	Peer    string  `json:"peer"`
	Conns   []int   `json:"conns"`
	RSS     []int64 `json:"rss_bytes"`
	PerConn float64 `json:"rss_bytes_per_conn"` // (RSS at the largest n − RSS at the smallest) / Δn
	PeakRSS int64   `json:"peak_rss_bytes"`
	Errors  int64   `json:"errors"`
	Failed  string  `json:"failed,omitempty"`
}

// TCPRow is scenario S6 for one peer and mode: opaque TCP to an echo server. Medians over rounds; times µs.
type TCPRow struct {
	Peer       string   `json:"peer"`
	Mode       string   `json:"mode"`              // "one hop, plaintext" or "pair, mTLS between"
	Gbps       float64  `json:"throughput_gbit_s"` // bytes echoed back × 8 / s, one connection
	ProxyCores float64  `json:"proxy_cores"`       // CPU-s of all proxies per s during the throughput run
	PingP50    float64  `json:"ping_p50_us"`       // 1-byte round trip, one connection, back to back
	PingP99    float64  `json:"ping_p99_us"`
	PingP999   float64  `json:"ping_p999_us"`
	PingMax    float64  `json:"ping_max_us"`
	AddPingP50 *float64 `json:"added_ping_p50_us,omitempty"`
	AddPingP99 *float64 `json:"added_ping_p99_us,omitempty"`
	PeakRSS    int64    `json:"peak_rss_bytes_per_proxy,omitempty"`
	Proxies    int      `json:"proxies"`
	Errors     int64    `json:"errors"`
	Rounds     int      `json:"rounds"`
	Failed     string   `json:"failed,omitempty"`
}

// SoakRow is scenario S9 for one peer: open loop at half the knee through one proxy for a long time.
type SoakRow struct {
	Peer     string       `json:"peer"`
	KneeRPS  float64      `json:"knee_rps"`
	KneeFrom string       `json:"knee_from"` // "S3" or how it was measured
	Rate     float64      `json:"target_rps"`
	Duration string       `json:"duration"`
	P50      float64      `json:"p50_us"`
	P99      float64      `json:"p99_us"`
	P999     float64      `json:"p999_us"`
	Max      float64      `json:"max_us"`
	RSSStart int64        `json:"rss_start_bytes"` // summed over the proxy's process tree, after warm-up
	RSSEnd   int64        `json:"rss_end_bytes"`
	PeakRSS  int64        `json:"peak_rss_bytes"`
	Windows  []SoakWindow `json:"windows"`
	Errors   int64        `json:"errors"`
	Failed   string       `json:"failed,omitempty"`
}

// ChurnRow is scenario S10 for one peer: S2's load while the target's endpoint set and HTTPRoute change. Times µs.
type ChurnRow struct {
	Peer            string  `json:"peer"`
	Conns           int     `json:"conns"`
	Rate            float64 `json:"target_rps"`
	Achieved        float64 `json:"achieved_rps"`
	Duration        string  `json:"duration"` // the measured window, as run
	Requests        int64   `json:"requests"`
	P50             float64 `json:"p50_us"`
	P99             float64 `json:"p99_us"`
	P999            float64 `json:"p999_us"`
	Max             float64 `json:"max_us"`
	EndpointEvery   string  `json:"endpoint_every"`
	RouteEvery      string  `json:"route_every"`
	EndpointChanges int     `json:"endpoint_changes"` // made during the measured window
	RouteChanges    int     `json:"route_changes"`
	// Evidence that the changes reached the data plane, counted over the window: requests the standby server's
	// proxy took in (it is an endpoint only half the time), and the client proxy's requests per backend of the
	// route's split.
	StandbyRequests int64            `json:"standby_requests"`
	BackendRequests map[string]int64 `json:"backend_requests,omitempty"`
	Proxies         int              `json:"proxies"`
	Errors          int64            `json:"errors"`
	Failed          string           `json:"failed,omitempty"`
}

// SoakWindow is one sampling period of a soak.
type SoakWindow struct {
	At       float64 `json:"at_s"` // seconds since the soak began, at the window's end
	Achieved float64 `json:"achieved_rps"`
	P99      float64 `json:"p99_us"`
	P999     float64 `json:"p999_us"`
	Max      float64 `json:"max_us"`
	RSS      int64   `json:"rss_bytes"`
	Errors   int64   `json:"errors"`
}

// WriteJSON writes the report as indented JSON.
func WriteJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// Reference peer for ratios: the PERFORMANCE.md targets are stated against nginx.
const refPeer = "nginx"

var scenarioTitle = map[string]string{
	"S1": "S1 — one proxy hop, HTTP/1.1 plaintext, open loop",
	"S2": "S2 — meshed hop (client proxy → TLS 1.3 mTLS → server proxy → app), open loop",
	"S5": "S5 — payload sizes through the meshed hop, open loop",
	"S7": "S7 — a new connection per request through the meshed hop, open loop",
	"S8": "S8 — HTTP/2 and gRPC through the meshed hop, open loop",
}

var scenarioNote = map[string]string{
	"S5": "Cells run in this order on one instance per peer and round. RSS growth = peak RSS (largest proxy) after the cell − peak RSS after the first (0 B) cell, so the runtime's own warm-up is not counted: it stays flat when bodies stream; a proxy that buffers whole 1 MiB bodies grows by about 1 MiB per concurrent request. nginx's default `proxy_request_buffering on` spools uploads to disk, not memory (it shows as upload latency, not RSS).",
	"S8": "h2c (prior knowledge) from the client to the first hop, HTTP/2 over mTLS between the pair (nginx: `grpc_pass`, HAProxy: `alpn h2` / `proto h2`, go-revproxy: ALPN h2), h2c to the app, which serves HTTP/2 and a gRPC echo service on one port. Conns = calls in flight at most, over one HTTP/2 connection. A call fails on a non-200, a gRPC status other than OK, or a payload that does not come back unchanged.",
	"S7": "Every request dials a new connection to the first hop and sends `Connection: close`; latency includes the connect. Achieved rps = new client connections per second. Plaintext client: as an app talks to its own sidecar. TLS client: TLS 1.3 with a client certificate and no session resumption, so every request is a full handshake, terminated by the client-side proxy (direct: by the app, which shares the load generator's core, so direct's TLS row is no clean baseline); sinew does not apply (its outbound port is plaintext by design). Whether a proxy opens a new mTLS connection to its pair per request is its own choice (pooling).",
}

// WriteMarkdown renders the report.
func WriteMarkdown(w io.Writer, r *Report) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# sinew benchmark results (%s)\n\n", r.Mode)
	fmt.Fprintf(&b, "Generated by `%s` on %s. Run took %s.\n\n", r.Command, r.Date, r.Duration)
	b.WriteString("| Machine | |\n|---|---|\n")
	fmt.Fprintf(&b, "| CPU | %s |\n| Cores | %d |\n| Memory | %s |\n| Kernel | %s |\n| Go | %s |\n| sinew commit | %s |\n",
		esc(r.Machine.CPUModel), r.Machine.Cores, esc(r.Machine.MemTotal), esc(r.Machine.Kernel), esc(r.GoVersion), esc(r.Commit))
	for _, k := range sortedKeys(r.Versions) {
		fmt.Fprintf(&b, "| %s | %s |\n", esc(k), esc(r.Versions[k]))
	}
	b.WriteString("\n")
	if len(r.Method) > 0 {
		b.WriteString("Method:\n")
		for _, m := range r.Method {
			fmt.Fprintf(&b, "- %s\n", m)
		}
		b.WriteString("\n")
	}
	if len(r.Skipped) > 0 {
		b.WriteString("## Skipped\n\n| Scenarios | Peer | Reason |\n|---|---|---|\n")
		// One line per (peer, reason), listing the scenarios it applies to.
		type pr struct{ peer, reason string }
		var order []pr
		scs := map[pr][]string{}
		for _, s := range r.Skipped {
			k := pr{s.Peer, s.Reason}
			if _, ok := scs[k]; !ok {
				order = append(order, k)
			}
			scs[k] = append(scs[k], s.Scenario)
		}
		for _, k := range order {
			fmt.Fprintf(&b, "| %s | %s | skipped: %s |\n", esc(strings.Join(scs[k], ", ")), esc(k.peer), esc(k.reason))
		}
		b.WriteString("\n")
	}
	for _, sc := range latencyScenarios(r.Latency) {
		if sc == edgeScenario {
			continue // its own section, with its knee, after S10
		}
		title := scenarioTitle[sc]
		if title == "" {
			title = sc
		}
		fmt.Fprintf(&b, "## %s\n\n", title)
		if note := scenarioNote[sc]; note != "" {
			b.WriteString(note + "\n\n")
		}
		writeLatencyTable(&b, r.Latency, sc, false)
		writeRatios(&b, r.Latency, sc, false)
		writeVariantRatios(&b, r.Latency, sc)
	}
	if len(r.Knee) > 0 {
		b.WriteString("## S3 — throughput knee, one proxy hop, proxy pinned to one core\n\n")
		b.WriteString("Knee = highest open-loop rate with p99 ≤ 10× the low-load p99, no errors and ≥ 95 % of the rate achieved.\n\n")
		writeKnee(&b, r.Knee, false)
	}
	if len(r.Memory) > 0 {
		b.WriteString("## S4 — memory with idle keep-alive connections (one proxy hop)\n\n")
		counts := map[int]bool{}
		for _, m := range r.Memory {
			for _, c := range m.Conns {
				counts[c] = true
			}
		}
		var cs []int
		for c := range counts {
			cs = append(cs, c)
		}
		sort.Ints(cs)
		b.WriteString("| Peer |")
		for _, c := range cs {
			fmt.Fprintf(&b, " RSS @ %d conns |", c)
		}
		b.WriteString(" Bytes per connection | Peak RSS | Errors | Status |\n|---|")
		for range cs {
			b.WriteString("--:|")
		}
		b.WriteString("--:|--:|--:|---|\n")
		for _, m := range r.Memory {
			fmt.Fprintf(&b, "| %s |", esc(m.Peer))
			for _, c := range cs {
				v := "—"
				for i, mc := range m.Conns {
					if mc == c {
						v = mb(m.RSS[i])
					}
				}
				fmt.Fprintf(&b, " %s |", v)
			}
			status := "ok"
			if m.Failed != "" {
				status = "FAILED: " + m.Failed
			}
			fmt.Fprintf(&b, " %s | %s | %d | %s |\n", bytesPer(m.PerConn), mb(m.PeakRSS), m.Errors, esc(status))
		}
		b.WriteString("\n")
	}
	if len(r.TCP) > 0 {
		writeTCP(&b, r.TCP)
	}
	if len(r.Soak) > 0 {
		writeSoak(&b, r.Soak)
	}
	if len(r.Churn) > 0 {
		writeChurn(&b, r.Churn)
	}
	writeEdge(&b, r)
	if len(r.Notes) > 0 {
		b.WriteString("## Notes\n\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeLatencyTable is the open-loop table of scenario sc. split shows a pair's proxies apart (the edge and the
// server-side proxy of S12) instead of their mean CPU per request.
func writeLatencyTable(b *strings.Builder, rows []LatencyRow, sc string, split bool) {
	variant, growth := false, false
	for _, row := range rows {
		if row.Scenario == sc {
			variant = variant || row.Variant != ""
			growth = growth || row.RSSGrowth != nil
		}
	}
	head, rule := "| Peer |", "|---|"
	if variant {
		head, rule = head+" Variant |", rule+"---|"
	}
	head += " Conns | Target rps | Achieved rps | p50 | p99 | p99.9 | max | +p50 vs direct | +p99 vs direct |"
	rule += "--:|--:|--:|--:|--:|--:|--:|--:|--:|"
	if split {
		head, rule = head+" Edge CPU-s/1k req | Server-side CPU-s/1k req |", rule+"--:|--:|"
	} else {
		head, rule = head+" CPU-s/1k req/proxy |", rule+"--:|"
	}
	head, rule = head+" Peak RSS/proxy |", rule+"--:|"
	if growth {
		head, rule = head+" RSS growth |", rule+"--:|"
	}
	b.WriteString(head + " Errors | Status |\n" + rule + "--:|---|\n")
	for _, row := range rows {
		if row.Scenario != sc {
			continue
		}
		status := "ok"
		if row.Failed != "" {
			status = "FAILED: " + row.Failed
		}
		fmt.Fprintf(b, "| %s |", esc(row.Peer))
		if variant {
			fmt.Fprintf(b, " %s |", esc(row.Variant))
		}
		fmt.Fprintf(b, " %d | %s | %s | %s | %s | %s | %s | %s | %s |",
			row.Conns, rps(row.Rate), rps(row.Achieved), ms(row.P50), ms(row.P99), ms(row.P999), ms(row.Max),
			addMs(row.AddP50), addMs(row.AddP99))
		if split {
			fmt.Fprintf(b, " %s | %s |", cpu(row.FrontCPUPer1k), cpu(row.BackCPUPer1k))
		} else {
			fmt.Fprintf(b, " %s |", cpu(row.CPUPer1k))
		}
		fmt.Fprintf(b, " %s |", mb(row.PeakRSS))
		if growth {
			fmt.Fprintf(b, " %s |", signedMB(row.RSSGrowth))
		}
		fmt.Fprintf(b, " %d | %s |\n", row.Errors, esc(status))
	}
	b.WriteString("\n")
}

// edgeScenario is the edge gateway's scenario: its open-loop table and its knee render as one section, after S10.
const edgeScenario = "S12"

// writeEdge renders S12: the fixed-rate table with the edge and server-side proxies' CPU apart, the ratios vs
// nginx, and the knee through the edge hop. It writes nothing when the run has no S12.
func writeEdge(b *strings.Builder, r *Report) {
	has := len(r.EdgeKnee) > 0
	for _, row := range r.Latency {
		has = has || row.Scenario == edgeScenario
	}
	if !has {
		return
	}
	b.WriteString("## S12 — edge gateway (HTTPS in → edge proxy → TLS 1.3 mTLS → server-side proxy → app)\n\n")
	b.WriteString("The client speaks TLS 1.3 to the edge on keep-alive connections (handshakes before the measured window), trusting the harness's CA, with no client certificate; the edge terminates it with the harness's server certificate and carries the request over mTLS to a server-side proxy in front of the app (sinew: its ingress gateway, a Gateway of GatewayClass sinew with an HTTPS listener, then the server's sidecar; nginx and HAProxy: the client-side instance of their S2 pair with a TLS front; go-revproxy the same). direct: HTTPS straight to the app's TLS port, the baseline of the added latency, so that added = what the edge hop costs beyond HTTPS itself. CPU is per proxy: the edge (front) instance and the server-side instance apart, both pinned to the proxy core.\n\n")
	if r.hasLatency(edgeScenario) {
		writeLatencyTable(b, r.Latency, edgeScenario, true)
		writeRatios(b, r.Latency, edgeScenario, true)
	}
	if len(r.EdgeKnee) > 0 {
		b.WriteString("Knee through the edge hop (S3's search, TLS from the client). The edge and the server-side proxy share the proxy core, so rps per proxy core = knee rps ÷ the cores both used; rps per edge core = knee rps ÷ the edge's cores alone, an extrapolation, since the edge never has the core to itself. The direct row is the harness's own ceiling (TLS client and app share one core); compare rps per proxy core between peers, not knee rps.\n\n")
		writeKnee(b, r.EdgeKnee, true)
	}
}

func (r *Report) hasLatency(sc string) bool {
	for _, row := range r.Latency {
		if row.Scenario == sc {
			return true
		}
	}
	return false
}

// writeKnee is a knee table: S3's, or with edge S12's, which adds the edge proxy's own cores and rps per edge core.
func writeKnee(b *strings.Builder, rows []KneeRow, edge bool) {
	head, rule := "| Peer | Low-load p99 | Closed-loop max rps | Knee rps | p99 at knee | Proxy cores at knee |", "|---|--:|--:|--:|--:|--:|"
	if edge {
		head, rule = "| Peer | Low-load p99 | Closed-loop max rps | Knee rps | p99 at knee | Proxy cores at knee (edge + server-side) | Edge cores at knee |", rule+"--:|"
	}
	head += " rps per proxy core |"
	rule += "--:|"
	if edge {
		head, rule = head+" rps per edge core |", rule+"--:|"
	}
	b.WriteString(head + " Stopped by | Errors | vs " + refPeer + " (rps/core) |\n" + rule + "---|--:|--:|\n")
	var ref float64
	for _, k := range rows {
		if k.Peer == refPeer {
			ref = k.RPSPerCore
		}
	}
	for _, k := range rows {
		cores, front, per, perFront, ratio := "—", "—", "—", "—", "—"
		if k.Peer != "direct" {
			cores = fmt.Sprintf("%.2f", k.ProxyCores)
			front = fmt.Sprintf("%.2f", k.FrontCores)
			per, perFront = rps(k.RPSPerCore), rps(k.RPSPerFrontCore)
			if ref > 0 && k.RPSPerCore > 0 {
				ratio = fmt.Sprintf("%.2f×", k.RPSPerCore/ref)
			}
		}
		stop := k.StoppedBy
		if k.HarnessBound {
			stop += " (harness-bound)"
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s |", esc(k.Peer), ms(k.LowLoadP99), rps(k.ClosedMax), rps(k.KneeRPS), ms(k.P99AtKnee), cores)
		if edge {
			fmt.Fprintf(b, " %s |", front)
		}
		fmt.Fprintf(b, " %s |", per)
		if edge {
			fmt.Fprintf(b, " %s |", perFront)
		}
		fmt.Fprintf(b, " %s | %d | %s |\n", esc(stop), k.Errors, ratio)
	}
	b.WriteString("\n")
}

func writeTCP(b *strings.Builder, rows []TCPRow) {
	b.WriteString("## S6 — opaque TCP to an echo server\n\n")
	b.WriteString("Throughput: one connection writing 64 KiB chunks while reading the echo back; Gbit/s of bytes echoed (each byte crosses every hop twice). Ping-pong: one byte sent and awaited, back to back on one connection (closed loop). Proxy cores: CPU-s of all the instance's proxies per second of the throughput run (they share one core).\n\n")
	b.WriteString("| Peer | Mode | Gbit/s | Proxy cores | ping p50 | ping p99 | ping p99.9 | ping max | +p50 vs direct | +p99 vs direct | Peak RSS/proxy | Errors | Status |\n")
	b.WriteString("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|\n")
	for _, t := range rows {
		status, cores := "ok", "—"
		if t.Failed != "" {
			status = "FAILED: " + t.Failed
		}
		if t.Proxies > 0 {
			cores = fmt.Sprintf("%.2f", t.ProxyCores)
		}
		fmt.Fprintf(b, "| %s | %s | %.2f | %s | %s | %s | %s | %s | %s | %s | %s | %d | %s |\n", esc(t.Peer), esc(t.Mode), t.Gbps, cores,
			ms(t.PingP50), ms(t.PingP99), ms(t.PingP999), ms(t.PingMax), addMs(t.AddPingP50), addMs(t.AddPingP99), mb(t.PeakRSS), t.Errors, esc(status))
	}
	b.WriteString("\n")
}

func writeChurn(b *strings.Builder, rows []ChurnRow) {
	b.WriteString("## S10 — endpoint and route churn under S2 load\n\n")
	b.WriteString("Meshed hop under S2's load while a standby server proxy moves in and out of the target Services' endpoints and the HTTPRoute's split weights are rewritten (90/10 → 10/90 → 50/50 → …). Passes with zero errors. Standby served = requests the standby's proxy took in during the window (the endpoint changes reached the client proxy); split = the client proxy's requests per backend of the route during the window (the weight changes reached it).\n\n")
	b.WriteString("| Peer | Conns | Target rps | Achieved rps | Window | Requests | p50 | p99 | p99.9 | max | Endpoint changes | Route changes | Standby served | Split | Errors | Status |\n")
	b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|---|\n")
	for _, c := range rows {
		status := "ok"
		if c.Failed != "" {
			status = "FAILED: " + c.Failed
		}
		var split []string
		for _, k := range sortedKeys(c.BackendRequests) {
			split = append(split, fmt.Sprintf("%s %d", k, c.BackendRequests[k]))
		}
		if len(split) == 0 {
			split = []string{"—"}
		}
		fmt.Fprintf(b, "| %s | %d | %s | %s | %s | %d | %s | %s | %s | %s | %d (every %s) | %d (every %s) | %d | %s | %d | %s |\n", esc(c.Peer),
			c.Conns, rps(c.Rate), rps(c.Achieved), esc(c.Duration), c.Requests, ms(c.P50), ms(c.P99), ms(c.P999), ms(c.Max),
			c.EndpointChanges, esc(c.EndpointEvery), c.RouteChanges, esc(c.RouteEvery), c.StandbyRequests, esc(strings.Join(split, ", ")), c.Errors, esc(status))
	}
	b.WriteString("\n")
}

func writeSoak(b *strings.Builder, rows []SoakRow) {
	b.WriteString("## S9 — soak at half the knee, one proxy hop\n\n")
	b.WriteString("Target: p99.9 ≤ 2× p99 and RSS flat. Worst window = the highest p99.9 of any sampling window; RSS is sampled at the end of every window (per-window figures in the JSON).\n\n")
	b.WriteString("| Peer | Knee rps (from) | Rate | Duration | p50 | p99 | p99.9 | max | p99.9 / p99 | Worst window p99.9 | RSS start | RSS end | RSS max sampled | Errors | Status |\n")
	b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|\n")
	for _, s := range rows {
		ratio, worst := "—", 0.0
		if s.P99 > 0 {
			ratio = fmt.Sprintf("%.2f×", s.P999/s.P99)
		}
		var rssMax int64
		for _, w := range s.Windows {
			worst = math.Max(worst, w.P999)
			if w.RSS > rssMax {
				rssMax = w.RSS
			}
		}
		status := "ok"
		if s.Failed != "" {
			status = "FAILED: " + s.Failed
		}
		fmt.Fprintf(b, "| %s | %s (%s) | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d | %s |\n", esc(s.Peer),
			rps(s.KneeRPS), esc(s.KneeFrom), rps(s.Rate), esc(s.Duration), ms(s.P50), ms(s.P99), ms(s.P999), ms(s.Max), ratio,
			ms(worst), mb(s.RSSStart), mb(s.RSSEnd), mb(rssMax), s.Errors, esc(status))
	}
	b.WriteString("\n")
}

// writeRatios compares each peer's added latency and CPU with the reference peer's in the same cell; with edge,
// the CPU compared is the edge proxy's alone (S12), otherwise the pair's mean.
func writeRatios(b *strings.Builder, rows []LatencyRow, sc string, edge bool) {
	ref := cells(rows, sc, refPeer)
	if len(ref) == 0 {
		return
	}
	fmt.Fprintf(b, "Ratios vs %s (same cell, same rounds; < 1 is better than %s; no latency ratio when %s adds < %d µs):\n\n", refPeer, refPeer, refPeer, noiseFloorUS)
	cpuHead, cpuOf := "CPU/req", func(r LatencyRow) *float64 { return r.CPUPer1k }
	if edge {
		cpuHead, cpuOf = "edge CPU/req", func(r LatencyRow) *float64 { return r.FrontCPUPer1k }
	}
	b.WriteString("| Peer | Conns | Target rps | added p50 | added p99 | " + cpuHead + " |\n|---|--:|--:|--:|--:|--:|\n")
	for _, r := range rows {
		if r.Scenario != sc || r.Peer == refPeer || r.Peer == "direct" {
			continue
		}
		n, ok := ref[cellOf(r)]
		if !ok {
			continue
		}
		fmt.Fprintf(b, "| %s | %d | %s | %s | %s | %s |\n", esc(rowLabel(r)), r.Conns, rps(r.Rate),
			ratio(r.AddP50, n.AddP50), ratio(r.AddP99, n.AddP99), cpuRatio(cpuOf(r), cpuOf(n)))
	}
	b.WriteString("\n")
}

// cell names a row's place in its scenario's table: the variant (payload, protocol), connections and rate.
type cell struct {
	variant string
	conns   int
	rate    float64
}

func cellOf(r LatencyRow) cell { return cell{r.Variant, r.Conns, r.Rate} }

// cells indexes peer's rows of scenario sc by cell.
func cells(rows []LatencyRow, sc, peer string) map[cell]LatencyRow {
	out := map[cell]LatencyRow{}
	for _, r := range rows {
		if r.Scenario == sc && r.Peer == peer {
			out[cellOf(r)] = r
		}
	}
	return out
}

// rowLabel is a row's peer, with its variant when it has one.
func rowLabel(r LatencyRow) string {
	if r.Variant != "" {
		return r.Peer + " (" + r.Variant + ")"
	}
	return r.Peer
}

// basePeer is the peer that sinew's variants (sinew-authz, sinew-routes: "sinew-" and what they add) are
// compared with: the same mesh without their policy or routes.
const basePeer = "sinew"

// writeVariantRatios compares each sinew variant with plain sinew in the same cell: what its policy or routes
// cost.
func writeVariantRatios(b *strings.Builder, rows []LatencyRow, sc string) {
	base := cells(rows, sc, basePeer)
	var lines []string
	for _, r := range rows {
		n, ok := base[cellOf(r)]
		if r.Scenario != sc || !strings.HasPrefix(r.Peer, basePeer+"-") || !ok {
			continue
		}
		lines = append(lines, fmt.Sprintf("| %s | %d | %s | %s | %s | %s | %s | %s |\n", esc(rowLabel(r)), r.Conns, rps(r.Rate),
			plainRatio(r.P50, n.P50), plainRatio(r.P99, n.P99), ratio(r.AddP50, n.AddP50), ratio(r.AddP99, n.AddP99), cpuRatio(r.CPUPer1k, n.CPUPer1k)))
	}
	if len(lines) == 0 {
		return
	}
	fmt.Fprintf(b, "Variants vs %s (same cell, same rounds; what the variant's policy or routes cost; > 1 is slower than %s; no added-latency ratio when %s adds < %d µs):\n\n", basePeer, basePeer, basePeer, noiseFloorUS)
	b.WriteString("| Peer | Conns | Target rps | p50 | p99 | added p50 | added p99 | CPU/req |\n|---|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, l := range lines {
		b.WriteString(l)
	}
	b.WriteString("\n")
}

func plainRatio(a, b float64) string {
	if a <= 0 || b <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

// noiseFloorUS is the smallest added latency used as a ratio's denominator: below it the reference's
// added latency is indistinguishable from run-to-run jitter and a ratio would only amplify noise.
const noiseFloorUS = 20

func ratio(a, b *float64) string {
	if a == nil || b == nil || *a < 0 {
		return "—"
	}
	if *b < noiseFloorUS {
		return "n/a (ref ≈ 0)"
	}
	return fmt.Sprintf("%.2f×", *a / *b)
}

func cpuRatio(a, b *float64) string {
	if a == nil || b == nil || *b <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f×", *a / *b)
}

func latencyScenarios(rows []LatencyRow) []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range rows {
		if !seen[r.Scenario] {
			seen[r.Scenario] = true
			out = append(out, r.Scenario)
		}
	}
	sort.Slice(out, func(i, j int) bool { return scenarioLess(out[i], out[j]) })
	return out
}

// scenarioLess orders scenario IDs by number (S2 before S12), then by name.
func scenarioLess(a, b string) bool {
	num := func(s string) int {
		n, err := strconv.Atoi(strings.TrimPrefix(s, "S"))
		if err != nil {
			return math.MaxInt
		}
		return n
	}
	if na, nb := num(a), num(b); na != nb {
		return na < nb
	}
	return a < b
}

func sortedKeys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func esc(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "|", `\|`), "\n", " ") }

// ms formats microseconds as milliseconds with three decimals (µs resolution).
func ms(us float64) string { return fmt.Sprintf("%.3f ms", us/1000) }

func addMs(us *float64) string {
	if us == nil {
		return "—"
	}
	return fmt.Sprintf("%+.3f ms", *us/1000)
}

func rps(v float64) string {
	if v == 0 {
		return "—"
	}
	return fmt.Sprintf("%.0f", math.Round(v))
}

func cpu(v *float64) string {
	if v == nil {
		return "—"
	}
	return fmt.Sprintf("%.3f", *v)
}

func mb(b int64) string {
	if b <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f MB", float64(b)/1e6)
}

func signedMB(b *int64) string {
	if b == nil {
		return "—"
	}
	return fmt.Sprintf("%+.1f MB", float64(*b)/1e6)
}

func bytesPer(v float64) string {
	if v == 0 || math.IsNaN(v) {
		return "—"
	}
	if math.Abs(v) >= 10000 {
		return fmt.Sprintf("%.1f KB", v/1000)
	}
	return fmt.Sprintf("%.0f B", v)
}
