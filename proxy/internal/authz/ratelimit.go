package authz

import (
	"math"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	policyv1 "github.com/sinewmesh/sinew/api/policy/v1"
)

// Limiter is a port's local rate limit: token buckets for all clients together, and one per client identity (the
// unmeshed clients share one), each holding one second's worth of requests.
type Limiter struct {
	Name      string
	msg       *policyv1.RateLimit // what it was compiled from, to keep its buckets across unrelated policy changes
	total     *bucket
	perID     float64
	overrides []override

	mu      sync.Mutex
	buckets map[string]*bucket // by client identity ("" for unmeshed clients)
	sweep   time.Time

	rejected sync.Map // limitKey -> prometheus.Counter
}

type override struct {
	rps      float64
	ids      map[string]bool
	prefixes []string
}

func (o *override) matches(id string) bool {
	if o.ids[id] {
		return true
	}
	for _, p := range o.prefixes {
		if strings.HasPrefix(id, p) {
			return true
		}
	}
	return false
}

// maxBuckets bounds the per-identity buckets; past it, buckets that have refilled (idle clients) are dropped.
const maxBuckets = 10000

// Which limit refused a request, for metrics and logs.
const (
	LimitTotal    = "total"
	LimitIdentity = "identity"
	LimitOverride = "override"
)

func compileLimiter(msg *policyv1.RateLimit) *Limiter {
	if msg == nil || msg.GetTotalRps() == 0 && msg.GetIdentityRps() == 0 && len(msg.GetOverrides()) == 0 {
		return nil
	}
	l := &Limiter{Name: msg.GetLabels()["name"], msg: msg, perID: float64(msg.GetIdentityRps()), buckets: map[string]*bucket{}}
	if msg.GetTotalRps() > 0 {
		l.total = newBucket(float64(msg.GetTotalRps()), time.Time{})
	}
	for _, o := range msg.GetOverrides() {
		ov := override{rps: float64(o.GetRps())}
		for _, id := range o.GetIdentities() {
			if p, ok := strings.CutSuffix(id, "*"); ok {
				ov.prefixes = append(ov.prefixes, p)
				continue
			}
			if ov.ids == nil {
				ov.ids = map[string]bool{}
			}
			ov.ids[id] = true
		}
		l.overrides = append(l.overrides, ov)
	}
	return l
}

// Allow takes a token for a request from client id ("" when unmeshed) at now. When a limit refuses it, Allow says
// which and how long until that limit admits a request again.
func (l *Limiter) Allow(id string, now time.Time) (ok bool, limit string, retryAfter time.Duration) {
	rate, limit := l.perID, LimitIdentity
	for i := range l.overrides {
		if id != "" && l.overrides[i].matches(id) {
			rate, limit = l.overrides[i].rps, LimitOverride
			break
		}
	}
	var b *bucket
	if rate > 0 {
		b = l.bucket(id, rate, now)
		if ok, wait := b.take(now); !ok {
			return false, limit, wait
		}
	}
	if l.total != nil {
		if ok, wait := l.total.take(now); !ok {
			if b != nil {
				b.refund() // the request was not admitted: it should not use the client's share
			}
			return false, LimitTotal, wait
		}
	}
	return true, "", 0
}

func (l *Limiter) bucket(id string, rate float64, now time.Time) *bucket {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[id]
	if ok {
		return b
	}
	if len(l.buckets) >= maxBuckets && now.Sub(l.sweep) > time.Second {
		l.sweep = now
		for k, old := range l.buckets {
			if old.full(now) {
				delete(l.buckets, k)
			}
		}
	}
	b = newBucket(rate, now)
	if len(l.buckets) < maxBuckets {
		l.buckets[id] = b
	}
	return b
}

// adopt keeps prev's buckets when prev limited the same way, so a policy change elsewhere on the port does not
// refill them.
func (l *Limiter) adopt(prev *Limiter) *Limiter {
	if l == nil || prev == nil || !proto.Equal(l.msg, prev.msg) {
		return l
	}
	return prev
}

// bucket is a token bucket of rate tokens per second holding at most rate tokens.
type bucket struct {
	mu     sync.Mutex
	rate   float64
	tokens float64
	last   time.Time
}

func newBucket(rate float64, now time.Time) *bucket {
	return &bucket{rate: rate, tokens: rate, last: now}
}

func (b *bucket) refill(now time.Time) {
	if b.last.IsZero() { // full, and first used now
		b.last = now
		return
	}
	if d := now.Sub(b.last); d > 0 {
		b.tokens = math.Min(b.rate, b.tokens+d.Seconds()*b.rate)
		b.last = now
	}
}

func (b *bucket) take(now time.Time) (bool, time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(now)
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / b.rate * float64(time.Second))
}

func (b *bucket) refund() {
	b.mu.Lock()
	b.tokens = math.Min(b.rate, b.tokens+1)
	b.mu.Unlock()
}

func (b *bucket) full(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(now)
	return b.tokens >= b.rate
}
