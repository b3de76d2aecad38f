package proxy

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sinewmesh/sinew/proxy/internal/authz"
	"github.com/sinewmesh/sinew/proxy/internal/policy"
)

func (p *Proxy) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(p.reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(p.log.Handler(), slog.LevelWarn)}))
	mux.HandleFunc("GET /live", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "live\n") })
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) {
		if !p.Ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ready\n") // the prober may be gone; nothing to do then
	})
	mux.HandleFunc("POST /shutdown", func(w http.ResponseWriter, r *http.Request) {
		// Only processes in the pod may stop the proxy (as Linkerd): the admin port is reachable by Prometheus.
		if !fromLoopback(r) {
			http.Error(w, "shutdown is only accepted from localhost", http.StatusForbidden)
			return
		}
		_, _ = io.WriteString(w, "shutting down\n")
		p.Shutdown()
	})
	mux.HandleFunc("GET /proxy-log-level", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, strings.ToLower(p.level.Level().String()))
	})
	mux.HandleFunc("PUT /proxy-log-level", func(w http.ResponseWriter, r *http.Request) {
		if !fromLoopback(r) {
			http.Error(w, "log level changes are only accepted from localhost", http.StatusForbidden)
			return
		}
		body, _ := io.ReadAll(io.LimitReader(r.Body, 64))
		var lvl slog.Level
		if err := lvl.UnmarshalText([]byte(strings.TrimSpace(string(body)))); err != nil {
			http.Error(w, fmt.Sprintf("invalid level %q: use debug, info, warn or error", strings.TrimSpace(string(body))), http.StatusBadRequest)
			return
		}
		p.level.Set(lvl)
		p.log.Info("log level changed", "level", lvl)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /debug/config", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("content-type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(p.debugState()) //nolint:errcheck
	})
	return mux
}

func fromLoopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

type debugTarget struct {
	Name      string            `json:"name"`
	Known     bool              `json:"known"`
	Exists    bool              `json:"exists"`
	Labels    map[string]string `json:"labels,omitempty"`
	Endpoints []debugEndpoint   `json:"endpoints"`
}

type debugEndpoint struct {
	Addr       string            `json:"addr"`
	Weight     uint32            `json:"weight"`
	Identity   string            `json:"identity,omitempty"`
	TargetPort uint16            `json:"targetPort,omitempty"`
	Opaque     bool              `json:"opaque,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
}

// debugPolicy is a target's outbound policy as the proxy applies it.
type debugPolicy struct {
	Target string `json:"target"`
	// Answered is false while the target has the default policy because the policy service has not answered.
	Answered       bool              `json:"answered"`
	Labels         map[string]string `json:"labels,omitempty"`
	Routes         []debugRoute      `json:"routes"`
	FailureAccrual string            `json:"failureAccrual,omitempty"`
}

type debugRoute struct {
	Labels map[string]string `json:"labels,omitempty"`
	Rules  []debugRule       `json:"rules"`
}

type debugRule struct {
	Matches        int               `json:"matches"` // 0: every request
	Backends       map[string]uint32 `json:"backends"`
	Retry          string            `json:"retry,omitempty"`
	RequestTimeout string            `json:"requestTimeout,omitempty"`
	BackendTimeout string            `json:"backendTimeout,omitempty"`
	IdleTimeout    string            `json:"idleTimeout,omitempty"`
}

func durationOrEmpty(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

func newDebugPolicy(w *policy.Watch) debugPolicy {
	o := w.Current()
	dp := debugPolicy{Target: w.Target, Answered: w.Answered(), Labels: o.Labels, Routes: []debugRoute{}}
	if a := o.Accrual; a != nil {
		dp.FailureAccrual = fmt.Sprintf("%d consecutive failures, penalty %v to %v, jitter %g", a.ConsecutiveFailures, a.MinPenalty, a.MaxPenalty, a.JitterRatio)
	}
	for _, r := range o.Routes {
		dr := debugRoute{Labels: r.Labels, Rules: []debugRule{}}
		for _, rule := range r.Rules {
			d := debugRule{Matches: len(rule.Matches), Backends: map[string]uint32{}, RequestTimeout: durationOrEmpty(rule.RequestTimeout),
				BackendTimeout: durationOrEmpty(rule.BackendTimeout), IdleTimeout: durationOrEmpty(rule.IdleTimeout)}
			for _, b := range rule.Backends {
				d.Backends[b.Authority] = b.Weight
			}
			if rt := rule.Retry; rt != nil {
				d.Retry = fmt.Sprintf("up to %d, per try %v", rt.Limit, rt.PerTryTimeout)
			}
			dr.Rules = append(dr.Rules, d)
		}
		dp.Routes = append(dp.Routes, dr)
	}
	return dp
}

type debugState struct {
	Config      Config         `json:"config"`
	Ready       bool           `json:"ready"`
	Identity    string         `json:"identity"`
	CertExpires *time.Time     `json:"certificateExpires,omitempty"`
	Targets     []debugTarget  `json:"destinations"`
	Policies    []debugPolicy  `json:"outboundPolicies"`
	Inbound     []debugInbound `json:"inboundPolicies"`
}

// debugInbound is an inbound port's authorization policy as the proxy applies it; Server is absent while the
// policy service has not answered for the port (nobody is admitted then).
type debugInbound struct {
	Port   uint16      `json:"port"`
	Server *authz.View `json:"server,omitempty"`
}

// debugState is everything the proxy currently believes; secrets (key, token) are never part of it.
func (p *Proxy) debugState() debugState {
	s := debugState{Config: p.cfg, Ready: p.Ready(), Identity: p.cfg.LocalName, Targets: []debugTarget{}, Policies: []debugPolicy{}}
	for _, w := range p.policies.Watches() {
		s.Policies = append(s.Policies, newDebugPolicy(w))
	}
	s.Inbound = []debugInbound{}
	for _, port := range p.authz.Ports() {
		d := debugInbound{Port: port.Port}
		if srv := port.Current(); srv != nil {
			v := srv.View()
			d.Server = &v
		}
		s.Inbound = append(s.Inbound, d)
	}
	slices.SortFunc(s.Inbound, func(a, b debugInbound) int { return cmp.Compare(a.Port, b.Port) })
	if exp := p.ident.Expiry(); !exp.IsZero() {
		s.CertExpires = &exp
	}
	for _, t := range p.resolver.Targets() {
		snap := t.Snapshot()
		dt := debugTarget{Name: t.Name, Known: snap.Known, Exists: snap.Exists, Labels: snap.Labels, Endpoints: []debugEndpoint{}}
		for _, e := range snap.Endpoints {
			dt.Endpoints = append(dt.Endpoints, debugEndpoint{e.Addr, e.Weight, e.Identity, e.TargetPort, e.Opaque, e.Labels})
		}
		s.Targets = append(s.Targets, dt)
	}
	return s
}
