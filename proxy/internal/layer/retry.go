package layer

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/sinewmesh/sinew/proxy/internal/budget"
	"github.com/sinewmesh/sinew/proxy/internal/endpoint"
	"github.com/sinewmesh/sinew/proxy/internal/pipeline"
	"github.com/sinewmesh/sinew/proxy/internal/policy"
	"github.com/sinewmesh/sinew/proxy/internal/replay"
)

// Retry settings that are not policy.
const (
	// MaxReplayBody is how much of a request body is kept to resend it; a request that sent more is not retried.
	MaxReplayBody = 64 << 10
	// unprocessedRetries is how many times a request that never reached an application is sent again, whatever
	// the route says: it is always safe, and it is what keeps a rolling restart free of errors.
	unprocessedRetries = 2
	// drainLimit is how much of a failed attempt's response body is read so its connection can be reused.
	drainLimit = 4 << 10
)

// Retry sends the request again when an attempt failed in a way the route's retry policy names (an HTTP status,
// a gRPC status in the response headers, a failure to get a response, or the per-attempt timeout), as long as
// the retry budget allows, the limit is not reached and the body sent so far fits in MaxReplayBody. A request
// that never reached an application (the connection failed, the stream was refused, or the peer proxy could not
// reach its application) is retried regardless of policy and budget, up to unprocessedRetries times. Each
// attempt goes back through the split and the balancer, which avoids the endpoint that just failed. Each attempt
// is bounded by the route's per-attempt timeout.
func Retry(b *budget.Budget) pipeline.Layer {
	return func(next pipeline.Handler) pipeline.Handler {
		return pipeline.HandlerFunc(func(req *pipeline.Request) (*http.Response, error) {
			var rp *policy.Retry
			var perTry time.Duration
			if req.Rule != nil {
				rp, perTry = req.Rule.Retry, req.Rule.BackendTimeout
				if rp != nil && rp.PerTryTimeout > 0 && (perTry == 0 || rp.PerTryTimeout < perTry) {
					perTry = rp.PerTryTimeout
				}
			}
			if rp != nil {
				// The budget is a share of the requests that may be retried; others neither earn nor spend it.
				b.Deposit()
			}
			if req.Upgrade {
				// An upgraded connection cannot be replayed.
				req.Attempt = 1
				return attempt(req, perTry, next)
			}
			var body *replay.Body
			if r := req.HTTP; r.GetBody == nil && r.Body != nil && r.Body != http.NoBody {
				body = replay.New(r.Body, MaxReplayBody)
				r.Body, _ = body.Reader()
				// Lets net/http resend the body itself when a connection is refused or lost before the request
				// was processed (an HTTP/2 GOAWAY), on a new connection to the same endpoint.
				r.GetBody = func() (io.ReadCloser, error) {
					rc, ok := body.Reader()
					if !ok {
						return nil, errNoReplay
					}
					return rc, nil
				}
			}
			policyRetries, unprocessed := 0, 0
			for {
				req.Attempt++
				resp, err := attempt(req, perTry, next)
				why := retryable(req, rp, resp, err)
				switch {
				case why == retryNone, req.HTTP.Context().Err() != nil:
					return resp, err
				case why == retryUnprocessed && unprocessed < unprocessedRetries:
					unprocessed++
					req.Unprocessed = true
				case why == retryPolicy && policyRetries < rp.Limit && b.Withdraw():
					policyRetries++
					req.Unprocessed = false
				default:
					return resp, err
				}
				switch {
				case body != nil:
					rc, ok := body.Reader()
					if !ok {
						return resp, err
					}
					req.HTTP.Body = rc
				case req.HTTP.GetBody != nil:
					// The forwarder read a small body whole; it can be sent again as is.
					rc, gerr := req.HTTP.GetBody()
					if gerr != nil {
						return resp, err
					}
					req.HTTP.Body = rc
				}
				if resp != nil {
					discard(resp)
				}
			}
		})
	}
}

var errNoReplay = errors.New("request body too large to send again")

func attempt(req *pipeline.Request, perTry time.Duration, next pipeline.Handler) (*http.Response, error) {
	if perTry > 0 {
		return bounded(req, perTry, next)
	}
	return next.Handle(req)
}

type retryReason uint8

const (
	retryNone retryReason = iota
	retryUnprocessed
	retryPolicy
)

// retryable says why an attempt may be tried again.
func retryable(req *pipeline.Request, rp *policy.Retry, resp *http.Response, err error) retryReason {
	if err != nil {
		if endpoint.IsDialError(err) || strings.Contains(err.Error(), "REFUSED_STREAM") ||
			req.Endpoint != nil && req.Endpoint.Meshed() && errors.Is(err, endpoint.ErrClosedBeforeResponse) {
			return retryUnprocessed
		}
		if rp != nil && !errors.Is(err, pipeline.ErrNoEndpoints) && !errors.Is(err, pipeline.ErrAllEjected) &&
			!errors.Is(err, pipeline.ErrUnresolved) && !errors.Is(err, pipeline.ErrUnsupportedFilter) &&
			!errors.As(err, new(*pipeline.InjectedError)) {
			return retryPolicy
		}
		return retryNone
	}
	if req.Endpoint != nil && req.Endpoint.Meshed() && (resp.StatusCode == http.StatusBadGateway || pipeline.GRPCStatus(resp.Header) == 14) {
		// Only a peer proxy sets this header on mesh connections (the inbound side drops an application's); gRPC
		// clients get it on a trailers-only UNAVAILABLE.
		switch resp.Header.Get(pipeline.ProxyErrorHeader) {
		case pipeline.KindConnectionRefused, pipeline.KindUnknownPort:
			return retryUnprocessed
		}
	}
	if rp == nil {
		return retryNone
	}
	if rp.OnStatus(resp.StatusCode) {
		return retryPolicy
	}
	if g := pipeline.GRPCStatus(resp.Header); g > 0 && rp.OnGRPC(g) {
		return retryPolicy
	}
	return retryNone
}

// discard ends a failed attempt's response, reading a little of its body first so the connection can be reused.
func discard(resp *http.Response) {
	_, _ = io.CopyN(io.Discard, resp.Body, drainLimit)
	_ = resp.Body.Close()
}
