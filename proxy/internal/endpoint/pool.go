package endpoint

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/sinewmesh/sinew/proxy/internal/balance"
	"github.com/sinewmesh/sinew/proxy/internal/discovery"
	"github.com/sinewmesh/sinew/proxy/internal/metrics"
)

// Pool is the endpoints of one resolved authority, rebuilt when discovery reports a change or the failure-accrual
// settings change. Endpoints that survive a change keep their latency history, accrual state and connections.
type Pool struct {
	Target *discovery.Target
	m      *metrics.Metrics
	dialer *Dialer
	plain  *Plain

	mu    sync.Mutex
	state atomic.Pointer[poolState]
	byKey map[string]*Endpoint
}

type poolState struct {
	version uint64
	accrual balance.Accrual
	set     *balance.Set
}

// NewPool follows target.
func NewPool(target *discovery.Target, m *metrics.Metrics, d *Dialer, plain *Plain) *Pool {
	return &Pool{Target: target, m: m, dialer: d, plain: plain}
}

func endpointKey(e discovery.Endpoint) string {
	return fmt.Sprintf("%s|%d|%s", e.Addr, e.TargetPort, e.Identity)
}

// Set returns the balancer set for snap with failure accrual a (the zero value: off).
func (p *Pool) Set(snap *discovery.Snapshot, a balance.Accrual) *balance.Set {
	if st := p.state.Load(); st != nil && st.version == snap.Version && st.accrual == a {
		return st.set
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if st := p.state.Load(); st != nil && st.version == snap.Version && st.accrual == a {
		return st.set
	}
	next := make(map[string]*Endpoint, len(snap.Endpoints))
	eps := make([]*balance.Endpoint, 0, len(snap.Endpoints))
	for _, info := range snap.Endpoints {
		k := endpointKey(info)
		e, ok := p.byKey[k]
		if !ok || !e.same(info) || !labelsEqual(e.Labels.Dst, mergedLabels(snap.Labels, info.Labels)) {
			e = newEndpoint(info, snap.Labels, p.m, p.dialer, p.plain)
		}
		next[k] = e
		eps = append(eps, e.Bal)
	}
	for k, e := range p.byKey {
		if next[k] != e {
			e.retire()
		}
	}
	p.byKey = next
	set := balance.NewSetWithAccrual(eps, a)
	p.state.Store(&poolState{version: snap.Version, accrual: a, set: set})
	return set
}

func labelsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
