// Package server is viz's HTTP face: the JSON API the CLI and the dashboard read (stat, edges, routes, authz, a live
// tap stream), the embedded dashboard itself, and the checks that keep a browser from being turned against it (Host
// allowlist against DNS rebinding, no cross-site requests, no writes). The API is documented in
// docs/architecture/viz.md. The same server runs in Kubernetes (cmd/sinew-viz) and inside `sinew demo`.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/sinewmesh/sinew/internal/version"
	"github.com/sinewmesh/sinew/viz/metricsapi"
	"github.com/sinewmesh/sinew/viz/tapsvc"
)

var errNoScrapeTargets = errors.New("this viz does not list scrape targets (local mode configures its Prometheus itself)")

// Modes the server runs in.
const (
	ModeKubernetes = "kubernetes"
	ModeLocal      = "local"
)

// Config is what a Server serves from.
type Config struct {
	Mode string
	// Querier answers PromQL (a Prometheus, or the embedded scraper); nil: the metrics endpoints answer 503.
	Querier metricsapi.Querier
	// Prometheus says which Prometheus answers, for /api/version ("embedded" for the scraper).
	Prometheus string
	// Tap fans taps out; nil: /api/tap answers 503.
	Tap *tapsvc.Service
	// Assets is the dashboard (index.html at its root); nil: no dashboard, only the API.
	Assets fs.FS
	// AllowedHosts are host names (no port) accepted in the Host header besides localhost, 127.0.0.1 and ::1.
	AllowedHosts []string
	// EnforcedHost, when set, accepts the host names it matches too.
	EnforcedHost *regexp.Regexp
	// ScrapeTargets, when set, lists the proxies for Prometheus's HTTP discovery at ScrapeTargetsPath.
	ScrapeTargets scrapeTargetsFunc
	Log           *slog.Logger
}

// Server serves the API and the dashboard.
type Server struct {
	cfg Config
	mux *http.ServeMux
}

// New builds the server's routes.
func New(cfg Config) *Server {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux()}
	s.mux.HandleFunc("GET /api/version", s.version)
	s.mux.HandleFunc("GET /api/stat", metricsEndpoint(s, "rows", statQuery))
	s.mux.HandleFunc("GET /api/edges", metricsEndpoint(s, "edges", edgesQuery))
	s.mux.HandleFunc("GET /api/routes", metricsEndpoint(s, "routes", routesQuery))
	s.mux.HandleFunc("GET /api/authz", metricsEndpoint(s, "rows", authzQuery))
	s.mux.HandleFunc("GET /api/tap", s.tap)
	s.mux.HandleFunc("GET "+ScrapeTargetsPath, s.scrapeTargets)
	s.mux.HandleFunc("GET /api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Errorf("no API endpoint %s", r.URL.Path))
	})
	s.mux.HandleFunc("GET /ready", ok)
	s.mux.HandleFunc("GET /live", ok)
	if cfg.Assets != nil {
		s.mux.Handle("GET /", staticFiles(cfg.Assets))
	}
	return s
}

func ok(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) }

// ServeHTTP checks where a request comes from before routing it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.hostAllowed(r.Host) {
		s.cfg.Log.Warn("refused a request for a foreign host", "host", r.Host, "remote", r.RemoteAddr)
		http.Error(w, fmt.Sprintf("host %q is not allowed: open the dashboard through localhost or an allowed name", r.Host), http.StatusForbidden)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "viz is read-only: only GET and HEAD are served", http.StatusForbidden)
		return
	}
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" || !s.originAllowed(r.Header.Get("Origin")) {
		http.Error(w, "cross-origin requests are refused", http.StatusForbidden)
		return
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'")
	s.mux.ServeHTTP(w, r)
}

func (s *Server) hostAllowed(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	host = strings.ToLower(host)
	if host == "" {
		return false
	}
	if host == "localhost" || host == "127.0.0.1" || host == "::1" || slices.Contains(s.cfg.AllowedHosts, host) {
		return true
	}
	return s.cfg.EnforcedHost != nil && s.cfg.EnforcedHost.MatchString(host)
}

func (s *Server) originAllowed(origin string) bool {
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	return s.hostAllowed(u.Host)
}

func (s *Server) version(w http.ResponseWriter, _ *http.Request) {
	prom := s.cfg.Prometheus
	if s.cfg.Querier == nil {
		prom = ""
	}
	writeJSON(w, Version{Version: version.Version, Mode: s.cfg.Mode, Prometheus: prom})
}

// Version is /api/version's answer.
type Version struct {
	Version    string `json:"version"`
	Mode       string `json:"mode"`
	Prometheus string `json:"prometheus"`
}

func (s *Server) querier(w http.ResponseWriter) metricsapi.Querier {
	if s.cfg.Querier == nil {
		writeError(w, http.StatusServiceUnavailable, errors.New("no Prometheus is configured for viz"))
	}
	return s.cfg.Querier
}

// params reads the parameters every metrics endpoint shares.
type params struct {
	q      url.Values
	ns     string
	all    bool
	window time.Duration
}

func readParams(r *http.Request) (params, error) {
	q := r.URL.Query()
	p := params{q: q, ns: q.Get("namespace"), all: q.Get("allNamespaces") == "true"}
	if p.all {
		p.ns = ""
	} else if p.ns == "" {
		p.ns = "default"
	}
	w := q.Get("window")
	if w == "" {
		w = "1m"
	}
	var err error
	if p.window, err = metricsapi.ParseWindow(w); err != nil {
		return p, fmt.Errorf("window: %w", err)
	}
	return p, nil
}

// resource reads a TYPE[/NAME] parameter.
func (p params) resource(name string, required bool) (*metricsapi.Resource, error) {
	v := p.q.Get(name)
	if v == "" {
		if required {
			return nil, fmt.Errorf("%s: required (e.g. deploy or deploy/web)", name)
		}
		return nil, nil
	}
	ns := p.ns
	if name == "to" && p.q.Get("toNamespace") != "" {
		ns = p.q.Get("toNamespace")
	}
	r, err := metricsapi.ParseResource(v, ns)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &r, nil
}

// metricsEndpoint serves one metrics question: build reads the parameters into a query to run (a bad parameter is a
// 400), and the rows answer under key, with the CLI command in CommandHeader.
func metricsEndpoint[T any](s *Server, key string, build func(p params) (cmd string, run func(context.Context, metricsapi.Querier) ([]T, error), err error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := readParams(r)
		if err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		cmd, run, err := build(p)
		if err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		q := s.querier(w)
		if q == nil {
			return
		}
		rows, err := run(r.Context(), q)
		if err != nil {
			writeQueryError(w, err)
			return
		}
		if rows == nil {
			rows = []T{}
		}
		w.Header().Set(CommandHeader, cmd)
		writeJSON(w, map[string]any{key: rows})
	}
}

// statQuery reads /api/stat: resource, from, to.
func statQuery(p params) (string, func(context.Context, metricsapi.Querier) ([]metricsapi.StatRow, error), error) {
	req := metricsapi.StatRequest{Window: p.window}
	res, err := p.resource("resource", true)
	if err == nil {
		req.Resource = *res
		if req.From, err = p.resource("from", false); err == nil {
			req.To, err = p.resource("to", false)
		}
	}
	if err == nil {
		err = req.Validate()
	}
	return command("stat", p, p.q.Get("resource"), "from", "to"), func(ctx context.Context, q metricsapi.Querier) ([]metricsapi.StatRow, error) {
		return metricsapi.Stat(ctx, q, req, time.Time{})
	}, err
}

// edgesQuery reads /api/edges: kind.
func edgesQuery(p params) (string, func(context.Context, metricsapi.Querier) ([]metricsapi.Edge, error), error) {
	kind := p.q.Get("kind")
	if kind == "" {
		kind = "deploy"
	}
	k, err := metricsapi.ParseResource(kind, p.ns)
	if err == nil && k.Name != "" {
		err = fmt.Errorf("kind: edges take a TYPE, not %q", kind)
	}
	return command("edges", p, kind), func(ctx context.Context, q metricsapi.Querier) ([]metricsapi.Edge, error) {
		return metricsapi.Edges(ctx, q, k.Kind, p.ns, p.window, time.Time{})
	}, err
}

// routesQuery reads /api/routes: resource, to.
func routesQuery(p params) (string, func(context.Context, metricsapi.Querier) ([]metricsapi.RouteRow, error), error) {
	req := metricsapi.RoutesRequest{Window: p.window}
	res, err := p.resource("resource", true)
	if err == nil {
		req.Resource = *res
		req.To, err = p.resource("to", false)
	}
	if err == nil {
		err = req.Validate()
	}
	return command("routes", p, p.q.Get("resource"), "to"), func(ctx context.Context, q metricsapi.Querier) ([]metricsapi.RouteRow, error) {
		return metricsapi.Routes(ctx, q, req, time.Time{})
	}, err
}

// authzQuery reads /api/authz: resource.
func authzQuery(p params) (string, func(context.Context, metricsapi.Querier) ([]metricsapi.AuthzRow, error), error) {
	req := metricsapi.AuthzRequest{Window: p.window}
	res, err := p.resource("resource", true)
	if err == nil {
		req.Resource = *res
		err = req.Validate()
	}
	return command("authz", p, p.q.Get("resource")), func(ctx context.Context, q metricsapi.Querier) ([]metricsapi.AuthzRow, error) {
		return metricsapi.Authz(ctx, q, req, time.Time{})
	}, err
}

// TapLine is one line of /api/tap's stream.
type TapLine struct {
	Proxy string          `json:"proxy"`
	Index int             `json:"index"`
	Event json.RawMessage `json:"event,omitempty"`
	Error string          `json:"error,omitempty"`
}

// TapRequest reads /api/tap's parameters.
func TapRequest(q url.Values) (tapsvc.Request, error) {
	p := params{q: q, ns: q.Get("namespace")}
	if p.ns == "" {
		p.ns = "default"
	}
	var req tapsvc.Request
	res, err := p.resource("resource", true)
	if err != nil {
		return req, err
	}
	req.Resource = *res
	if req.To, err = p.resource("to", false); err != nil {
		return req, err
	}
	req.Method, req.Path, req.Authority, req.Scheme = q.Get("method"), q.Get("path"), q.Get("authority"), q.Get("scheme")
	if v := q.Get("maxRps"); v != "" {
		if req.MaxRPS, err = strconv.ParseFloat(v, 64); err != nil {
			return req, fmt.Errorf("maxRps: %q is not a number", v)
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return req, fmt.Errorf("limit: %q is not a count", v)
		}
		req.Limit = uint32(n)
	}
	return req, req.Validate()
}

func (s *Server) tap(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	req, err := TapRequest(q)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	if s.cfg.Tap == nil {
		writeError(w, http.StatusServiceUnavailable, errors.New("tap is not available"))
		return
	}
	targets, err := s.cfg.Tap.Resolve(r.Context(), req)
	if err != nil {
		status := http.StatusBadGateway
		switch {
		case errors.Is(err, tapsvc.ErrNoTargets):
			status = http.StatusNotFound
		case r.Context().Err() != nil:
			return
		}
		writeError(w, status, err)
		return
	}
	// The stream starts now, so a client sees it is connected before the first request goes by.
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set(CommandHeader, command("tap", params{q: q, ns: req.Resource.Namespace}, q.Get("resource"), "to"))
	w.WriteHeader(http.StatusOK)
	_ = rc.Flush()
	enc := json.NewEncoder(w)
	err = s.cfg.Tap.Stream(r.Context(), req, targets, func(l tapsvc.Line) error {
		line := TapLine{Proxy: l.Proxy, Index: l.Index}
		if l.Err != nil {
			line.Error = l.Err.Error()
		} else {
			b, err := protojson.Marshal(l.Event)
			if err != nil {
				return err
			}
			line.Event = b
		}
		if err := enc.Encode(line); err != nil {
			return err
		}
		return rc.Flush()
	})
	if err != nil && r.Context().Err() == nil {
		// The status is sent; the stream's last line says why it ended.
		_ = enc.Encode(TapLine{Proxy: "", Index: -1, Error: err.Error()})
		s.cfg.Log.Info("tap stream ended", "err", err)
	}
}

// CommandHeader carries the CLI command that gives the same answer.
const CommandHeader = "X-Sinew-Command"

// command spells the CLI equivalent of a request.
func command(verb string, p params, arg string, flags ...string) string {
	parts := []string{"sinew", "viz", verb, arg}
	if p.all || p.ns == "" {
		parts = append(parts, "-A")
	} else {
		parts = append(parts, "-n", p.ns)
	}
	for _, f := range flags {
		if v := p.q.Get(f); v != "" {
			parts = append(parts, "--"+f, v)
		}
	}
	if verb != "tap" {
		if w := p.q.Get("window"); w != "" && w != "1m" {
			parts = append(parts, "-t", w)
		}
	}
	return strings.Join(parts, " ")
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
}

func writeQueryError(w http.ResponseWriter, err error) {
	status := http.StatusBadGateway
	if metricsapi.IsUnreachable(err) {
		status = http.StatusServiceUnavailable
	}
	if errors.Is(err, context.Canceled) {
		return
	}
	writeError(w, status, err)
}

// staticFiles serves the dashboard; paths that are not files get index.html, so deep links work.
func staticFiles(assets fs.FS) http.Handler {
	files := http.FileServerFS(assets)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/")
		if name != "" {
			if st, err := fs.Stat(assets, name); err != nil || st.IsDir() {
				r2 := r.Clone(r.Context())
				r2.URL.Path = "/"
				files.ServeHTTP(w, r2)
				return
			}
		}
		files.ServeHTTP(w, r)
	})
}
