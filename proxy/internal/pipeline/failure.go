package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sinewmesh/sinew/proxy/internal/endpoint"
)

// Errors the layers produce; Classify maps them (and everything else) to what the client sees.
var (
	ErrNoEndpoints = errors.New("no endpoints")
	// ErrAllEjected: every endpoint of the backend is ejected by failure accrual; fail fast.
	ErrAllEjected  = errors.New("every endpoint is failing")
	ErrUnresolved  = errors.New("destination not resolved: control plane unreachable and nothing cached")
	ErrUnknownPort = errors.New("no application port configured for this request")
	// ErrTimeout: the route's request or per-attempt timeout passed before the response headers arrived.
	ErrTimeout = errors.New("request timed out")
	// ErrNoRoute: the target's policy has no rule that matches the request.
	ErrNoRoute = errors.New("no route matches the request")
	// ErrDenied: the authorization policy refused the request.
	ErrDenied = errors.New("request denied by authorization policy")
	// ErrNoPolicy: the port's authorization policy has not arrived from the control plane; nobody is admitted.
	ErrNoPolicy = errors.New("no authorization policy for the port yet")
	// ErrClientBody: reading the client's request body failed.
	ErrClientBody = errors.New("reading the request body")
	// ErrUnsupportedFilter: the route asks for a filter this proxy cannot apply.
	ErrUnsupportedFilter = errors.New("route filter not supported by this proxy")
)

// RateLimitedError: a local rate limit of the inbound port refused the request (429, gRPC RESOURCE_EXHAUSTED);
// the client may try again after RetryAfter.
type RateLimitedError struct {
	Limit      string // which limit: total, identity, override
	RetryAfter time.Duration
}

func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("rate limited by the port's %s limit; retry after %v", e.Limit, e.RetryAfter.Round(time.Millisecond))
}

// InjectedError: a FailureInjector filter of the route answered the request itself (the control plane's way of
// failing the share of a backend that does not resolve, or a rule whose filter no proxy can apply yet, with
// Message saying which). It is deliberate, so it is not retried.
type InjectedError struct {
	Status  int
	Message string
	GRPC    int // the gRPC status for gRPC clients; 0: the one of Status
}

func (e *InjectedError) Error() string { return "failure injected by the route: " + e.Message }

// injectedGRPC is the gRPC status of an injected HTTP status.
func injectedGRPC(status int) int {
	switch status {
	case http.StatusServiceUnavailable, http.StatusBadGateway:
		return 14 // UNAVAILABLE
	case http.StatusGatewayTimeout:
		return 4 // DEADLINE_EXCEEDED
	case http.StatusTooManyRequests:
		return 8 // RESOURCE_EXHAUSTED
	case http.StatusForbidden:
		return 7 // PERMISSION_DENIED
	case http.StatusUnauthorized:
		return 16 // UNAUTHENTICATED
	case http.StatusNotFound:
		return 12 // UNIMPLEMENTED
	}
	return 13 // INTERNAL
}

// UnauthenticatedError: an authorization of the port would admit the request with a valid token, and it has none
// or an invalid one (401 with WWW-Authenticate, gRPC UNAUTHENTICATED). Reason says why, never the token.
type UnauthenticatedError struct {
	Realm   string
	Invalid bool // a token was there but did not verify (error="invalid_token")
	Reason  string
}

func (e *UnauthenticatedError) Error() string { return "unauthenticated: " + e.Reason }

// Failure is what a client sees of a request the proxy could not complete.
type Failure struct {
	Status int
	Kind   string // short, stable: the metric label and the sinew-proxy-error header
	GRPC   int    // the gRPC status for gRPC clients
}

// Kinds of failure that mean the request never reached an application: a peer proxy that answers with one of
// these in sinew-proxy-error did not pass the request on, so another endpoint may be tried whatever the method.
const (
	KindConnectionRefused = "connection_refused"
	KindUnknownPort       = "unknown_port"
)

// ProxyErrorHeader carries a Failure's Kind on a response the proxy made itself.
const ProxyErrorHeader = "Sinew-Proxy-Error"

// Classify is the one place where an error becomes a status: 503 when there is nowhere to send the request, 504 on
// timeout, 499 when the client went away, 403 when policy refuses it, 404 when no route matches, the injected
// status when a route's FailureInjector answered, 502 for every other upstream failure. client is the client's
// request context.
func Classify(client context.Context, err error) Failure {
	var (
		ne net.Error
		ie *InjectedError
	)
	switch {
	case errors.Is(err, ErrTimeout):
		return Failure{http.StatusGatewayTimeout, "timeout", 4}
	case client.Err() != nil:
		return Failure{499, "client_gone", 1}
	case errors.Is(err, context.Canceled):
		// The client is still there: only a timeout of ours cancels an attempt.
		return Failure{http.StatusGatewayTimeout, "timeout", 4}
	case errors.Is(err, ErrClientBody):
		return Failure{http.StatusBadRequest, "bad_request_body", 13}
	case errors.Is(err, ErrDenied):
		return Failure{http.StatusForbidden, "forbidden", 7}
	case errors.As(err, new(*UnauthenticatedError)):
		return Failure{http.StatusUnauthorized, "unauthenticated", 16}
	case errors.As(err, new(*RateLimitedError)):
		return Failure{http.StatusTooManyRequests, "rate_limited", 8}
	case errors.Is(err, ErrNoPolicy):
		return Failure{http.StatusServiceUnavailable, "no_policy", 14}
	case errors.Is(err, ErrUnsupportedFilter):
		return Failure{http.StatusInternalServerError, "unsupported_filter", 13}
	case errors.As(err, &ie):
		status := ie.Status
		if status < 100 || status > 599 {
			status = http.StatusInternalServerError
		}
		grpc := injectedGRPC(status)
		if ie.GRPC > 0 && ie.GRPC <= 16 {
			grpc = ie.GRPC
		}
		return Failure{status, "failure_injected", grpc}
	case errors.Is(err, ErrNoRoute):
		return Failure{http.StatusNotFound, "no_route", 12}
	case errors.Is(err, ErrNoEndpoints):
		return Failure{http.StatusServiceUnavailable, "no_endpoints", 14}
	case errors.Is(err, ErrAllEjected):
		return Failure{http.StatusServiceUnavailable, "endpoints_failing", 14}
	case errors.Is(err, ErrUnresolved):
		return Failure{http.StatusServiceUnavailable, "unresolved", 14}
	case errors.Is(err, endpoint.ErrNoCertificate):
		return Failure{http.StatusServiceUnavailable, "no_identity", 14}
	case errors.Is(err, ErrUnknownPort):
		return Failure{http.StatusBadGateway, KindUnknownPort, 14}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return Failure{http.StatusGatewayTimeout, "timeout", 4}
	case errors.Is(err, syscall.ECONNREFUSED):
		return Failure{http.StatusBadGateway, KindConnectionRefused, 14}
	}
	return Failure{http.StatusBadGateway, "upstream_failure", 14}
}

// WriteFailure answers a request the proxy could not complete and logs the same error id that the response
// carries. gRPC clients get a trailers-only gRPC error so their libraries report it properly. It returns the HTTP
// status and gRPC status (-1 for none) the client saw, for metrics.
func WriteFailure(w http.ResponseWriter, r *http.Request, log *slog.Logger, dir Direction, err error) (status, grpc int) {
	f := Classify(r.Context(), err)
	id := fmt.Sprintf("%016x", rand.Uint64())
	level := slog.LevelWarn
	if f.Status == 499 {
		level = slog.LevelDebug
	}
	if log.Enabled(r.Context(), level) {
		log.Log(r.Context(), level, "request failed", "error_id", id, "direction", dir.String(), "status", f.Status,
			"kind", f.Kind, "authority", r.Host, "path", r.URL.Path, "err", err)
	}
	if f.Status == 499 {
		return f.Status, -1
	}
	h := w.Header()
	h.Set(ProxyErrorHeader, f.Kind)
	if ue := (*UnauthenticatedError)(nil); errors.As(err, &ue) {
		challenge := fmt.Sprintf("Bearer realm=%q", ue.Realm)
		if ue.Invalid {
			challenge += `, error="invalid_token"`
		}
		h.Set("Www-Authenticate", challenge)
	}
	if rl := (*RateLimitedError)(nil); errors.As(err, &rl) {
		// Whole seconds, rounded up: HTTP has no finer Retry-After.
		h.Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(rl.RetryAfter.Seconds())))))
	}
	h.Set("Sinew-Error-Id", id)
	if IsGRPC(r) {
		h.Set("Content-Type", "application/grpc")
		h.Set("Grpc-Status", strconv.Itoa(f.GRPC))
		// What the HTTP body says: the kind and why (the route, the backend, the policy), never a token.
		h.Set("Grpc-Message", grpcMessage(fmt.Sprintf("sinew proxy: %s: %v (error id %s)", f.Kind, err, id)))
		w.WriteHeader(http.StatusOK)
		return http.StatusOK, f.GRPC
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(f.Status)
	fmt.Fprintf(w, "sinew proxy: %s: %v (error id %s)\n", f.Kind, err, id)
	return f.Status, -1
}

// IsGRPC reports whether r is a gRPC request.
func IsGRPC(r *http.Request) bool {
	return strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc")
}

// GRPCStatus is the grpc-status in h, or -1 when there is none.
func GRPCStatus(h http.Header) int {
	v := h.Get("Grpc-Status") // canonical already: Get does not allocate a canonical copy of the key
	if v == "" {
		return -1
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return -1
	}
	return n
}

// Failed is how response_total classifies an answer, the application's or one the proxy made itself (Linkerd's
// rule): by its gRPC status when it has one (anything but OK fails), else HTTP 5xx fails, and so does 499 (the
// client left before the answer). A 4xx, a policy's refusal included, is not the workload failing.
func Failed(status, grpc int) bool {
	if grpc >= 0 {
		return grpc != 0
	}
	return status >= 500 || status == 499
}

// grpcMessage percent-encodes a grpc-message value as the gRPC spec asks: every byte outside printable ASCII, and
// '%' itself.
func grpcMessage(msg string) string {
	var b strings.Builder
	for i := 0; i < len(msg); i++ {
		c := msg[i]
		if c >= 0x20 && c <= 0x7e && c != '%' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}
