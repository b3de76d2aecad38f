package authz

import (
	"testing"
	"time"

	policyv1 "github.com/sinewmesh/sinew/api/policy/v1"
)

func limiter(t *testing.T, rl *policyv1.RateLimit) *Limiter {
	t.Helper()
	srv, problems := Compile(&policyv1.InboundServer{RateLimit: rl})
	if len(problems) > 0 || srv.Limiter == nil {
		t.Fatalf("compiled %+v, problems %q", srv.Limiter, problems)
	}
	return srv.Limiter
}

// take asks n times at now and counts the admitted requests; it returns the last refusal's limit and wait.
func take(l *Limiter, id string, n int, now time.Time) (admitted int, limit string, wait time.Duration) {
	for range n {
		ok, lim, w := l.Allow(id, now)
		if ok {
			admitted++
		} else {
			limit, wait = lim, w
		}
	}
	return
}

func TestRateLimitTotal(t *testing.T) {
	l := limiter(t, &policyv1.RateLimit{TotalRps: 10, Labels: map[string]string{"name": "web"}})
	t0 := time.Unix(1000, 0)
	n, limit, wait := take(l, web, 15, t0)
	if n != 10 || limit != LimitTotal || wait != 100*time.Millisecond {
		t.Errorf("a burst of 15 at 10 rps: %d admitted, refused by %q, retry after %v; want 10, total, 100ms", n, limit, wait)
	}
	if n, _, _ := take(l, voteBot, 1, t0.Add(100*time.Millisecond)); n != 1 {
		t.Error("100 ms later one more request should pass")
	}
	if n, _, _ := take(l, voteBot, 20, t0.Add(10*time.Second)); n != 10 {
		t.Errorf("after a long pause %d admitted; the bucket holds one second's worth (10)", n)
	}
	if l.Name != "web" {
		t.Errorf("name %q", l.Name)
	}
}

// TestRateLimitFairShare: with a per-identity share, one greedy client cannot take the total from another, and a
// request refused by the total does not use up the client's own share.
func TestRateLimitFairShare(t *testing.T) {
	l := limiter(t, &policyv1.RateLimit{TotalRps: 15, IdentityRps: 10})
	t0 := time.Unix(1000, 0)
	if n, limit, _ := take(l, web, 100, t0); n != 10 || limit != LimitIdentity {
		t.Errorf("greedy client: %d admitted, last refused by %q; want 10, identity", n, limit)
	}
	if n, limit, _ := take(l, voteBot, 100, t0); n != 5 || limit != LimitTotal {
		t.Errorf("second client: %d admitted, refused by %q; want the 5 left of the total", n, limit)
	}
	// vote-bot's refusals by the total were refunded: once the total refills, it has its own 10 again.
	if n, _, _ := take(l, voteBot, 100, t0.Add(time.Second)); n != 10 {
		t.Errorf("a second later vote-bot got %d, want its 10", n)
	}
	// Unmeshed clients share one bucket.
	if n, _, _ := take(l, "", 100, t0.Add(3*time.Second)); n != 10 {
		t.Errorf("unmeshed clients got %d, want one share of 10", n)
	}
}

func TestRateLimitOverrides(t *testing.T) {
	l := limiter(t, &policyv1.RateLimit{IdentityRps: 5, Overrides: []*policyv1.RateLimitOverride{
		{Rps: 50, Identities: []string{voteBot}},
		{Rps: 1, Identities: []string{"spiffe://cluster.local/ns/batch/*"}},
	}})
	t0 := time.Unix(1000, 0)
	for _, c := range []struct {
		id    string
		want  int
		limit string
	}{
		{voteBot, 50, LimitOverride},
		{"spiffe://cluster.local/ns/batch/sa/cron", 1, LimitOverride},
		{web, 5, LimitIdentity},
	} {
		if n, limit, _ := take(l, c.id, 100, t0); n != c.want || limit != c.limit {
			t.Errorf("%s: %d admitted, refused by %q; want %d, %s", c.id, n, limit, c.want, c.limit)
		}
	}
}

// TestRateLimitSurvivesUnrelatedChanges: a new policy for the port with the same limit keeps the buckets (no
// refill on every policy update); a changed limit starts afresh.
func TestRateLimitSurvivesUnrelatedChanges(t *testing.T) {
	p := &Port{first: make(chan struct{})}
	rl := &policyv1.RateLimit{TotalRps: 2}
	first, _ := Compile(&policyv1.InboundServer{RateLimit: rl})
	p.set(first)
	now := time.Now()
	take(first.Limiter, web, 2, now)
	same, _ := Compile(&policyv1.InboundServer{RateLimit: &policyv1.RateLimit{TotalRps: 2},
		Authorizations: []*policyv1.Authorization{{Name: "new", Unauthenticated: true}}})
	p.set(same)
	if p.Current().Limiter != first.Limiter {
		t.Fatal("an unrelated change replaced the limiter")
	}
	if ok, _, _ := p.Current().Limiter.Allow(web, now); ok {
		t.Error("the kept limiter was refilled")
	}
	changed, _ := Compile(&policyv1.InboundServer{RateLimit: &policyv1.RateLimit{TotalRps: 3}})
	p.set(changed)
	if p.Current().Limiter == first.Limiter {
		t.Error("a changed limit kept the old limiter")
	}
}
