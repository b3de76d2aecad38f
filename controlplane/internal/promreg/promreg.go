// Package promreg registers collectors on an injected prometheus.Registerer so that several control planes (as in
// tests that run more than one in a process) can share one registry without failing.
package promreg

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Register registers c on reg and returns it; when an identical collector is already registered, it returns that
// one instead so both users count into the same series. A nil reg registers nothing.
func Register[T prometheus.Collector](reg prometheus.Registerer, c T) T {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(T); ok {
				return existing
			}
		}
		// A conflicting, different collector: keep counting locally rather than fail the control plane.
	}
	return c
}

// Registries returns the registerer to count on and the gatherer /metrics serves: a private registry when reg is
// nil; nothing to serve when reg cannot gather.
func Registries(reg prometheus.Registerer) (prometheus.Registerer, prometheus.Gatherer) {
	if reg == nil {
		r := prometheus.NewRegistry()
		return r, r
	}
	if g, ok := reg.(prometheus.Gatherer); ok {
		return reg, g
	}
	return reg, prometheus.Gatherers{}
}
