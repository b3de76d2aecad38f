package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sinewmesh/sinew/proxy"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// The tests in this file prove what a client's proxy does with the outbound policy a Service's annotations give
// it (docs/networking/retries-and-timeouts.md: retries within a budget, timeouts, failure accrual), and that a
// request that never reached an application is retried on another endpoint (docs/networking/data-path.md), all
// through real sidecars: client → outbound proxy → mTLS → inbound proxy → app.

// retry5xx retries every 5xx up to three times.
var retry5xx = map[string]string{"retry.sinew.dev/http": "5xx", "retry.sinew.dev/limit": "3"}

// testApp is an HTTP application that counts the requests it sees and names itself in x-served-by.
type testApp struct {
	name     string
	addr     string
	srv      *http.Server
	attempts atomic.Int64
}

// startApp serves h, which is also given the number of the request among those this app has seen, from 1.
func startApp(t testing.TB, name string, h func(w http.ResponseWriter, r *http.Request, n int64)) *testApp {
	t.Helper()
	ln := listen(t)
	a := &testApp{name: name, addr: ln.Addr().String()}
	a.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := a.attempts.Add(1)
		w.Header().Set("x-served-by", name)
		h(w, r, n)
	})}
	go a.srv.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { a.srv.Close() })
	return a
}

// halfFailing reads the request body, then fails every odd-numbered request with 500.
func halfFailing(w http.ResponseWriter, r *http.Request, n int64) {
	io.Copy(io.Discard, r.Body) //nolint:errcheck
	if n%2 == 1 {
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, "app: odd request fails") //nolint:errcheck
		return
	}
	io.WriteString(w, "app: ok") //nolint:errcheck
}

func answerOK(w http.ResponseWriter, _ *http.Request, _ int64) { io.WriteString(w, "app: ok") } //nolint:errcheck

// meshService is a Service whose endpoints are applications behind sidecars of their own, and a client sidecar
// whose outbound port leads to the Service.
type meshService struct {
	endpoints []*sidecar // in the order of the apps given to startService
	client    *sidecar
	outbound  string // the client's outbound listener
	url       string // http://outbound
}

// startService runs one sidecar per application as the workloads <name>-0, <name>-1… of Service <name> (port 80,
// annotated with annotations) and a client sidecar <name>-cli with an outbound port for <name>.test:80.
func startService(t testing.TB, m *mesh, name string, annotations map[string]string, apps ...string) *meshService {
	t.Helper()
	s := &meshService{}
	for i, app := range apps {
		wl := fmt.Sprintf("%s-%d", name, i)
		ep := m.sidecar(sidecarOpts{ns: "test", name: wl, sa: name + "-sa", inbound: []proxy.InboundPort{{Port: 8080, App: app}}})
		m.write(wl+".yaml", workloadYAML("test", wl, name+"-sa", name, ep.inboundPort(), 8080))
		s.endpoints = append(s.endpoints, ep)
	}
	m.write(name+"-svc.yaml", annotatedServiceYAML("test", name, name, 80, 8080, annotations))
	cli := name + "-cli"
	s.client = m.sidecar(sidecarOpts{ns: "test", name: cli, sa: "cli-sa", outbound: []string{name + ".test.svc.cluster.local:80"}})
	m.write(cli+".yaml", workloadYAML("test", cli, "cli-sa", cli, 0, 9))
	for _, ep := range s.endpoints {
		ep.waitReady(t)
	}
	s.client.waitReady(t)
	s.outbound = s.client.p.OutboundAddrs()[0]
	s.url = "http://" + s.outbound
	return s
}

// answer is what the client saw of one request.
type answer struct {
	status   int
	servedBy string // x-served-by: the app that answered
	proxyErr string // sinew-proxy-error: the proxy answered
	errorID  string // sinew-error-id
	body     string
}

func (a answer) String() string {
	return fmt.Sprintf("%d from %q (sinew-proxy-error %q): %q", a.status, a.servedBy, a.proxyErr, a.body)
}

func send(c *http.Client, req *http.Request) (answer, error) {
	resp, err := c.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return answer{
		status: resp.StatusCode, servedBy: resp.Header.Get("x-served-by"), proxyErr: resp.Header.Get("sinew-proxy-error"),
		errorID: resp.Header.Get("sinew-error-id"), body: string(b),
	}, err
}

func get(c *http.Client, url string) (answer, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return answer{}, err
	}
	return send(c, req)
}

// waitForRetries returns once the client's proxy retries for a Service whose app is halfFailing: then four
// requests in a row succeed, where without retries one in two fails.
func waitForRetries(t *testing.T, c *http.Client, url string) {
	t.Helper()
	eventually(t, 10*time.Second, "the retry policy reaches the client's proxy", func() error {
		for i := range 4 {
			a, err := get(c, url+"/warm-up")
			if err != nil {
				return err
			}
			if a.status != http.StatusOK {
				return fmt.Errorf("request %d of 4 in a row: %s", i+1, a)
			}
		}
		return nil
	})
}

// waitServedByAll returns once every named app has answered a request sent through url: the client's proxy then
// knows every endpoint.
func waitServedByAll(t *testing.T, c *http.Client, url string, apps ...string) {
	t.Helper()
	seen := map[string]bool{}
	eventually(t, 10*time.Second, "every endpoint receives traffic", func() error {
		a, err := get(c, url+"/discover")
		if err != nil {
			return err
		}
		seen[a.servedBy] = true
		for _, app := range apps {
			if !seen[app] {
				return fmt.Errorf("no answer from %s yet (last: %s)", app, a)
			}
		}
		return nil
	})
}

// TestRetriesHalfFailingBackend: a Service annotated to retry 5xx up to 3 times, whose one endpoint fails every
// second request it sees. Requests sent one at a time then all succeed: each one's first attempt fails, its retry
// succeeds, so the app sees exactly two attempts per request.
//
// The load is paced at 8 requests a second to stay inside the retry budget (20 % of requests plus 10 a second):
// here every request needs a retry, so 2000 requests as fast as they go would spend it, and then one in two fails
// (by design: TestRetryBudgetSpent). At this pace, a budget like Linkerd's covers every retry.
func TestRetriesHalfFailingBackend(t *testing.T) {
	t.Parallel()
	m := startMesh(t, meshOpts{})
	app := startApp(t, "half", halfFailing)
	svc := startService(t, m, "half", retry5xx, app.addr)
	c := &http.Client{}
	waitForRetries(t, c, svc.url)

	const n = 100
	before := app.attempts.Load()
	pace := time.NewTicker(time.Second / 8)
	defer pace.Stop()
	var failed []string
	for i := range n {
		<-pace.C
		a, err := get(c, svc.url+"/r")
		if err != nil || a.status != http.StatusOK {
			failed = append(failed, fmt.Sprintf("request %d: %s %v", i, a, err))
		}
	}
	attempts := app.attempts.Load() - before
	t.Logf("%d requests, %d attempts at the app, %d failed", n, attempts, len(failed))
	// At least 99.9 % must succeed: with 100 requests, all of them.
	if len(failed) > n/1000 {
		t.Fatalf("%d of %d requests failed (want at most %d); first: %s", len(failed), n, n/1000, failed[0])
	}
	if attempts != 2*n {
		t.Fatalf("the app saw %d attempts for %d requests, want %d (each request's first attempt fails, its retry succeeds)",
			attempts, n, 2*n)
	}

	// The client's proxy shows the policy it applies.
	resp, err := http.Get("http://" + svc.client.p.AdminAddr() + "/debug/config")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var state struct {
		OutboundPolicies []struct {
			Target   string
			Answered bool
			Routes   []struct{ Rules []struct{ Retry string } }
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&state); err != nil {
		t.Fatal(err)
	}
	if ps := state.OutboundPolicies; len(ps) != 1 || !ps[0].Answered || len(ps[0].Routes) != 1 ||
		len(ps[0].Routes[0].Rules) != 1 || !strings.HasPrefix(ps[0].Routes[0].Rules[0].Retry, "up to 3") {
		t.Fatalf("/debug/config outbound policies: %+v", ps)
	}
}

// TestRetryBudgetSpent: with an app that always fails, retries stop when the budget is spent. Any 10 s window
// allows retries up to 20 % of its requests plus 100 (10 a second, Linkerd's reserve). The whole run, warm-up
// included, lasts 5 s and starts at most about a second after the client's proxy could have built its budget, so
// it fits in one window, even one kept in 1 s slots: the app sees at most requests × 1.2 + 100 attempts (and a
// little slack), where retrying every request 3 times would make it 4 × requests. Clients get the last attempt's
// answer: the app's 500.
func TestRetryBudgetSpent(t *testing.T) {
	t.Parallel()
	m := startMesh(t, meshOpts{})
	app := startApp(t, "broken", func(w http.ResponseWriter, _ *http.Request, _ int64) {
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, "app: always fails") //nolint:errcheck
	})
	svc := startService(t, m, "broken", retry5xx, app.addr)
	c := &http.Client{}
	var requests int64 // every request the client sent, warm-up included
	start := time.Now()
	eventually(t, 5*time.Second, "the retry policy reaches the client's proxy", func() error {
		before := app.attempts.Load()
		requests++
		a, err := get(c, svc.url+"/warm-up")
		if err != nil {
			return err
		}
		if got := app.attempts.Load() - before; got < 2 {
			return fmt.Errorf("one request, %d attempt at the app (%s)", got, a)
		}
		return nil
	})

	var wrong []string
	for time.Since(start) < 5*time.Second {
		requests++
		a, err := get(c, svc.url+"/b")
		if err != nil {
			t.Fatal(err)
		}
		if a.status != http.StatusInternalServerError || a.proxyErr != "" || a.body != "app: always fails" {
			wrong = append(wrong, a.String())
		}
	}
	elapsed := time.Since(start)
	attempts := app.attempts.Load()
	retries := attempts - requests
	t.Logf("%d requests, %d attempts at the app (%d retries) in %v", requests, attempts, retries, elapsed.Round(time.Millisecond))
	if len(wrong) > 0 {
		t.Errorf("%d answers were not the app's 500; first: %s", len(wrong), wrong[0])
	}
	if requests < 200 {
		t.Fatalf("only %d requests in %v: too few to tell a budget from none", requests, elapsed)
	}
	if most := requests/5 + 100 + 20; retries > most {
		t.Errorf("%d retries for %d requests in %v: the budget allows at most %d (20 %% of requests plus 100 in a 10 s window, plus slack)",
			retries, requests, elapsed.Round(time.Millisecond), most)
	}
	// Once spent, the budget refills with requests: retries go on at its rate, they do not stop altogether.
	if retries < requests/10 {
		t.Errorf("only %d retries for %d requests: want about 20 %% of requests retried", retries, requests)
	}
}

// bodyLog is an app that records the SHA-256 of every body it receives, by x-req-id, and is halfFailing.
type bodyLog struct {
	mu   sync.Mutex
	seen map[string][][sha256.Size]byte
}

func (l *bodyLog) handle(w http.ResponseWriter, r *http.Request, n int64) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if id := r.Header.Get("x-req-id"); id != "" {
		l.mu.Lock()
		l.seen[id] = append(l.seen[id], sha256.Sum256(b))
		l.mu.Unlock()
	}
	halfFailing(w, r, n)
}

func (l *bodyLog) attempts(id string) [][sha256.Size]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seen[id]
}

// TestRetriesReplayBodies: a request whose body fits in the replay buffer (64 KiB) is retried with the same
// bytes; one whose body outgrew it is not retried, so its client gets the app's 500.
func TestRetriesReplayBodies(t *testing.T) {
	t.Parallel()
	m := startMesh(t, meshOpts{})
	log := &bodyLog{seen: map[string][][sha256.Size]byte{}}
	app := startApp(t, "half", log.handle)
	svc := startService(t, m, "half", retry5xx, app.addr)
	c := &http.Client{}
	waitForRetries(t, c, svc.url)

	post := func(id string, body []byte) answer {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, svc.url+"/upload", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("x-req-id", id)
		a, err := send(c, req)
		if err != nil {
			t.Fatalf("POST %s: %v", id, err)
		}
		return a
	}

	t.Run("1 KiB bodies are replayed byte for byte", func(t *testing.T) {
		retried := 0
		for i := range 10 {
			body := make([]byte, 1024)
			rand.Read(body)
			id := fmt.Sprint("small-", i)
			if a := post(id, body); a.status != http.StatusOK {
				t.Errorf("POST %s: %s, want 200 after a retry", id, a)
			}
			got := log.attempts(id)
			if len(got) > 1 {
				retried++
			}
			for j, sum := range got {
				if sum != sha256.Sum256(body) {
					t.Errorf("POST %s: attempt %d of %d carried a different body", id, j+1, len(got))
				}
			}
		}
		if retried == 0 {
			t.Errorf("no 1 KiB POST was retried")
		}
	})

	t.Run("100 KiB bodies are not retried", func(t *testing.T) {
		failed := 0
		for i := range 10 {
			body := make([]byte, 100<<10)
			rand.Read(body)
			id := fmt.Sprint("big-", i)
			a := post(id, body)
			switch {
			case a.status == http.StatusInternalServerError && a.servedBy == "half" && a.proxyErr == "":
				failed++
			case a.status != http.StatusOK:
				t.Errorf("POST %s: %s, want the app's 200 or 500", id, a)
			}
			got := log.attempts(id)
			if len(got) != 1 {
				t.Errorf("POST %s reached the app %d times, want once: more than 64 KiB had been sent", id, len(got))
			}
			for _, sum := range got {
				if sum != sha256.Sum256(body) {
					t.Errorf("POST %s: the app got a different body", id)
				}
			}
		}
		// The app fails every second request, and nothing retries these.
		if failed == 0 {
			t.Errorf("no 100 KiB POST failed: they were retried")
		}
	})
}

// outcomes collects what slow handlers saw of the requests they served, by request id.
type outcomes chan outcome

type outcome struct{ id, what string }

func (o outcomes) report(id, what string) {
	select {
	case o <- outcome{id, what}:
	default: // nobody will ask about it
	}
}

// await returns what the handler saw of request id. Every slow handler reports within 5 s of its start.
func (o outcomes) await(t *testing.T, id string) string {
	t.Helper()
	for {
		select {
		case x := <-o:
			if x.id == id {
				return x.what
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("the app never reported on request %s", id)
		}
	}
}

// slowGRPC answers UnaryCall after 5 s unless the call is cancelled first; it reports which to outcomes, by the
// call's x-req-id metadata.
type slowGRPC struct {
	testpb.UnimplementedTestServiceServer
	seen outcomes
}

func (s slowGRPC) UnaryCall(ctx context.Context, _ *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	id := strings.Join(md.Get("x-req-id"), ",")
	select {
	case <-ctx.Done():
		s.seen.report(id, "cancelled")
		return nil, status.FromContextError(ctx.Err()).Err()
	case <-time.After(5 * time.Second):
		s.seen.report(id, "not cancelled: answered after 5 s")
		return &testpb.SimpleResponse{}, nil
	}
}

// TestTimeoutSlowBackend: a Service annotated with a 300 ms request timeout, in front of apps that take 5 s. The
// client's proxy answers 504 (gRPC: DEADLINE_EXCEEDED) on its own, through the one failure→status map, and
// cancels the request, which the app sees.
func TestTimeoutSlowBackend(t *testing.T) {
	t.Parallel()
	m := startMesh(t, meshOpts{})
	timeout := map[string]string{"timeout.sinew.dev/request": "300ms"}

	t.Run("HTTP", func(t *testing.T) {
		seen := make(outcomes, 64)
		app := startApp(t, "slow", func(w http.ResponseWriter, r *http.Request, _ int64) {
			id := r.Header.Get("x-req-id")
			select {
			case <-r.Context().Done():
				seen.report(id, "cancelled")
			case <-time.After(5 * time.Second):
				seen.report(id, "not cancelled: answered after 5 s")
				io.WriteString(w, "app: slow answer") //nolint:errcheck
			}
		})
		svc := startService(t, m, "slow", timeout, app.addr)
		req := func(id string) *http.Request {
			r, err := http.NewRequest(http.MethodGet, svc.url+"/slow", nil)
			if err != nil {
				t.Fatal(err)
			}
			r.Header.Set("x-req-id", id)
			return r
		}
		// The client gives up after 2 s while the policy is on its way; once it has arrived, the proxy answers.
		impatient := &http.Client{Timeout: 2 * time.Second}
		warmUp := 0
		eventually(t, 10*time.Second, "the timeout reaches the client's proxy", func() error {
			warmUp++
			a, err := send(impatient, req(fmt.Sprint("warm-up-", warmUp)))
			if err != nil {
				return fmt.Errorf("no answer before the client gave up: %w", err)
			}
			if a.status != http.StatusGatewayTimeout {
				return fmt.Errorf("%s, want 504", a)
			}
			return nil
		})
		// The client itself would wait for the app's answer: only the proxy can cut this request short.
		a, err := send(&http.Client{}, req("probe"))
		if err != nil {
			t.Fatal(err)
		}
		if a.status != http.StatusGatewayTimeout || a.proxyErr != "timeout" || a.errorID == "" {
			t.Errorf("got %s, sinew-error-id %q; want 504, sinew-proxy-error: timeout and an error id", a, a.errorID)
		}
		if what := seen.await(t, "probe"); what != "cancelled" {
			t.Errorf("the app's request: %s; want its context cancelled", what)
		}
	})

	t.Run("gRPC", func(t *testing.T) {
		seen := make(outcomes, 64)
		ln := listen(t)
		gs := grpc.NewServer()
		testpb.RegisterTestServiceServer(gs, slowGRPC{seen: seen})
		go gs.Serve(ln) //nolint:errcheck
		t.Cleanup(gs.Stop)
		svc := startService(t, m, "slowgrpc", timeout, ln.Addr().String())
		conn, err := grpc.NewClient(svc.outbound, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		client := testpb.NewTestServiceClient(conn)
		call := func(ctx context.Context, id string) error {
			_, err := client.UnaryCall(metadata.AppendToOutgoingContext(ctx, "x-req-id", id), &testpb.SimpleRequest{})
			return err
		}
		warmUp := 0
		eventually(t, 10*time.Second, "the timeout reaches the client's proxy", func() error {
			warmUp++
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			err := call(ctx, fmt.Sprint("warm-up-", warmUp))
			if ctx.Err() != nil {
				return fmt.Errorf("no answer before the client's own 2 s deadline: %v", err)
			}
			if status.Code(err) != codes.DeadlineExceeded {
				return fmt.Errorf("got %v, want DeadlineExceeded", err)
			}
			return nil
		})
		// No deadline of the client's own: only the proxy can cut this call short.
		if err := call(context.Background(), "probe"); status.Code(err) != codes.DeadlineExceeded {
			t.Errorf("got %v, want DeadlineExceeded", err)
		}
		if what := seen.await(t, "probe"); what != "cancelled" {
			t.Errorf("the app's call: %s; want its context cancelled", what)
		}
	})
}

// TestFailureAccrualEjectsFailingEndpoint: of two endpoints of a Service with consecutive failure accrual (3
// failures, penalties from 1 s to 10 s, no jitter), the one whose app always answers 503 is ejected and then only
// probed, once per penalty; when its app recovers, a probe succeeds and it takes traffic again.
func TestFailureAccrualEjectsFailingEndpoint(t *testing.T) {
	t.Parallel()
	m := startMesh(t, meshOpts{})
	var healthy atomic.Bool
	bad := startApp(t, "bad", func(w http.ResponseWriter, _ *http.Request, _ int64) {
		if !healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		io.WriteString(w, "app: bad") //nolint:errcheck
	})
	good := startApp(t, "good", answerOK)
	const minPenalty = time.Second
	svc := startService(t, m, "acc", map[string]string{
		"balancer.sinew.dev/failure-accrual":                          "consecutive",
		"balancer.sinew.dev/failure-accrual-consecutive-max-failures": "3",
		"balancer.sinew.dev/failure-accrual-consecutive-min-penalty":  minPenalty.String(),
		"balancer.sinew.dev/failure-accrual-consecutive-max-penalty":  "10s",
		"balancer.sinew.dev/failure-accrual-consecutive-jitter-ratio": "0",
	}, bad.addr, good.addr)
	c := &http.Client{}

	// Warm-up: the client's proxy knows both endpoints (each has had a request), and 20 requests in a row fail at
	// most once (a probe), where a balancer that sent the bad endpoint its share would fail about half of them.
	eventually(t, 10*time.Second, "the bad endpoint is ejected", func() error {
		failures := 0
		for range 20 {
			a, err := get(c, svc.url+"/warm-up")
			if err != nil {
				return err
			}
			if a.status != http.StatusOK {
				failures++
			}
		}
		if n := bad.attempts.Load(); n == 0 || good.attempts.Load() == 0 {
			return fmt.Errorf("bad endpoint saw %d requests, good %d: not both known yet", n, good.attempts.Load())
		}
		if failures > 1 {
			return fmt.Errorf("%d of 20 requests in a row failed", failures)
		}
		return nil
	})

	const n = 300
	before := bad.attempts.Load()
	t.Logf("warm-up: %d requests to the bad endpoint, %d to the good one", before, good.attempts.Load())
	start := time.Now()
	failed := 0
	for range n {
		a, err := get(c, svc.url+"/r")
		if err != nil {
			t.Fatal(err)
		}
		if a.status != http.StatusOK {
			failed++
			if a.servedBy != "bad" || a.status != http.StatusServiceUnavailable {
				t.Errorf("unexpected failure: %s", a)
			}
		}
	}
	elapsed := time.Since(start)
	toBad := bad.attempts.Load() - before
	// One probe per penalty at most, the penalty at least min-penalty; 3 failures per penalty if an
	// implementation counts to 3 again after each, and one more penalty for the edges.
	most := 3 * (int64(elapsed/minPenalty) + 2)
	t.Logf("%d requests in %v: %d to the bad endpoint, %d failed", n, elapsed.Round(time.Millisecond), toBad, failed)
	if toBad > most {
		t.Errorf("the ejected endpoint got %d of %d requests in %v, want at most %d (probes only)",
			toBad, n, elapsed.Round(time.Millisecond), most)
	}
	if failed > n/20 {
		t.Errorf("%d of %d requests failed, want at most 5 %%", failed, n)
	}

	// The app recovers: the next probe succeeds (penalties are at most 10 s) and the endpoint is back.
	healthy.Store(true)
	eventually(t, 15*time.Second, "the recovered endpoint takes traffic again", func() error {
		a, err := get(c, svc.url+"/r")
		if err != nil {
			return err
		}
		if a.status != http.StatusOK || a.servedBy != "bad" {
			return fmt.Errorf("last answer %s", a)
		}
		return nil
	})
}

// steadyLoad sends requests from several goroutines until stopped, counting successes and failures.
type steadyLoad struct {
	ok, failed atomic.Int64
	firstErr   atomic.Value
	stop       context.CancelFunc
	wg         sync.WaitGroup
}

func startLoad(url string, workers int) *steadyLoad {
	ctx, cancel := context.WithCancel(context.Background())
	l := &steadyLoad{stop: cancel}
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			c := &http.Client{}
			for ctx.Err() == nil {
				a, err := get(c, url+"/load")
				switch {
				case err != nil:
					l.failed.Add(1)
					l.firstErr.CompareAndSwap(nil, err.Error())
				case a.status != http.StatusOK:
					l.failed.Add(1)
					l.firstErr.CompareAndSwap(nil, a.String())
				default:
					l.ok.Add(1)
				}
			}
		}()
	}
	return l
}

// waitOK waits until n more requests succeeded (or any failed).
func (l *steadyLoad) waitOK(t *testing.T, n int64, what string) {
	t.Helper()
	target := l.ok.Load() + n
	eventually(t, 15*time.Second, what, func() error {
		if l.failed.Load() > 0 {
			return nil // reported by finish
		}
		if got := l.ok.Load(); got < target {
			return fmt.Errorf("%d of %d requests done", got, target)
		}
		return nil
	})
}

func (l *steadyLoad) finish(t *testing.T) {
	t.Helper()
	l.stop()
	l.wg.Wait()
	t.Logf("%d requests succeeded, %d failed", l.ok.Load(), l.failed.Load())
	if f := l.failed.Load(); f > 0 {
		t.Fatalf("%d of %d requests failed; first: %v", f, f+l.ok.Load(), l.firstErr.Load())
	}
}

// TestRetryUnprocessedAppDown: one of two endpoints' application stops listening while its sidecar runs on. Its
// inbound proxy answers 502 connection_refused: the request never reached an app, so the client's proxy retries
// it on the other endpoint, though the Service has no retry annotation. No request fails.
func TestRetryUnprocessedAppDown(t *testing.T) {
	t.Parallel()
	m := startMesh(t, meshOpts{})
	down, up := startApp(t, "down", answerOK), startApp(t, "up", answerOK)
	svc := startService(t, m, "unproc", nil, down.addr, up.addr)
	waitServedByAll(t, &http.Client{}, svc.url, "down", "up")

	if err := down.srv.Close(); err != nil {
		t.Fatal(err)
	}
	before := down.attempts.Load()
	l := startLoad(svc.url, 4)
	l.waitOK(t, 400, "400 requests with one application down")
	l.finish(t)
	if n := down.attempts.Load() - before; n != 0 {
		t.Fatalf("the stopped app served %d requests", n)
	}
}

// TestRetryUnprocessedSidecarStopped: under steady load from several clients, one of two endpoints' sidecar stops
// (draining, then gone while discovery still lists it, as in a rolling restart). Requests it did not take, or that
// found its listener closed, go to the other endpoint. No request fails.
func TestRetryUnprocessedSidecarStopped(t *testing.T) {
	t.Parallel()
	m := startMesh(t, meshOpts{})
	first, second := startApp(t, "first", answerOK), startApp(t, "second", answerOK)
	svc := startService(t, m, "unproc", nil, first.addr, second.addr)
	waitServedByAll(t, &http.Client{}, svc.url, "first", "second")

	l := startLoad(svc.url, 4)
	l.waitOK(t, 100, "100 requests before the stop")
	svc.endpoints[0].stop(t)
	l.waitOK(t, 300, "300 requests after the stop")
	l.finish(t)
}

// TestRetryUnprocessedSingleReplicaReplaced: a service's only endpoint is replaced under load, as a rolling restart
// of one replica does: the old application stops listening, discovery drops the old endpoint, then names the new
// one. Requests that found the old application gone wait for the new endpoint instead of failing.
func TestRetryUnprocessedSingleReplicaReplaced(t *testing.T) {
	t.Parallel()
	m := startMesh(t, meshOpts{})
	old := startApp(t, "old", answerOK)
	svc := startService(t, m, "solo", nil, old.addr)
	waitServedByAll(t, &http.Client{}, svc.url, "old")

	l := startLoad(svc.url, 4)
	l.waitOK(t, 50, "50 requests before the replacement")
	if err := old.srv.Close(); err != nil {
		t.Fatal(err)
	}
	m.remove("solo-0.yaml")
	fresh := startApp(t, "new", answerOK)
	ep := m.sidecar(sidecarOpts{ns: "test", name: "solo-1", sa: "solo-sa", inbound: []proxy.InboundPort{{Port: 8080, App: fresh.addr}}})
	m.write("solo-1.yaml", workloadYAML("test", "solo-1", "solo-sa", "solo", ep.inboundPort(), 8080))
	ep.waitReady(t)
	l.waitOK(t, 200, "200 requests after the replacement")
	l.finish(t)
	if fresh.attempts.Load() == 0 {
		t.Fatal("the new endpoint served nothing")
	}
}
