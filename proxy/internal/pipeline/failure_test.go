package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sinewmesh/sinew/proxy/internal/endpoint"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	cases := []struct {
		ctx    context.Context
		err    error
		status int
		kind   string
		grpc   int
	}{
		{context.Background(), fmt.Errorf("web: %w", ErrNoEndpoints), 503, "no_endpoints", 14},
		{context.Background(), ErrUnresolved, 503, "unresolved", 14},
		{context.Background(), endpoint.ErrNoCertificate, 503, "no_identity", 14},
		{context.Background(), context.DeadlineExceeded, 504, "timeout", 4},
		{context.Background(), os.ErrDeadlineExceeded, 504, "timeout", 4},
		{context.Background(), refused, 502, "connection_refused", 14},
		{context.Background(), errors.New("tls: bad certificate"), 502, "upstream_failure", 14},
		{canceled, errors.New("anything"), 499, "client_gone", 1},
		{canceled, fmt.Errorf("attempt: %w", ErrTimeout), 504, "timeout", 4},
		{context.Background(), ErrDenied, 403, "forbidden", 7},
		{context.Background(), fmt.Errorf("port 8080: %w", ErrNoPolicy), 503, "no_policy", 14},
		{context.Background(), &RateLimitedError{Limit: "total", RetryAfter: 300 * time.Millisecond}, 429, "rate_limited", 8},
		{context.Background(), ErrNoRoute, 404, "no_route", 12},
		{context.Background(), ErrAllEjected, 503, "endpoints_failing", 14},
		{context.Background(), &endpoint.DialError{Addr: "10.0.0.1:80", Err: refused}, 502, "connection_refused", 14},
		{context.Background(), fmt.Errorf("backend web-v3: %w", &InjectedError{Status: 500, Message: "no Service web-v3"}), 500, "failure_injected", 13},
		{context.Background(), &InjectedError{Status: 503}, 503, "failure_injected", 14},
		{context.Background(), &InjectedError{Status: 0}, 500, "failure_injected", 13},
	}
	for _, c := range cases {
		f := Classify(c.ctx, c.err)
		if f.Status != c.status || f.Kind != c.kind || f.GRPC != c.grpc {
			t.Errorf("classify(%v) = %+v, want %d %s %d", c.err, f, c.status, c.kind, c.grpc)
		}
	}
}

func TestWriteFailure(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	r := httptest.NewRequest("GET", "http://web/x", nil)
	w := httptest.NewRecorder()
	WriteFailure(w, r, log, Outbound, ErrNoEndpoints)
	if w.Code != 503 || w.Header().Get("sinew-proxy-error") != "no_endpoints" || len(w.Header().Get("sinew-error-id")) != 16 {
		t.Fatalf("HTTP failure: %d %v", w.Code, w.Header())
	}

	// gRPC clients get a trailers-only gRPC status rather than an HTTP error page.
	r = httptest.NewRequest("POST", "http://emoji/Emoji/List", nil)
	r.Header.Set("content-type", "application/grpc")
	w = httptest.NewRecorder()
	WriteFailure(w, r, log, Outbound, context.DeadlineExceeded)
	if w.Code != http.StatusOK || w.Header().Get("grpc-status") != "4" || w.Header().Get("content-type") != "application/grpc" {
		t.Fatalf("gRPC failure: %d %v", w.Code, w.Header())
	}

	// The gRPC message says why, as the HTTP body does, percent-encoded as gRPC wants.
	w = httptest.NewRecorder()
	WriteFailure(w, r, log, Outbound, &InjectedError{Status: 503, Message: "HTTPRoute ns/r: backend \"gone\" is 100% missing ✗"})
	msg := w.Header().Get("grpc-message")
	if !strings.HasPrefix(msg, "sinew proxy: failure_injected: ") || !strings.Contains(msg, `backend "gone" is 100%25 missing %E2%9C%97`) {
		t.Errorf("grpc-message %q", msg)
	}
}

// TestRateLimitedAnswer: a rate-limited request gets 429 with Retry-After in whole seconds, rounded up; a gRPC one
// RESOURCE_EXHAUSTED.
func TestRateLimitedAnswer(t *testing.T) {
	err := &RateLimitedError{Limit: "identity", RetryAfter: 1200 * time.Millisecond}
	w := httptest.NewRecorder()
	WriteFailure(w, httptest.NewRequest("GET", "/", nil), slog.New(slog.DiscardHandler), Inbound, err)
	if w.Code != 429 || w.Header().Get("Retry-After") != "2" || w.Header().Get(ProxyErrorHeader) != "rate_limited" {
		t.Errorf("HTTP: %d Retry-After %q kind %q", w.Code, w.Header().Get("Retry-After"), w.Header().Get(ProxyErrorHeader))
	}
	r := httptest.NewRequest("POST", "/pkg.Svc/Method", nil)
	r.Header.Set("Content-Type", "application/grpc")
	w = httptest.NewRecorder()
	WriteFailure(w, r, slog.New(slog.DiscardHandler), Inbound, err)
	if w.Code != 200 || w.Header().Get("Grpc-Status") != "8" {
		t.Errorf("gRPC: %d grpc-status %q, want RESOURCE_EXHAUSTED (8)", w.Code, w.Header().Get("Grpc-Status"))
	}
}

// TestUnauthenticatedAnswer: a request without a valid token gets 401 with a Bearer challenge (error=invalid_token
// when there was one); a gRPC one UNAUTHENTICATED.
func TestUnauthenticatedAnswer(t *testing.T) {
	for _, c := range []struct {
		err  *UnauthenticatedError
		want string
	}{
		{&UnauthenticatedError{Realm: "web-http", Reason: "no token"}, `Bearer realm="web-http"`},
		{&UnauthenticatedError{Realm: "web-http", Invalid: true, Reason: "invalid token: expired"}, `Bearer realm="web-http", error="invalid_token"`},
	} {
		w := httptest.NewRecorder()
		WriteFailure(w, httptest.NewRequest("GET", "/", nil), slog.New(slog.DiscardHandler), Inbound, c.err)
		if w.Code != 401 || w.Header().Get("Www-Authenticate") != c.want {
			t.Errorf("%v: %d WWW-Authenticate %q, want 401 %q", c.err, w.Code, w.Header().Get("Www-Authenticate"), c.want)
		}
	}
	r := httptest.NewRequest("POST", "/pkg.Svc/Method", nil)
	r.Header.Set("Content-Type", "application/grpc")
	w := httptest.NewRecorder()
	WriteFailure(w, r, slog.New(slog.DiscardHandler), Inbound, &UnauthenticatedError{Reason: "no token"})
	if w.Header().Get("Grpc-Status") != "16" {
		t.Errorf("gRPC: grpc-status %q, want UNAUTHENTICATED (16)", w.Header().Get("Grpc-Status"))
	}
}

// TestFailed: the classification of answers, the application's and the proxy's alike.
func TestFailed(t *testing.T) {
	for _, c := range []struct {
		status, grpc int
		want         bool
	}{{200, -1, false}, {403, -1, false}, {404, -1, false}, {429, -1, false}, {499, -1, true}, {500, -1, true},
		{503, -1, true}, {200, 0, false}, {200, 7, true}, {503, 0, false}} {
		if got := Failed(c.status, c.grpc); got != c.want {
			t.Errorf("Failed(%d, %d) = %v, want %v", c.status, c.grpc, got, c.want)
		}
	}
}
