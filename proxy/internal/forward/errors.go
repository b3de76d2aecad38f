package forward

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
)

// Errors the forwarders produce; failure() maps them (and everything else) to a status.
var (
	errNoEndpoints   = errors.New("no endpoints")
	errUnresolved    = errors.New("destination not resolved: control plane unreachable and nothing cached")
	errNoCertificate = errors.New("no workload certificate yet")
	errUnknownPort   = errors.New("no application port configured for this request")
)

// failure is the one place where a forwarding error becomes what the client sees: 503 when there is nowhere to
// send the request, 504 on timeout, 499 when the client went away, 502 for every other upstream failure.
type failure struct {
	status int
	kind   string // short, stable, also the metric label and the sinew-proxy-error header
	grpc   int    // gRPC status code for gRPC clients
}

func classify(ctx context.Context, err error) failure {
	var ne net.Error
	switch {
	case ctx.Err() == context.Canceled || errors.Is(err, context.Canceled):
		return failure{499, "client_gone", 1}
	case errors.Is(err, errNoEndpoints):
		return failure{http.StatusServiceUnavailable, "no_endpoints", 14}
	case errors.Is(err, errUnresolved):
		return failure{http.StatusServiceUnavailable, "unresolved", 14}
	case errors.Is(err, errNoCertificate):
		return failure{http.StatusServiceUnavailable, "no_identity", 14}
	case errors.Is(err, errUnknownPort):
		return failure{http.StatusBadGateway, "unknown_port", 14}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return failure{http.StatusGatewayTimeout, "timeout", 4}
	case errors.Is(err, syscall.ECONNREFUSED):
		return failure{http.StatusBadGateway, "connection_refused", 14}
	}
	return failure{http.StatusBadGateway, "upstream_failure", 14}
}

// writeFailure answers a request the proxy could not forward and logs the same error id that the response
// carries. gRPC clients get a trailers-only gRPC error so their libraries report it properly. It returns the
// HTTP status and gRPC status (-1 for none) the client saw, for metrics.
func writeFailure(w http.ResponseWriter, r *http.Request, log *slog.Logger, direction string, err error) (status, grpc int) {
	f := classify(r.Context(), err)
	id := fmt.Sprintf("%016x", rand.Uint64())
	level := slog.LevelWarn
	if f.status == 499 {
		level = slog.LevelDebug
	}
	if log.Enabled(r.Context(), level) {
		log.Log(r.Context(), level, "request failed", "error_id", id, "direction", direction, "status", f.status,
			"kind", f.kind, "authority", r.Host, "path", r.URL.Path, "err", err)
	}
	if f.status == 499 {
		return f.status, -1
	}
	h := w.Header()
	h.Set("sinew-proxy-error", f.kind)
	h.Set("sinew-error-id", id)
	if isGRPC(r) {
		h.Set("content-type", "application/grpc")
		h.Set("grpc-status", fmt.Sprint(f.grpc))
		h.Set("grpc-message", fmt.Sprintf("sinew proxy: %s (error id %s)", f.kind, id))
		w.WriteHeader(http.StatusOK)
		return http.StatusOK, f.grpc
	}
	h.Set("content-type", "text/plain; charset=utf-8")
	w.WriteHeader(f.status)
	fmt.Fprintf(w, "sinew proxy: %s: %v (error id %s)\n", f.kind, err, id)
	return f.status, -1
}

func isGRPC(r *http.Request) bool {
	return strings.HasPrefix(r.Header.Get("content-type"), "application/grpc")
}
