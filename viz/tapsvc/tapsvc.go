// Package tapsvc is viz's tap service: it turns "tap deploy/web" into one tap.v1 stream per proxy serving that
// resource, dials each proxy's tap port with the tap identity, and merges the streams into one. It holds no state
// between requests.
package tapsvc

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	tapv1 "github.com/sinewmesh/sinew/api/tap/v1"
	"github.com/sinewmesh/sinew/internal/meshtls"
	"github.com/sinewmesh/sinew/viz/metricsapi"
)

// MaxRPS caps the requests per second one tap may ask for across all its proxies, as Linkerd does (its default is
// also its maximum). Each proxy gets an equal share.
const MaxRPS = 100

// Target is one proxy that can be tapped.
type Target struct {
	Namespace  string
	Deployment string
	Pod        string
	// Addr is host:port of the proxy's tap server.
	Addr string
	// Identity is the SPIFFE ID the proxy must present.
	Identity string
}

// Name is how lines name the proxy: namespace/pod.
func (t Target) Name() string { return t.Namespace + "/" + t.Pod }

// Resolver finds the proxies that serve a resource.
type Resolver interface {
	Targets(ctx context.Context, r metricsapi.Resource) ([]Target, error)
}

// Request is one tap: which resource's proxies to tap and which of their requests to show.
type Request struct {
	Resource metricsapi.Resource
	// To keeps only requests to this resource (outbound from Resource).
	To                              *metricsapi.Resource
	Method, Path, Authority, Scheme string
	// MaxRPS bounds the requests per second across all proxies (0: MaxRPS); at most MaxRPS.
	MaxRPS float64
	// Limit ends the tap after this many requests have been seen and have ended (0: no limit).
	Limit uint32
}

// Validate checks what a user can get wrong.
func (r Request) Validate() error {
	if r.Resource.Kind == "" {
		return errors.New("a resource to tap is required (e.g. deploy/web)")
	}
	if r.Resource.Kind == metricsapi.KindNamespace && r.Resource.Name == "" {
		return errors.New("tap a namespace by name: ns/NAME")
	}
	if r.Resource.Kind == metricsapi.KindService || (r.To != nil && r.To.Kind == metricsapi.KindService) {
		return errors.New("tap taps workloads, not services: use deploy/NAME (a service's routes: sinew viz routes svc/NAME)")
	}
	if r.To != nil && r.To.Kind == metricsapi.KindNamespace && r.To.Name == "" {
		return errors.New("--to: name the namespace: ns/NAME")
	}
	if r.MaxRPS < 0 || math.IsNaN(r.MaxRPS) || math.IsInf(r.MaxRPS, 0) {
		return fmt.Errorf("max RPS must be a number >= 0, got %v", r.MaxRPS)
	}
	if r.MaxRPS > MaxRPS {
		return fmt.Errorf("max RPS %v is above the maximum of %d", r.MaxRPS, MaxRPS)
	}
	return nil
}

// Line is one item of a merged stream: an event of proxy Index, or that proxy's failure.
type Line struct {
	Proxy string
	Index int
	Event *tapv1.TapEvent
	Err   error
}

// Service fans taps out.
type Service struct {
	resolver Resolver
	anchors  *x509.CertPool
	cert     func() *tls.Certificate
	log      *slog.Logger
}

// New returns a service that finds proxies with resolver and proves itself to them with cert, checking their
// certificates against anchors.
func New(resolver Resolver, anchors *x509.CertPool, cert func() *tls.Certificate, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{resolver: resolver, anchors: anchors, cert: cert, log: log}
}

// ErrNoTargets means no meshed proxy serves the resource.
var ErrNoTargets = errors.New("no meshed pods to tap")

// Tap resolves the proxies of req.Resource and streams their merged events (Resolve, then Stream).
func (s *Service) Tap(ctx context.Context, req Request, emit func(Line) error) error {
	targets, err := s.Resolve(ctx, req)
	if err != nil {
		return err
	}
	return s.Stream(ctx, req, targets, emit)
}

// Resolve checks req and finds the proxies to tap: ErrNoTargets when there are none.
func (s *Service) Resolve(ctx context.Context, req Request) ([]Target, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	if s.cert() == nil {
		return nil, errors.New("the tap service has no certificate from the identity service yet")
	}
	targets, err := s.resolver.Targets(ctx, req.Resource)
	if err != nil {
		return nil, err
	}
	if len(targets) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrNoTargets, describe(req.Resource))
	}
	return targets, nil
}

// Stream streams the merged events of targets to emit, one call at a time, until ctx ends, the limit is reached,
// every proxy's stream ended, or emit fails. A proxy that cannot be reached gives one Line with Err; the others go
// on. It returns an error only when no proxy could be tapped at all.
func (s *Service) Stream(ctx context.Context, req Request, targets []Target, emit func(Line) error) error {
	rps := req.MaxRPS
	if rps == 0 {
		rps = MaxRPS
	}
	match := buildMatch(req)
	var peers *PeerIndex
	if pi, ok := s.resolver.(PeerIndexer); ok {
		var err error
		if peers, err = pi.PeerIndex(ctx); err != nil {
			s.log.Info("callers will be named by identity only", "err", err)
			peers = nil
		}
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	lines := make(chan Line)
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() {
			obs := &tapv1.ObserveRequest{Match: match, MaxRps: rps / float64(len(targets)), Limit: req.Limit}
			err := s.observe(ctx, t, obs, func(ev *tapv1.TapEvent) bool {
				enrich(ev, t)
				peers.name(ev)
				select {
				case lines <- Line{Proxy: t.Name(), Index: i, Event: ev}:
					return true
				case <-ctx.Done():
					return false
				}
			})
			if err != nil && ctx.Err() == nil {
				s.log.Info("tap of a proxy failed", "proxy", t.Name(), "addr", t.Addr, "error", err)
				select {
				case lines <- Line{Proxy: t.Name(), Index: i, Err: err}:
				case <-ctx.Done():
				}
			}
		})
	}
	go func() { wg.Wait(); close(lines) }()

	lim := limiter{limit: req.Limit, open: map[[2]uint64]bool{}}
	failed := 0
	for l := range lines {
		if l.Err != nil {
			failed++
		} else if !lim.admit(l) {
			continue
		}
		if err := emit(l); err != nil {
			return err
		}
		if lim.done() {
			return nil
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	if failed == len(targets) {
		return fmt.Errorf("no proxy of %s could be tapped", describe(req.Resource))
	}
	return nil
}

// limiter keeps a merged stream to Limit requests in total (each proxy also stops at Limit on its own): it admits
// the first Limit requests to start, with all their later events, and is done once they have all ended.
type limiter struct {
	limit    uint32
	admitted uint32
	open     map[[2]uint64]bool // proxy index, request id
}

func (l *limiter) admit(line Line) bool {
	if l.limit == 0 {
		return true
	}
	key := [2]uint64{uint64(line.Index), eventID(line.Event)}
	switch line.Event.GetEvent().(type) {
	case *tapv1.TapEvent_RequestInit_:
		if l.admitted >= l.limit {
			return false
		}
		l.admitted++
		l.open[key] = true
		return true
	case *tapv1.TapEvent_ResponseEnd_:
		if !l.open[key] {
			return false
		}
		delete(l.open, key)
		return true
	default:
		return l.open[key]
	}
}

func (l *limiter) done() bool { return l.limit != 0 && l.admitted >= l.limit && len(l.open) == 0 }

func eventID(ev *tapv1.TapEvent) uint64 {
	switch e := ev.GetEvent().(type) {
	case *tapv1.TapEvent_RequestInit_:
		return e.RequestInit.GetId()
	case *tapv1.TapEvent_ResponseInit_:
		return e.ResponseInit.GetId()
	case *tapv1.TapEvent_ResponseEnd_:
		return e.ResponseEnd.GetId()
	}
	return 0
}

// observe runs one proxy's stream, handing each event to deliver until it returns false.
func (s *Service) observe(ctx context.Context, t Target, req *tapv1.ObserveRequest, deliver func(*tapv1.TapEvent) bool) error {
	creds := credentials.NewTLS(meshtls.ClientConfig(s.anchors, t.Identity, s.cert, "h2"))
	conn, err := grpc.NewClient("passthrough:///"+t.Addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	stream, err := tapv1.NewTapClient(conn).Observe(ctx, req)
	if err != nil {
		return explain(err)
	}
	for {
		ev, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return explain(err)
		}
		if !deliver(ev) {
			return nil
		}
	}
}

// explain turns a gRPC failure into what a user can act on.
func explain(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	switch st.Code() {
	case codes.PermissionDenied:
		return fmt.Errorf("the proxy refused the tap identity: %s (see SINEW_PROXY_TAP_AUTHORIZED_IDENTITIES)", st.Message())
	case codes.Unavailable:
		return fmt.Errorf("cannot reach the proxy's tap server: %s", st.Message())
	}
	return fmt.Errorf("%s: %s", st.Code(), st.Message())
}

// buildMatch turns the filters into a tap.v1 match: all of them must hold.
func buildMatch(r Request) *tapv1.Match {
	var all []*tapv1.Match
	if r.To != nil {
		labels := map[string]string{"namespace": r.To.Namespace}
		switch r.To.Kind {
		case metricsapi.KindDeployment:
			if r.To.Name != "" {
				labels["deployment"] = r.To.Name
			}
		case metricsapi.KindPod:
			if r.To.Name != "" {
				labels["pod"] = r.To.Name
			}
		case metricsapi.KindNamespace:
			labels["namespace"] = r.To.Name
		}
		all = append(all, &tapv1.Match{Match: &tapv1.Match_Destination{Destination: &tapv1.Match_Labels{Labels: labels}}})
	}
	for _, h := range []struct {
		v  string
		fn func(string) *tapv1.Match_Http
	}{
		{r.Scheme, func(v string) *tapv1.Match_Http { return &tapv1.Match_Http{Match: &tapv1.Match_Http_Scheme{Scheme: v}} }},
		{r.Method, func(v string) *tapv1.Match_Http { return &tapv1.Match_Http{Match: &tapv1.Match_Http_Method{Method: v}} }},
		{r.Authority, func(v string) *tapv1.Match_Http {
			return &tapv1.Match_Http{Match: &tapv1.Match_Http_Authority{Authority: v}}
		}},
		{r.Path, func(v string) *tapv1.Match_Http {
			return &tapv1.Match_Http{Match: &tapv1.Match_Http_PathPrefix{PathPrefix: v}}
		}},
	} {
		if h.v != "" {
			all = append(all, &tapv1.Match{Match: &tapv1.Match_Http_{Http: h.fn(h.v)}})
		}
	}
	switch len(all) {
	case 0:
		return nil
	case 1:
		return all[0]
	}
	return &tapv1.Match{Match: &tapv1.Match_All_{All: &tapv1.Match_All{Matches: all}}}
}

// PeerIndexer is a Resolver that can also name the callers of inbound requests, which a proxy knows only by
// address and mesh identity.
type PeerIndexer interface {
	PeerIndex(ctx context.Context) (*PeerIndex, error)
}

// PeerIndex finds a workload by its pod IP or, when only one workload has it, by its mesh identity.
type PeerIndex struct {
	byIP map[string]Target
	byID map[string]Target
}

// NewPeerIndex indexes targets by IP (skipping IPs several share, such as loopback in local mode) and by identity
// (skipping identities several workloads share).
func NewPeerIndex(targets []Target) *PeerIndex {
	pi := &PeerIndex{byIP: map[string]Target{}, byID: map[string]Target{}}
	ipCount, idDeployments := map[string]int{}, map[string]map[string]bool{}
	for _, t := range targets {
		if host, _, err := net.SplitHostPort(t.Addr); err == nil {
			ipCount[host]++
			pi.byIP[host] = t
		}
		if idDeployments[t.Identity] == nil {
			idDeployments[t.Identity] = map[string]bool{}
		}
		idDeployments[t.Identity][t.Namespace+"/"+t.Deployment] = true
		pi.byID[t.Identity] = t
	}
	for ip, n := range ipCount {
		if n > 1 {
			delete(pi.byIP, ip)
		}
	}
	for id, deps := range idDeployments {
		if len(deps) > 1 || id == "" {
			delete(pi.byID, id)
		} else {
			t := pi.byID[id]
			t.Pod = "" // one workload, but which of its pods is not known
			pi.byID[id] = t
		}
	}
	return pi
}

// name adds the caller's workload labels to an inbound event that has none.
func (pi *PeerIndex) name(ev *tapv1.TapEvent) {
	if pi == nil || ev.GetDirection() != tapv1.TapEvent_DIRECTION_INBOUND || ev.GetSourceLabels()["deployment"] != "" {
		return
	}
	t, ok := Target{}, false
	if host, _, err := net.SplitHostPort(ev.GetSource()); err == nil {
		t, ok = pi.byIP[host]
	}
	if !ok && ev.GetClientId() != "" {
		t, ok = pi.byID[ev.GetClientId()]
	}
	if !ok {
		return
	}
	add := map[string]string{"namespace": t.Namespace}
	for k, v := range map[string]string{"deployment": t.Deployment, "pod": t.Pod} {
		if v != "" {
			add[k] = v
		}
	}
	ev.SourceLabels = merged(ev.GetSourceLabels(), add)
}

// enrich adds what the tap service knows of the tapped proxy to its side of the event: the destination of an
// inbound request, the source of an outbound one. A proxy knows its pod but not its deployment.
func enrich(ev *tapv1.TapEvent, t Target) {
	local := map[string]string{"namespace": t.Namespace, "pod": t.Pod}
	if t.Deployment != "" {
		local["deployment"] = t.Deployment
	}
	switch ev.GetDirection() {
	case tapv1.TapEvent_DIRECTION_INBOUND:
		ev.DestinationLabels = merged(ev.GetDestinationLabels(), local)
	case tapv1.TapEvent_DIRECTION_OUTBOUND:
		ev.SourceLabels = merged(ev.GetSourceLabels(), local)
	}
}

func merged(have, add map[string]string) map[string]string {
	out := maps.Clone(have)
	if out == nil {
		out = map[string]string{}
	}
	for k, v := range add {
		if out[k] == "" {
			out[k] = v
		}
	}
	delete(out, "workload") // the proxy's name for its pod, now under "pod"
	return out
}

func describe(r metricsapi.Resource) string {
	if r.Name == "" {
		return fmt.Sprintf("%s in namespace %s", r.Kind, r.Namespace)
	}
	if r.Kind == metricsapi.KindNamespace {
		return "namespace " + r.Name
	}
	return fmt.Sprintf("%s/%s in namespace %s", r.Kind, r.Name, r.Namespace)
}
