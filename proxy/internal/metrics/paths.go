package metrics

import (
	"sync"
	"sync/atomic"
)

// MaxRoutes bounds the route_* metrics' cardinality: each proxy labels at most this many distinct (rt_route,
// authority) pairs per direction as themselves, the first ones it sees; every later pair is counted under
// OtherRoute. Paths come from clients (and, inbound, from any peer), so without a bound one scanner could add a
// series per URL it tries. 100 is well above what a service's API has (emojivoto: a handful) while keeping a
// proxy's route series, times the histogram's buckets, in the low thousands. Routes the control plane defines
// (HTTPRoute, GRPCRoute) are counted by name in the outbound_http_route_* families instead (routes.go).
const MaxRoutes = 100

// OtherRoute is the rt_route and authority of requests beyond MaxRoutes.
const OtherRoute = "[other]"

// pathKey is one (authority, rt_route) pair.
type pathKey struct{ authority, path string }

// pathTable is one direction's admitted pairs, shared by all of its Series. It is consulted only when a Series
// has not cached a pair yet: once per admitted pair and Series, and on every request of a pair that was not
// admitted (those are deliberately not cached, so they cannot grow memory either).
type pathTable = admitTable[pathKey]

func newPathTable() *pathTable { return newAdmitTable[pathKey](MaxRoutes) }

// admitTable admits the first max keys it is asked about. Once full it never changes, so lookups read it without
// the lock.
type admitTable[K comparable] struct {
	max  int
	mu   sync.Mutex
	seen map[K]struct{}
	full atomic.Bool // set, under mu, after the write that filled seen; seen is read-only from then on
}

func newAdmitTable[K comparable](limit int) *admitTable[K] {
	return &admitTable[K]{max: limit, seen: map[K]struct{}{}}
}

func (t *admitTable[K]) admit(k K) bool {
	if t.full.Load() {
		_, ok := t.seen[k]
		return ok
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.seen[k]; ok {
		return true
	}
	if len(t.seen) >= t.max {
		return false
	}
	t.seen[k] = struct{}{}
	t.full.Store(len(t.seen) == t.max)
	return true
}

// PathStats is the resolved route_* series of one (authority, path) pair under a Series' label set: Request and
// Response as on a Series.
type PathStats struct{ labelSet }

// Path returns the route_* metrics of a request to authority (its :authority or Host) for path (its rt_route: the
// path without the query, or the gRPC method). A cached pair costs one map load and no allocation.
func (s *Series) Path(authority, path string) *PathStats {
	k := pathKey{authority, path}
	if ps, ok := s.paths.Load(k); ok {
		return ps.(*PathStats)
	}
	if s.table == nil || !s.table.admit(k) {
		s.otherO.Do(func() { s.other = s.newPathStats(pathKey{OtherRoute, OtherRoute}) })
		return s.other
	}
	ps, _ := s.paths.LoadOrStore(k, s.newPathStats(k))
	return ps.(*PathStats)
}

func (s *Series) newPathStats(k pathKey) *PathStats {
	base := append(append([]string{}, s.base...), k.path)
	base[authorityIndex] = k.authority // set in both directions on the route_* families
	return &PathStats{labelSet{requests: s.m.routeRequests.WithLabelValues(base...), total: s.m.routeResponses, latency: s.m.routeLatency, base: base}}
}
