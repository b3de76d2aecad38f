// Package proxy is sinew's sidecar: it carries every connection of one workload, with mTLS between meshed
// workloads, load balancing, metrics and a small admin API. It must not import client-go, cobra or the control
// plane: everything it knows about the mesh comes over the gRPC contract in api/.
package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	destinationv1 "github.com/sinewmesh/sinew/api/destination/v1"
	policyv1 "github.com/sinewmesh/sinew/api/policy/v1"
	"github.com/sinewmesh/sinew/internal/identityclient"
	"github.com/sinewmesh/sinew/internal/meshtls"
	"github.com/sinewmesh/sinew/proxy/internal/authz"
	"github.com/sinewmesh/sinew/proxy/internal/discovery"
	"github.com/sinewmesh/sinew/proxy/internal/forward"
	"github.com/sinewmesh/sinew/proxy/internal/gateway"
	"github.com/sinewmesh/sinew/proxy/internal/metrics"
	"github.com/sinewmesh/sinew/proxy/internal/policy"
	"github.com/sinewmesh/sinew/proxy/internal/sock"
	"github.com/sinewmesh/sinew/proxy/internal/tap"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// idleStateTimeout is how long per-destination state lives unused (as the resolver's watches and Linkerd's
// discovery cache).
const idleStateTimeout = 10 * time.Minute

// Proxy is one running sidecar.
type Proxy struct {
	cfg      Config
	log      *slog.Logger
	level    *slog.LevelVar
	reg      *prometheus.Registry
	anchors  *x509.CertPool
	ident    *identityclient.Client
	resolver *discovery.Resolver
	dstConn  *grpc.ClientConn
	policies *policy.Client
	authz    *authz.Watcher
	polConn  *grpc.ClientConn // nil without a policy service
	in       *forward.Inbound
	out      *forward.Outbound
	// Gateway mode only.
	gw      *forward.Gateway
	gwWatch *gateway.Watcher
	gwMu    sync.Mutex
	gwLns   map[uint16]net.Listener // by listener port

	inboundLn  net.Listener
	outboundLn []outboundListener
	adminLn    net.Listener
	tapLn      net.Listener
	tapSrv     *grpc.Server

	draining   atomic.Bool
	shutdownCh chan struct{}
	shutdownMu sync.Once
}

type outboundListener struct {
	ln     net.Listener
	target string // empty in transparent mode
}

// New validates cfg, prepares identity and discovery, and binds every listener (so a port conflict fails here,
// naming the setting). Nothing is served until Run.
func New(cfg Config, log *slog.Logger, level *slog.LevelVar) (_ *Proxy, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if level == nil {
		level = new(slog.LevelVar)
		level.Set(cfg.LogLevel)
	}
	p := &Proxy{cfg: cfg, log: log, level: level, reg: prometheus.NewRegistry(), shutdownCh: make(chan struct{})}
	defer func() {
		if err != nil {
			p.closeListeners()
			if p.dstConn != nil {
				_ = p.dstConn.Close() // New failed; its error is the one to report
			}
			if p.polConn != nil {
				_ = p.polConn.Close() // New failed; its error is the one to report
			}
		}
	}()
	p.reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector())
	pemBytes, err := cfg.anchorsPEM()
	if err != nil {
		return nil, err
	}
	if p.anchors, err = meshtls.ParseAnchors(pemBytes); err != nil {
		return nil, fmt.Errorf("%sIDENTITY_TRUST_ANCHORS: %w", envPrefix, err)
	}
	p.ident, err = identityclient.New(identityclient.Config{
		Addr: cfg.IdentityAddr, ServerName: cfg.IdentityName, LocalName: cfg.LocalName,
		Token: []byte(cfg.Token), TokenFile: cfg.TokenFile, Anchors: p.anchors,
	}, log.With("component", "identity"), p.reg)
	if err != nil {
		return nil, err
	}
	creds := credentials.NewTLS(meshtls.ClientConfig(p.anchors, cfg.DestinationName, p.ident.Certificate))
	if p.dstConn, err = grpc.NewClient(cfg.DestinationAddr, grpc.WithTransportCredentials(creds)); err != nil {
		return nil, fmt.Errorf("destination service %s: %w", cfg.DestinationAddr, err)
	}
	p.resolver, err = discovery.NewResolver(destinationv1.NewDestinationClient(p.dstConn), cfg.Workload, log.With("component", "discovery"), p.reg)
	if err != nil {
		return nil, err
	}
	var polClient policyv1.OutboundPoliciesClient // nil without a policy service: every target gets the default policy
	var inClient policyv1.InboundPoliciesClient   // nil without a policy service: every port gets the default inbound policy
	if cfg.PolicyAddr != "" {
		// The policy service runs with the destination service, under the same identity.
		if p.polConn, err = grpc.NewClient(cfg.PolicyAddr, grpc.WithTransportCredentials(creds)); err != nil {
			return nil, fmt.Errorf("policy service %s: %w", cfg.PolicyAddr, err)
		}
		polClient = policyv1.NewOutboundPoliciesClient(p.polConn)
		inClient = policyv1.NewInboundPoliciesClient(p.polConn)
	}
	fallback, err := authz.DefaultPolicy(cfg.DefaultInboundPolicy, cfg.ClusterNetworks)
	if err != nil {
		return nil, fmt.Errorf("%sDEFAULT_INBOUND_POLICY: %w", envPrefix, err)
	}
	if p.authz, err = authz.NewWatcher(inClient, cfg.Workload, fallback, log.With("component", "authz"), p.reg); err != nil {
		return nil, err
	}
	if cfg.InboundServerPorts != nil {
		p.authz.SetServerPorts(cfg.InboundServerPorts)
	}
	authzMetrics, err := authz.NewMetrics(p.reg)
	if err != nil {
		return nil, err
	}
	if p.policies, err = policy.NewClient(polClient, cfg.Workload, log.With("component", "policy"), p.reg); err != nil {
		return nil, err
	}
	m, err := metrics.New(p.reg)
	if err != nil {
		return nil, err
	}
	opaque := map[uint16]bool{}
	for _, port := range cfg.OpaquePorts {
		opaque[port] = true
	}
	hub, err := tap.NewHub(p.reg, tap.Local{ID: cfg.LocalName, Labels: workloadLabels(cfg.Workload)})
	if err != nil {
		return nil, err
	}
	p.tapSrv = tap.NewServer(hub, cfg.TapAuthorizedIDs, log.With("component", "tap")).GRPCServer(p.anchors, p.ident.Certificate)
	deps := forward.Deps{Log: log.With("component", "forward"), Metrics: m, Certs: p.ident, Anchors: p.anchors, Resolver: p.resolver, Policies: p.policies, Tap: hub,
		Authz: p.authz, AuthzMetrics: authzMetrics}
	timeouts := forward.Timeouts{Detect: cfg.DetectTimeout, Connect: cfg.ConnectTimeout, Discovery: cfg.DiscoveryTimeout, Handshake: 10 * time.Second}
	ports := forward.InboundPorts{}
	if cfg.Mode == ModeExplicit {
		ports.Apps = map[uint16]string{}
		for i, ip := range cfg.InboundPorts {
			ports.Apps[ip.Port] = ip.App
			if i == 0 {
				ports.Default, ports.DefaultPort = ip.App, ip.Port
			}
			// The ports are known: their policies are watched from the start, so a first request does not
			// wait for one (transparent mode learns its ports from the first connection to each).
			p.authz.Get(ip.Port)
		}
	}
	p.in = forward.NewInbound(deps, timeouts, opaque, ports)
	ingress := forward.Ingress{Enabled: cfg.IngressMode}
	if ingress.Enabled {
		ingress.Namespace, _, _ = strings.Cut(cfg.Workload, "/")
		log.Info("ingress mode: outbound requests go to the Service their authority names")
	}
	p.out = forward.NewOutbound(deps, timeouts, opaque, ingress)
	if cfg.Mode == ModeGateway {
		if p.gwWatch, err = gateway.NewWatcher(policyv1.NewGatewaysClient(p.polConn), cfg.Gateway, log.With("component", "gateway"), p.reg); err != nil {
			return nil, err
		}
		p.gw = forward.NewGateway(p.out, p.gwWatch.Current)
		p.gwLns = map[uint16]net.Listener{}
	}

	listen := func(setting, addr string) (net.Listener, error) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("%s%s: %w", envPrefix, setting, err)
		}
		return ln, nil
	}
	if cfg.Mode == ModeTransparent || len(cfg.InboundPorts) > 0 {
		if p.inboundLn, err = listen("INBOUND_LISTEN_ADDR", cfg.InboundAddr); err != nil {
			return nil, err
		}
	}
	if cfg.Mode == ModeTransparent {
		ln, err := listen("OUTBOUND_LISTEN_ADDR", cfg.OutboundAddr)
		if err != nil {
			return nil, err
		}
		p.outboundLn = append(p.outboundLn, outboundListener{ln: ln})
	}
	for _, op := range cfg.OutboundPorts {
		ln, err := listen("OUTBOUND_PORTS", op.Listen)
		if err != nil {
			return nil, err
		}
		p.outboundLn = append(p.outboundLn, outboundListener{ln: ln, target: op.Target})
	}
	if p.adminLn, err = listen("ADMIN_LISTEN_ADDR", cfg.AdminAddr); err != nil {
		return nil, err
	}
	if p.tapLn, err = listen("TAP_LISTEN_ADDR", cfg.TapAddr); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Proxy) closeListeners() {
	if p.inboundLn != nil {
		p.inboundLn.Close()
	}
	for _, o := range p.outboundLn {
		o.ln.Close()
	}
	if p.adminLn != nil {
		p.adminLn.Close()
	}
	if p.tapLn != nil {
		p.tapLn.Close()
	}
}

// workloadLabels are the tap labels of this proxy's side of a request, from namespace/name.
func workloadLabels(workload string) map[string]string {
	ns, name, ok := strings.Cut(workload, "/")
	if !ok {
		return nil
	}
	return map[string]string{"namespace": ns, "workload": name}
}

// InboundAddr, OutboundAddrs and AdminAddr report the bound addresses.
func (p *Proxy) InboundAddr() string {
	if p.inboundLn == nil {
		return ""
	}
	return p.inboundLn.Addr().String()
}

// OutboundAddrs lists the outbound listeners in configuration order.
func (p *Proxy) OutboundAddrs() []string {
	var a []string
	for _, o := range p.outboundLn {
		a = append(a, o.ln.Addr().String())
	}
	return a
}

// AdminAddr is the admin server's address.
func (p *Proxy) AdminAddr() string { return p.adminLn.Addr().String() }

// TapAddr is the tap server's address.
func (p *Proxy) TapAddr() string { return p.tapLn.Addr().String() }

// Ready reports whether the proxy has its certificate and is not draining; a gateway also needs its Gateway's
// configuration.
func (p *Proxy) Ready() bool {
	select {
	case <-p.ident.Ready():
		return !p.draining.Load() && (p.gwWatch == nil || p.gwWatch.Current().Exists)
	default:
		return false
	}
}

// GatewayAddrs reports the addresses a gateway's listener ports are bound to now, by listener port.
func (p *Proxy) GatewayAddrs() map[uint16]string {
	p.gwMu.Lock()
	defer p.gwMu.Unlock()
	out := map[uint16]string{}
	for port, ln := range p.gwLns {
		out[port] = ln.Addr().String()
	}
	return out
}

// serveGateway keeps a gateway's listeners in step with its configuration: a port a listener gained is bound (a
// port that cannot be bound is tried again every few seconds, and the others keep serving), a port no listener
// has any more is closed (its open connections stay and get 404). It returns when stop closes, with every
// listener closed and every accept loop ended.
func (p *Proxy) serveGateway(stop <-chan struct{}) {
	var loops sync.WaitGroup
	retry := time.NewTicker(5 * time.Second)
	defer retry.Stop()
	for {
		changed := p.gwWatch.Changed() // before Current: no configuration falls in between
		p.bindGateway(p.gwWatch.Current(), stop, &loops)
		select {
		case <-changed:
		case <-retry.C:
		case <-stop:
			p.gwMu.Lock()
			for port, ln := range p.gwLns {
				ln.Close()
				delete(p.gwLns, port)
			}
			p.gwMu.Unlock()
			loops.Wait()
			return
		}
	}
}

func (p *Proxy) bindGateway(cfg *gateway.Config, stop <-chan struct{}, loops *sync.WaitGroup) {
	p.gwMu.Lock()
	defer p.gwMu.Unlock()
	for port, ln := range p.gwLns {
		if cfg.Ports[port] == nil {
			p.log.Info("gateway listener port closed: no listener uses it any more", "port", port)
			ln.Close()
			delete(p.gwLns, port)
		}
	}
	for port := range cfg.Ports {
		if p.gwLns[port] != nil {
			continue
		}
		local := port
		if m, ok := p.cfg.GatewayPortMap[port]; ok {
			local = m
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(p.cfg.GatewayHost, strconv.Itoa(int(local))))
		if err != nil {
			p.log.Error("gateway listener port cannot be bound; trying again in 5s", "port", port, "err", err)
			continue
		}
		p.log.Info("gateway listener port bound", "port", port, "addr", ln.Addr().String())
		p.gwLns[port] = ln
		loops.Add(1)
		go func() {
			defer loops.Done()
			p.acceptLoop(ln, stop, func(c net.Conn) { p.gw.Handle(c, port) })
		}()
	}
}

// Run serves until ctx is cancelled or POST /shutdown is called, then shuts down: it reports not ready at once,
// keeps accepting for the drain delay (so that clients learn the endpoint is going before its listeners close),
// then stops accepting, lets in-flight requests finish (HTTP/2 peers get GOAWAY, idle HTTP/1 connections close)
// for up to the grace period, and closes what is left.
func (p *Proxy) Run(ctx context.Context) error {
	defer func() { _ = p.dstConn.Close() }() // Run is ending; a failed close changes nothing
	bg, stopBg := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBg()
	g, gctx := errgroup.WithContext(bg)
	g.Go(func() error { return p.ident.Run(gctx) })
	g.Go(func() error { return p.resolver.Run(gctx) })
	if p.polConn != nil {
		defer func() { _ = p.polConn.Close() }() // Run is ending; a failed close changes nothing
	}
	g.Go(func() error { return p.policies.Run(gctx) })
	// The policy service wants the proxy's certificate: a watch started before it would fail and back off, and
	// the ports (or the Gateway) watched from the start would wait out the backoff.
	afterIdentity := func(run func(context.Context) error) func() error {
		return func() error {
			select {
			case <-p.ident.Ready():
			case <-gctx.Done():
				return nil
			}
			return run(gctx)
		}
	}
	g.Go(afterIdentity(p.authz.Run))
	g.Go(func() error {
		tick := time.NewTicker(time.Minute)
		defer tick.Stop()
		for {
			select {
			case <-gctx.Done():
				return nil
			case <-tick.C:
				p.out.Sweep(idleStateTimeout) // the gateway's endpoints too
			}
		}
	})
	admin := &http.Server{Handler: p.adminHandler(), ReadHeaderTimeout: 5 * time.Second}
	g.Go(func() error {
		if err := admin.Serve(p.adminLn); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("admin server: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		if err := p.tapSrv.Serve(p.tapLn); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return fmt.Errorf("tap server: %w", err)
		}
		return nil
	})
	var accepting sync.WaitGroup
	stopAccepting := make(chan struct{})
	if p.inboundLn != nil {
		accepting.Add(1)
		go func() { defer accepting.Done(); p.acceptLoop(p.inboundLn, stopAccepting, p.in.Handle) }()
	}
	for _, o := range p.outboundLn {
		accepting.Add(1)
		go func() {
			defer accepting.Done()
			p.acceptLoop(o.ln, stopAccepting, func(c net.Conn) { p.out.Handle(c, o.target) })
		}()
	}
	if p.gw != nil {
		g.Go(afterIdentity(p.gwWatch.Run))
		accepting.Add(1)
		go func() { defer accepting.Done(); p.serveGateway(stopAccepting) }()
	}
	p.log.Info("proxy started", "mode", p.cfg.Mode, "identity", p.cfg.LocalName, "inbound", p.InboundAddr(),
		"outbound", p.OutboundAddrs(), "admin", p.AdminAddr(), "tap", p.TapAddr())

	var runErr error
	select {
	case <-ctx.Done():
	case <-p.shutdownCh:
	case <-gctx.Done():
		runErr = g.Wait()
	}

	p.draining.Store(true)
	if d := p.cfg.ShutdownDrainDelay; d > 0 && runErr == nil {
		// Not ready but still serving, while clients learn that this endpoint is going.
		p.log.Info("shutting down: still serving until the drain delay ends", "drain_delay", d)
		time.Sleep(d) // a second signal ends the process (cmd/sinew-proxy)
	}
	p.log.Info("draining", "grace_period", p.cfg.ShutdownGrace)
	close(stopAccepting)
	if p.inboundLn != nil {
		p.inboundLn.Close()
	}
	for _, o := range p.outboundLn {
		o.ln.Close()
	}
	accepting.Wait()
	dctx, cancel := context.WithTimeout(context.Background(), p.cfg.ShutdownGrace)
	defer cancel()
	var drain sync.WaitGroup
	drain.Add(2)
	go func() { defer drain.Done(); p.in.Shutdown(dctx) }()
	go func() { defer drain.Done(); p.out.Shutdown(dctx) }()
	if p.gw != nil {
		drain.Add(1)
		go func() { defer drain.Done(); p.gw.Shutdown(dctx) }()
	}
	drain.Wait()
	if dctx.Err() != nil {
		p.log.Warn("grace period over; closed remaining connections")
	}
	actx, acancel := context.WithTimeout(context.Background(), time.Second)
	defer acancel()
	admin.Shutdown(actx) //nolint:errcheck // best effort
	// Tap streams are open-ended: end them rather than wait.
	p.tapSrv.Stop()
	stopBg()
	if err := g.Wait(); err != nil && runErr == nil {
		runErr = err
	}
	p.log.Info("stopped")
	return runErr
}

// acceptLoop accepts until ln is closed; temporary errors (out of file descriptors) back off instead of spinning.
// A backoff ends early when stop closes, so draining does not wait for it.
func (p *Proxy) acceptLoop(ln net.Listener, stop <-chan struct{}, handle func(net.Conn)) {
	backoff := 5 * time.Millisecond
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			p.log.Warn("accept failed", "listener", ln.Addr().String(), "retry_in", backoff, "err", err)
			select {
			case <-stop:
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		go handle(sock.Wrap(c))
	}
}

// Shutdown asks Run to drain, as POST /shutdown does.
func (p *Proxy) Shutdown() { p.shutdownMu.Do(func() { close(p.shutdownCh) }) }

// Certificate is the current workload certificate (nil before the first).
func (p *Proxy) Certificate() *tls.Certificate { return p.ident.Certificate() }
