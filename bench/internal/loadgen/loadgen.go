// Package loadgen is the benchmark's HTTP/1.1 load generator.
//
// It keeps a fixed set of keep-alive connections open and drives them either open-loop at a constant rate
// (Run) or closed-loop as fast as the target answers (RunClosed). In open-loop mode request i has an
// intended send time start+i/rate fixed before the run begins, and its latency is measured from that
// intended time, not from when a connection was free to send it: a stall in the target therefore shows up
// in the latency of every request scheduled behind it (no coordinated omission, as in wrk2).
//
// RunFunc paces any other call (HTTP/2, gRPC) the same way; PingPong and Throughput drive opaque TCP
// against an echo server, closed loop by nature.
//
// It must not measure anything other than the client-observed outcome of each request; process CPU and
// memory are read elsewhere (package procstat).
package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram bounds: microsecond resolution, up to one minute, three significant figures.
const (
	histMinUS = 1
	histMaxUS = 60_000_000
	histSig   = 3
)

// NewHistogram returns an empty latency histogram in microseconds.
func NewHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(histMinUS, histMaxUS, histSig)
}

// Config describes the target and the shape of each request.
type Config struct {
	Addr string // host:port of the first hop
	Host string // Host header; defaults to Addr
	Path string // request path; defaults to "/"
	// Authorization, when set, is sent as every request's Authorization header (sinew-authz's bearer token).
	Authorization string
	Conns         int           // keep-alive connections
	BodySize      int           // request body bytes (POST when > 0, GET otherwise)
	Timeout       time.Duration // per-request deadline; defaults to 10 s
	DialTimeout   time.Duration // defaults to 5 s
	// NewConnPerRequest sends "Connection: close" and dials a fresh connection for every request, inside
	// the measured time (S7: connection setup is what is measured). Nothing is dialled up front.
	NewConnPerRequest bool
	// TLS, when set, wraps every connection in a TLS client (ServerName defaults to Addr's host); with
	// no ClientSessionCache every dial is a full handshake.
	TLS *tls.Config
}

// Result is the outcome of one Run or RunClosed.
type Result struct {
	Hist       *hdrhistogram.Histogram // latency in µs from intended send time (open loop) or actual send (closed)
	SendLag    *hdrhistogram.Histogram // open loop: µs from intended send time to the write (queueing + pacing)
	Requests   int64                   // responses received (any status)
	Non2xx     int64
	ConnErrors int64         // dial, write, read or parse failures
	Unsent     int64         // open loop: scheduled requests never sent before the drain deadline
	Elapsed    time.Duration // from start to the last completed response
	Target     float64       // requested rate (0 for closed loop)
}

// Achieved is the completed 2xx+non-2xx responses per second over the run.
func (r Result) Achieved() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests) / r.Elapsed.Seconds()
}

// Errors is every request that did not end in a 2xx response.
func (r Result) Errors() int64 { return r.Non2xx + r.ConnErrors + r.Unsent }

// Generator owns the connections. It is not safe for concurrent Runs.
type Generator struct {
	cfg   Config
	req   []byte
	conns []*conn
}

type conn struct {
	nc net.Conn
	br *bufio.Reader
}

// New dials cfg.Conns connections up front so that connection setup is never inside a measured request.
func New(ctx context.Context, cfg Config) (*Generator, error) {
	if cfg.Conns <= 0 {
		cfg.Conns = 1
	}
	if cfg.Host == "" {
		cfg.Host = cfg.Addr
	}
	if cfg.Path == "" {
		cfg.Path = "/"
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	if cfg.TLS != nil && cfg.TLS.ServerName == "" {
		cfg.TLS = cfg.TLS.Clone()
		cfg.TLS.ServerName, _, _ = net.SplitHostPort(cfg.Addr)
	}
	g := &Generator{cfg: cfg, req: buildRequest(cfg.Host, cfg.Path, cfg.Authorization, cfg.BodySize, cfg.NewConnPerRequest)}
	if cfg.NewConnPerRequest {
		g.conns = make([]*conn, cfg.Conns) // nil slots: every request dials
		return g, nil
	}
	for i := 0; i < cfg.Conns; i++ {
		c, err := g.dial(ctx)
		if err != nil {
			g.Close()
			return nil, fmt.Errorf("dial connection %d of %d to %s: %w", i+1, cfg.Conns, cfg.Addr, err)
		}
		g.conns = append(g.conns, c)
	}
	return g, nil
}

// BuildRequest renders one HTTP/1.1 request with a body of n bytes ('x').
func BuildRequest(host, path string, n int) []byte {
	return buildRequest(host, path, "", n, false)
}

func buildRequest(host, path, authorization string, n int, closeConn bool) []byte {
	var b bytes.Buffer
	method := "GET"
	if n > 0 {
		method = "POST"
	}
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: sinew-bench\r\n", method, path, host)
	if authorization != "" {
		fmt.Fprintf(&b, "Authorization: %s\r\n", authorization)
	}
	if closeConn {
		b.WriteString("Connection: close\r\n")
	}
	if n > 0 {
		fmt.Fprintf(&b, "Content-Type: application/octet-stream\r\nContent-Length: %d\r\n", n)
	}
	b.WriteString("\r\n")
	b.Write(bytes.Repeat([]byte{'x'}, n))
	return b.Bytes()
}

func (g *Generator) dial(ctx context.Context) (*conn, error) {
	d := net.Dialer{Timeout: g.cfg.DialTimeout}
	nc, err := d.DialContext(ctx, "tcp", g.cfg.Addr)
	if err != nil {
		return nil, err
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	if g.cfg.TLS != nil {
		tc := tls.Client(nc, g.cfg.TLS)
		hctx, cancel := context.WithTimeout(ctx, g.cfg.DialTimeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			_ = nc.Close()
			return nil, err
		}
		nc = tc
	}
	return &conn{nc: nc, br: bufio.NewReaderSize(nc, 16<<10)}, nil
}

// Close closes every connection.
func (g *Generator) Close() {
	for _, c := range g.conns {
		if c != nil {
			_ = c.nc.Close()
		}
	}
	g.conns = nil
}

// roundTrip sends one request and reads the full response. reuse is false when the connection must be
// redialled (error or Connection: close).
func (g *Generator) roundTrip(c *conn) (status int, reuse bool, err error) {
	_ = c.nc.SetDeadline(time.Now().Add(g.cfg.Timeout))
	if _, err := c.nc.Write(g.req); err != nil {
		return 0, false, err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return 0, false, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, false, err
	}
	return resp.StatusCode, !resp.Close, nil
}

type worker struct {
	hist       *hdrhistogram.Histogram
	lag        *hdrhistogram.Histogram
	requests   int64
	non2xx     int64
	connErrors int64
	last       time.Time
}

// do performs one request on conn slot i, redialling when needed, and returns whether a response arrived.
func (g *Generator) do(ctx context.Context, i int, w *worker) bool {
	c := g.conns[i]
	if c == nil {
		nc, err := g.dial(ctx)
		if err != nil {
			w.connErrors++
			return false
		}
		g.conns[i], c = nc, nc
	}
	status, reuse, err := g.roundTrip(c)
	if err != nil {
		w.connErrors++
		_ = c.nc.Close()
		g.conns[i] = nil
		return false
	}
	if !reuse || g.cfg.NewConnPerRequest {
		_ = c.nc.Close()
		g.conns[i] = nil
	}
	w.requests++
	if status < 200 || status > 299 {
		w.non2xx++
	}
	return true
}

// Run drives the connections open-loop at rate requests/s for d. A pacer releases request n at
// start+n/rate; a free connection takes it and latency counts from that intended time, so requests queued
// behind a slow response are charged for the wait. Requests still unsent at d+drain are counted as Unsent
// (the target is saturated) rather than silently dropped.
func (g *Generator) Run(ctx context.Context, rate float64, d time.Duration) Result {
	return openLoop(ctx, rate, d, len(g.conns), func(i int, w *worker) bool { return g.do(ctx, i, w) })
}

// openLoop runs n workers open loop at rate for d: a pacer releases call k at start+k/rate, a free worker
// takes it, and when do says the call completed its latency counts from that intended time. Calls still
// unsent at d+drain are counted as Unsent. do does its own accounting of requests and errors in w.
func openLoop(ctx context.Context, rate float64, d time.Duration, n int, do func(i int, w *worker) bool) Result {
	total := max(int64(rate*d.Seconds()), 1)
	interval := time.Duration(float64(time.Second) / rate)
	drain := max(d, 2*time.Second)
	queue := make(chan int64, min(total, 1<<16))
	start := time.Now().Add(time.Millisecond)
	hardStop := start.Add(d + drain)
	var unsent atomic.Int64
	workers := make([]*worker, n)
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{hist: NewHistogram(), lag: NewHistogram()}
		workers[i] = w
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for k := range queue {
				if ctx.Err() != nil || time.Now().After(hardStop) {
					unsent.Add(1)
					continue
				}
				intended := start.Add(time.Duration(k) * interval)
				_ = w.lag.RecordValue(clampUS(time.Since(intended)))
				if do(i, w) {
					now := time.Now()
					_ = w.hist.RecordValue(clampUS(now.Sub(intended)))
					w.last = now
				}
			}
		}(i)
	}
	released := pace(ctx, start, interval, total, hardStop, queue)
	close(queue)
	wg.Wait()
	res := merge(workers, start)
	res.Target = rate
	res.Unsent = unsent.Load() + (total - released)
	return res
}

// RunClosed drives every connection back-to-back for d and records latency from the actual send time.
func (g *Generator) RunClosed(ctx context.Context, d time.Duration) Result {
	start := time.Now()
	end := start.Add(d)
	workers := make([]*worker, len(g.conns))
	var wg sync.WaitGroup
	for i := range g.conns {
		w := &worker{hist: NewHistogram()}
		workers[i] = w
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for ctx.Err() == nil && time.Now().Before(end) {
				t0 := time.Now()
				if g.do(ctx, i, w) {
					now := time.Now()
					_ = w.hist.RecordValue(clampUS(now.Sub(t0)))
					w.last = now
				}
			}
		}(i)
	}
	wg.Wait()
	return merge(workers, start)
}

// Prime sends one request on every connection from index from on (used to make idle connections fully
// established through a proxy, including its upstream side) with at most par in flight.
func (g *Generator) Prime(ctx context.Context, from, par int) Result {
	if par <= 0 {
		par = 1
	}
	start := time.Now()
	workers := make([]*worker, par)
	var next atomic.Int64
	next.Store(int64(from))
	var wg sync.WaitGroup
	for p := 0; p < par; p++ {
		w := &worker{hist: NewHistogram()}
		workers[p] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(g.conns) {
					return
				}
				t0 := time.Now()
				if g.do(ctx, i, w) {
					now := time.Now()
					_ = w.hist.RecordValue(clampUS(now.Sub(t0)))
					w.last = now
				}
			}
		}()
	}
	wg.Wait()
	return merge(workers, start)
}

// Grow dials more connections so that the generator holds n in total (with at most par dials in flight).
func (g *Generator) Grow(ctx context.Context, n, par int) error {
	if n <= len(g.conns) {
		return nil
	}
	old := len(g.conns)
	g.conns = append(g.conns, make([]*conn, n-old)...)
	var next atomic.Int64
	next.Store(int64(old))
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for p := 0; p < par; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				c, err := g.dial(ctx)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				g.conns[i] = c
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return fmt.Errorf("grow to %d connections: %w", n, firstErr)
	}
	return ctx.Err()
}

// Len is the number of connection slots.
func (g *Generator) Len() int { return len(g.conns) }

func merge(workers []*worker, start time.Time) Result {
	res := Result{Hist: NewHistogram(), SendLag: NewHistogram()}
	var last time.Time
	for _, w := range workers {
		res.Hist.Merge(w.hist)
		if w.lag != nil {
			res.SendLag.Merge(w.lag)
		}
		res.Requests += w.requests
		res.Non2xx += w.non2xx
		res.ConnErrors += w.connErrors
		if w.last.After(last) {
			last = w.last
		}
	}
	if !last.IsZero() {
		res.Elapsed = last.Sub(start)
	}
	return res
}

func clampUS(d time.Duration) int64 {
	us := d.Microseconds()
	if us < histMinUS {
		us = histMinUS
	}
	if us > histMaxUS {
		us = histMaxUS
	}
	return us
}

// Summary is the part of a histogram that the report shows, in microseconds.
type Summary struct {
	P50  float64 `json:"p50_us"`
	P90  float64 `json:"p90_us"`
	P99  float64 `json:"p99_us"`
	P999 float64 `json:"p999_us"`
	Max  float64 `json:"max_us"`
	N    int64   `json:"samples"`
}

// Summarize extracts the reported percentiles.
func Summarize(h *hdrhistogram.Histogram) Summary {
	return Summary{
		P50:  float64(h.ValueAtQuantile(50)),
		P90:  float64(h.ValueAtQuantile(90)),
		P99:  float64(h.ValueAtQuantile(99)),
		P999: float64(h.ValueAtQuantile(99.9)),
		Max:  float64(h.Max()),
		N:    h.TotalCount(),
	}
}

// ParseRate is a helper for flags like "1000" or "2k".
func ParseRate(s string) (float64, error) {
	mult := 1.0
	if n := len(s); n > 0 && (s[n-1] == 'k' || s[n-1] == 'K') {
		mult, s = 1000, s[:n-1]
	}
	v, err := strconv.ParseFloat(s, 64)
	return v * mult, err
}
