package layer

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	policyv1 "github.com/sinewmesh/sinew/api/policy/v1"
	"github.com/sinewmesh/sinew/proxy/internal/pipeline"
	"github.com/sinewmesh/sinew/proxy/internal/policy"
)

// Filters applies the matched rule's filters, in their order: request and response header modifiers, URL
// rewrites, redirects (answered here), mirrors (a copy sent through mirror, see Mirror), faults (delays and
// aborts) and failure injectors. A filter this proxy does not know is answered 500 rather than skipped: a route's
// author relies on its filters. A backend's own filters are applied by Split, per attempt.
func Filters(mirror *Mirror) pipeline.Layer {
	return func(next pipeline.Handler) pipeline.Handler {
		return pipeline.HandlerFunc(func(req *pipeline.Request) (*http.Response, error) {
			if req.Rule == nil || len(req.Rule.Filters) == 0 {
				return next.Handle(req)
			}
			return applyFilters(req, req.Rule.Filters, req.Rule.FaultActive, mirror, next)
		})
	}
}

// applyFilters runs req through filters, then next, then the response header modifiers; active are the filters'
// fault counters (policy.Rule.FaultActive). The request is changed in place.
func applyFilters(req *pipeline.Request, filters []*policyv1.Filter, active []atomic.Int32, mirror *Mirror, next pipeline.Handler) (*http.Response, error) {
	var (
		respMods []*policyv1.Filter_HeaderModifier
		mirrors  []*policyv1.Filter_Mirror
	)
	for i, f := range filters {
		switch k := f.GetKind().(type) {
		case *policyv1.Filter_RequestHeaderModifier:
			modifyHeader(req.HTTP.Header, k.RequestHeaderModifier)
		case *policyv1.Filter_ResponseHeaderModifier:
			respMods = append(respMods, k.ResponseHeaderModifier)
		case *policyv1.Filter_FailureInjector_:
			if err := injectFailure(k.FailureInjector); err != nil {
				return nil, err
			}
		case *policyv1.Filter_UrlRewrite_:
			if err := rewrite(req, k.UrlRewrite); err != nil {
				return nil, err
			}
		case *policyv1.Filter_Redirect_:
			resp, err := redirect(req, k.Redirect)
			if err != nil {
				return nil, err
			}
			for _, m := range respMods {
				modifyHeader(resp.Header, m)
			}
			return resp, nil
		case *policyv1.Filter_Mirror_:
			mirrors = append(mirrors, k.Mirror)
		case *policyv1.Filter_Fault_:
			if err := fault(req, k.Fault, &active[i]); err != nil {
				return nil, err
			}
		default:
			return nil, pipeline.ErrUnsupportedFilter
		}
	}
	// Mirrors copy the request as the filters left it.
	for _, m := range mirrors {
		if chance(m.GetRatio()) {
			mirror.Send(req, m.GetAuthority())
		}
	}
	resp, err := next.Handle(req)
	if err != nil {
		return nil, err
	}
	for _, m := range respMods {
		modifyHeader(resp.Header, m)
	}
	return resp, nil
}

// injectFailure is the failure a FailureInjector gives this request: its status for a ratio of the requests
// (1 or more: all; 0: none), nil for the others. A delay is not applied (the control plane sends delays as
// Faults), so an injector with one fails every request as unsupported.
func injectFailure(fi *policyv1.Filter_FailureInjector) error {
	if fi.GetDelay() != nil {
		return pipeline.ErrUnsupportedFilter
	}
	if !chance(fi.GetRatio()) {
		return nil
	}
	return &pipeline.InjectedError{Status: int(fi.GetStatus()), Message: fi.GetMessage()}
}

// chance draws whether a ratio's share includes this request: always at 1 or more, never at 0.
func chance(ratio float64) bool { return ratio >= 1 || rand.Float64() < ratio }

// fault applies an HTTPFault to the request: its delay for the delay's share of the requests, then its abort for
// the abort's share, each drawn on its own. A request counts as faulted (active) for as long as its delay lasts;
// while max_active requests are, the next ones are left alone.
func fault(req *pipeline.Request, f *policyv1.Filter_Fault, active *atomic.Int32) error {
	delay := f.GetDelay() != nil && f.GetDelay().GetFixed().AsDuration() > 0 && chance(f.GetDelay().GetRatio())
	abort := f.GetAbort() != nil && chance(f.GetAbort().GetRatio())
	if !delay && !abort {
		return nil
	}
	if limit := int32(f.GetMaxActive()); limit > 0 {
		defer active.Add(-1)
		if active.Add(1) > limit {
			return nil
		}
	}
	if delay {
		t := time.NewTimer(f.GetDelay().GetFixed().AsDuration())
		select {
		case <-t.C:
		case <-req.HTTP.Context().Done():
			t.Stop()
			return req.HTTP.Context().Err()
		}
	}
	if !abort {
		return nil
	}
	a := f.GetAbort()
	status := int(a.GetHttpStatus())
	if status == 0 {
		status = http.StatusInternalServerError
	}
	return &pipeline.InjectedError{Status: status, GRPC: int(a.GetGrpcCode()), Message: "fault injected by the route"}
}

// errPrefixRewrite: a rewrite or redirect replaces the matched path prefix, but the request was not matched by one.
var errPrefixRewrite = fmt.Errorf("%w: the path prefix to replace was not matched by a prefix", pipeline.ErrUnsupportedFilter)

// rewrite applies a URL rewrite: the request's authority and path.
func rewrite(req *pipeline.Request, rw *policyv1.Filter_UrlRewrite) error {
	if h := rw.GetHost(); h != "" {
		req.HTTP.Host = h
	}
	if pm := rw.GetPath(); pm != nil {
		p, err := modifiedPath(req, pm)
		if err != nil {
			return err
		}
		setPath(req.HTTP.URL, p)
	}
	return nil
}

// modifiedPath is the request's path (as sent, escaped) changed by pm.
func modifiedPath(req *pipeline.Request, pm *policyv1.Filter_PathModifier) (string, error) {
	switch k := pm.GetKind().(type) {
	case *policyv1.Filter_PathModifier_Full:
		return k.Full, nil
	case *policyv1.Filter_PathModifier_Prefix:
		m := req.Match
		if m == nil || (m.Path.Kind != policy.PathPrefix && m.Path.Kind != policy.PathAny) {
			return "", errPrefixRewrite
		}
		return replacePrefix(escapedPath(req.HTTP.URL), m.Path.Value, k.Prefix), nil
	}
	return "", pipeline.ErrUnsupportedFilter
}

// replacePrefix replaces the matched prefix of path with replacement, as the Gateway API's ReplacePrefixMatch does:
// the prefix is matched by path element, and trailing slashes of the prefix and the replacement do not count
// ("/foo" → "/xyz" makes "/foo/bar" "/xyz/bar"; "/foo" → "/" makes it "/bar").
func replacePrefix(path, prefix, replacement string) string {
	prefix = strings.TrimSuffix(prefix, "/")
	rest := strings.TrimPrefix(path, prefix)
	out := strings.TrimSuffix(replacement, "/") + rest
	if out == "" {
		return "/"
	}
	if out[0] != '/' {
		out = "/" + out
	}
	return out
}

func escapedPath(u *url.URL) string {
	if p := u.EscapedPath(); p != "" {
		return p
	}
	return "/"
}

// setPath sets an escaped path on u.
func setPath(u *url.URL, escaped string) {
	if p, err := url.PathUnescape(escaped); err == nil {
		u.Path, u.RawPath = p, escaped
		if u.EscapedPath() == p {
			u.RawPath = ""
		}
		return
	}
	u.Path, u.RawPath = escaped, ""
}

// redirect answers the request with a redirect: its URL changed by the filter's scheme, host, port and path.
func redirect(req *pipeline.Request, rd *policyv1.Filter_Redirect) (*http.Response, error) {
	scheme := rd.GetScheme()
	if scheme == "" {
		scheme = "http"
		if req.Client.TLS != nil {
			scheme = "https"
		}
	}
	host, reqPort := splitHost(req.HTTP.Host)
	if _, p := splitHost(req.Out.Target); p != "" {
		// The port of the target (a Service port): Gateway API keeps the listener's.
		reqPort = p
	}
	if h := rd.GetHost(); h != "" {
		host = h
	}
	port := reqPort
	switch {
	case rd.GetPort() != 0:
		port = strconv.Itoa(int(rd.GetPort()))
	case rd.GetScheme() != "":
		port = defaultPort(scheme)
	}
	if port == defaultPort(scheme) {
		port = ""
	}
	path := escapedPath(req.HTTP.URL)
	if pm := rd.GetPathModifier(); pm != nil {
		p, err := modifiedPath(req, pm)
		if err != nil {
			return nil, err
		}
		path = p
	}
	loc := url.URL{Scheme: scheme, Host: host, RawQuery: req.HTTP.URL.RawQuery}
	if port != "" {
		loc.Host = net.JoinHostPort(host, port)
	}
	setPath(&loc, path)
	status := int(rd.GetStatus())
	if status < 300 || status > 399 {
		status = http.StatusFound
	}
	h := http.Header{"Location": {loc.String()}, "Content-Length": {"0"}}
	return &http.Response{StatusCode: status, Status: strconv.Itoa(status) + " " + http.StatusText(status),
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: h, Body: http.NoBody, ContentLength: 0, Request: req.HTTP}, nil
}

// splitHost splits "host:port" (or "host", "[v6]:port") into host and port ("" when none).
func splitHost(hostport string) (host, port string) {
	h, p, err := net.SplitHostPort(hostport)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) && ae.Err == "missing port in address" {
			return strings.Trim(hostport, "[]"), ""
		}
		return hostport, ""
	}
	return h, p
}

func defaultPort(scheme string) string {
	switch scheme {
	case "http":
		return "80"
	case "https":
		return "443"
	}
	return ""
}

// modifyHeader applies a Gateway API header modifier: set replaces, add appends, remove deletes.
func modifyHeader(h http.Header, m *policyv1.Filter_HeaderModifier) {
	for k, v := range m.GetSet() {
		h.Set(k, v)
	}
	for k, v := range m.GetAdd() {
		h.Add(k, v)
	}
	for _, k := range m.GetRemove() {
		h.Del(k)
	}
}
