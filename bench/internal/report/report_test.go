package report

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/sinewmesh/sinew/internal/golden"
)

func f(v float64) *float64 { return &v }

func i64(v int64) *int64 { return &v }

func sample() *Report {
	return &Report{
		Mode: "quick", Date: "2026-01-02T03:04:05Z", Command: "go run ./bench/cmd/sinew-bench -quick",
		Machine:   Machine{CPUModel: "Test CPU", Cores: 2, Kernel: "6.0.0", MemTotal: "8000000 kB"},
		GoVersion: "go1.26.0", Commit: "abc1234", Rounds: 2, Duration: "3m0s",
		Versions: map[string]string{"nginx": "nginx/1.22.1", "haproxy": "HAProxy version 2.6"},
		Method:   []string{"proxies pinned to core 0"},
		Skipped: []Skip{{Scenario: "S1", Peer: "sinew", Reason: "cmd/sinew-proxy does not exist yet"},
			{Scenario: "S2", Peer: "sinew", Reason: "cmd/sinew-proxy does not exist yet"},
			{Scenario: "S2", Peer: "haproxy", Reason: "start failed: exit status 1"}},
		Latency: []LatencyRow{
			{Scenario: "S1", Peer: "direct", Conns: 16, Rate: 1000, Achieved: 999.6, P50: 80, P99: 200, P999: 400, Max: 900, Rounds: 2},
			{Scenario: "S1", Peer: "nginx", Conns: 16, Rate: 1000, Achieved: 1000, P50: 120, P99: 300, P999: 600, Max: 1500,
				AddP50: f(40), AddP99: f(100), CPUPer1k: f(0.025), PeakRSS: 19_800_000, Proxies: 1, Rounds: 2},
			{Scenario: "S1", Peer: "go-revproxy", Conns: 16, Rate: 1000, Achieved: 1000, P50: 150, P99: 500, P999: 900, Max: 2500,
				AddP50: f(70), AddP99: f(300), CPUPer1k: f(0.07), PeakRSS: 14_400_000, Proxies: 1, Rounds: 2},
			{Scenario: "S1", Peer: "direct", Conns: 100, Rate: 2000, Achieved: 2000, P50: 70, P99: 190, P999: 400, Max: 900, Rounds: 2},
			{Scenario: "S1", Peer: "nginx", Conns: 100, Rate: 2000, Achieved: 2000, P50: 150, P99: 200, P999: 600, Max: 1500,
				AddP50: f(80), AddP99: f(10), CPUPer1k: f(0.04), PeakRSS: 19_900_000, Proxies: 1, Rounds: 2},
			{Scenario: "S1", Peer: "go-revproxy", Conns: 100, Rate: 2000, Achieved: 2000, P50: 150, P99: 370, P999: 900, Max: 2500,
				AddP50: f(80), AddP99: f(180), CPUPer1k: f(0.1), PeakRSS: 15_100_000, Proxies: 1, Rounds: 2},
			{Scenario: "S2", Peer: "direct", Conns: 1, Rate: 1000, Achieved: 1000, P50: 80, P99: 210, P999: 410, Max: 800, Rounds: 2},
			{Scenario: "S2", Peer: "haproxy", Conns: 1, Rate: 1000, Achieved: 702, P50: 5000, P99: 90000, P999: 95000, Max: 99000,
				AddP50: f(4920), AddP99: f(89790), CPUPer1k: f(0.05), PeakRSS: 22_000_000, Proxies: 2, Errors: 12, Rounds: 2,
				Failed: "3 connection errors, 9 non-2xx"},
			{Scenario: "S2", Peer: "sinew", Conns: 1, Rate: 1000, Achieved: 1000, P50: 400, P99: 900, P999: 1500, Max: 2000,
				AddP50: f(320), AddP99: f(690), CPUPer1k: f(0.13), PeakRSS: 23_000_000, Proxies: 2, Rounds: 2},
			{Scenario: "S2", Peer: "sinew-routes", Conns: 1, Rate: 1000, Achieved: 1000, P50: 440, P99: 1000, P999: 1600, Max: 2100,
				AddP50: f(360), AddP99: f(790), CPUPer1k: f(0.143), PeakRSS: 23_500_000, Proxies: 2, Rounds: 2},
			{Scenario: "S5", Peer: "direct", Variant: "0 B response", Conns: 4, Rate: 500, Achieved: 500, P50: 90, P99: 300, P999: 500, Max: 700, Rounds: 2},
			{Scenario: "S5", Peer: "nginx", Variant: "0 B response", Conns: 4, Rate: 500, Achieved: 500, P50: 300, P99: 900, P999: 1500, Max: 2000,
				AddP50: f(210), AddP99: f(600), CPUPer1k: f(0.05), PeakRSS: 24_800_000, RSSGrowth: i64(0), Proxies: 2, Rounds: 2},
			{Scenario: "S5", Peer: "direct", Variant: "1 MiB upload", Conns: 4, Rate: 20, Achieved: 20, P50: 900, P99: 4000, P999: 4000, Max: 4000, Rounds: 2},
			{Scenario: "S5", Peer: "nginx", Variant: "1 MiB upload", Conns: 4, Rate: 20, Achieved: 20, P50: 44000, P99: 51000, P999: 51000, Max: 51000,
				AddP50: f(43100), AddP99: f(47000), CPUPer1k: f(2), PeakRSS: 24_900_000, RSSGrowth: i64(100_000), Proxies: 2, Rounds: 2},
			{Scenario: "S12", Peer: "direct", Conns: 16, Rate: 1000, Achieved: 1000, P50: 95, P99: 260, P999: 500, Max: 900, Rounds: 2},
			{Scenario: "S12", Peer: "nginx", Conns: 16, Rate: 1000, Achieved: 1000, P50: 260, P99: 600, P999: 1100, Max: 2000,
				AddP50: f(165), AddP99: f(340), CPUPer1k: f(0.08), FrontCPUPer1k: f(0.09), BackCPUPer1k: f(0.07), PeakRSS: 25_000_000, Proxies: 2, Rounds: 2},
			{Scenario: "S12", Peer: "sinew", Conns: 16, Rate: 1000, Achieved: 1000, P50: 430, P99: 1300, P999: 2500, Max: 4000,
				AddP50: f(335), AddP99: f(1040), CPUPer1k: f(0.16), FrontCPUPer1k: f(0.18), BackCPUPer1k: f(0.14), PeakRSS: 24_000_000, Proxies: 2, Rounds: 2},
		},
		TCP: []TCPRow{
			{Peer: "direct", Mode: "pair, mTLS between", Gbps: 8.5, PingP50: 9, PingP99: 45, PingP999: 80, PingMax: 300, Rounds: 2},
			{Peer: "haproxy", Mode: "pair, mTLS between", Gbps: 0.83, ProxyCores: 0.7, PingP50: 145, PingP99: 1392, PingP999: 6707, PingMax: 36063,
				AddPingP50: f(136), AddPingP99: f(1300), PeakRSS: 21_200_000, Proxies: 2, Rounds: 2},
			{Peer: "nginx", Mode: "pair, mTLS between", Proxies: 2, Rounds: 2, Errors: 1, Failed: "throughput: i/o timeout"},
		},
		Soak: []SoakRow{
			{Peer: "nginx", KneeRPS: 8000, KneeFrom: "S3", Rate: 4000, Duration: "10m0s", P50: 200, P99: 900, P999: 2500, Max: 9000,
				RSSStart: 20_000_000, RSSEnd: 20_100_000, PeakRSS: 21_000_000,
				Windows: []SoakWindow{{At: 30, Achieved: 4000, P99: 900, P999: 3000, Max: 9000, RSS: 20_050_000}, {At: 60, Achieved: 4000, P99: 880, P999: 2000, Max: 5000, RSS: 20_100_000}}},
			{Peer: "sinew", KneeFrom: "measured first", Errors: 1, Failed: "no knee (errors before or at the first step)"},
		},
		Churn: []ChurnRow{
			{Peer: "sinew", Conns: 16, Rate: 1000, Achieved: 1000, Duration: "15s", Requests: 15000, P50: 490, P99: 13071, P999: 39071, Max: 56127,
				EndpointEvery: "1s", RouteEvery: "5s", EndpointChanges: 15, RouteChanges: 3, StandbyRequests: 6292,
				BackendRequests: map[string]int64{"server-b": 7453, "server-a": 7547}, Proxies: 3},
			{Peer: "sinew", Conns: 16, Rate: 1000, Achieved: 990, Duration: "15s", Requests: 14900, EndpointEvery: "1s", RouteEvery: "5s",
				EndpointChanges: 15, RouteChanges: 3, Proxies: 3, Errors: 100, Failed: "0 connection errors, 100 non-2xx"},
		},
		Knee: []KneeRow{
			{Peer: "direct", LowLoadP99: 200, ClosedMax: 50000, KneeRPS: 25000, P99AtKnee: 900, StoppedBy: "p99 2.5 ms > 10× low-load at 30000 rps", Rounds: 1},
			{Peer: "nginx", LowLoadP99: 300, ClosedMax: 45000, KneeRPS: 20000, P99AtKnee: 1200, ProxyCores: 0.5, RPSPerCore: 40000,
				StoppedBy: "achieved 22000 of 25000 rps", HarnessBound: true, Rounds: 1},
			{Peer: "go-revproxy", LowLoadP99: 500, ClosedMax: 24000, KneeRPS: 20000, P99AtKnee: 3000, ProxyCores: 0.9, RPSPerCore: 22222,
				StoppedBy: "p99 6 ms > 10× low-load at 22000 rps", Rounds: 1},
		},
		EdgeKnee: []KneeRow{
			{Peer: "direct", LowLoadP99: 250, ClosedMax: 38000, KneeRPS: 28000, P99AtKnee: 1900, StoppedBy: "p99 3 ms > 10× low-load at 34000 rps", Rounds: 1},
			{Peer: "nginx", LowLoadP99: 400, ClosedMax: 21000, KneeRPS: 15700, P99AtKnee: 2100, ProxyCores: 0.7, FrontCores: 0.4, RPSPerCore: 22429,
				RPSPerFrontCore: 39250, StoppedBy: "p99 5 ms > 10× low-load at 18900 rps", HarnessBound: true, Rounds: 1},
			{Peer: "sinew", LowLoadP99: 700, ClosedMax: 10000, KneeRPS: 7500, P99AtKnee: 4000, ProxyCores: 0.95, FrontCores: 0.5, RPSPerCore: 7895,
				RPSPerFrontCore: 15000, StoppedBy: "achieved 8100 of 9000 rps", Rounds: 1},
		},
		Memory: []MemoryRow{
			{Peer: "nginx", Conns: []int{1, 1000, 9000}, RSS: []int64{19_800_000, 20_600_000, 25_000_000}, PerConn: 578, PeakRSS: 25_000_000},
			{Peer: "go-revproxy", Conns: []int{1, 1000}, RSS: []int64{8_600_000, 40_700_000}, PerConn: 32132, PeakRSS: 40_700_000,
				Errors: 1, Failed: "grow to 9000 connections: connection refused"},
		},
		Notes: []string{"a note"},
	}
}

func TestWriteMarkdownGolden(t *testing.T) {
	var b bytes.Buffer
	if err := WriteMarkdown(&b, sample()); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, filepath.Join("testdata", "report.md.golden"), b.Bytes())
}

func TestWriteJSONRoundTrips(t *testing.T) {
	var b bytes.Buffer
	in := sample()
	if err := WriteJSON(&b, in); err != nil {
		t.Fatal(err)
	}
	var out Report
	if err := json.Unmarshal(b.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Latency) != len(in.Latency) || *out.Latency[1].AddP99 != 100 || out.Knee[1].RPSPerCore != 40000 {
		t.Errorf("round trip lost data: %+v", out)
	}
}
