package layer

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/sinewmesh/sinew/proxy/internal/pipeline"
)

// Timeout bounds the whole request, every retry included, by the route's request timeout: if the response
// headers have not arrived in time, the attempt in flight is cancelled and the client gets 504 (gRPC:
// DEADLINE_EXCEEDED) through the failure map. Once the headers arrived, the body takes as long as it takes, unless
// the route has an idle timeout: then a response stream that goes that long without a byte is cut.
func Timeout() pipeline.Layer {
	return func(next pipeline.Handler) pipeline.Handler {
		return pipeline.HandlerFunc(func(req *pipeline.Request) (*http.Response, error) {
			if req.Rule == nil || req.Rule.RequestTimeout <= 0 && req.Rule.IdleTimeout <= 0 {
				return next.Handle(req)
			}
			if req.Rule.IdleTimeout <= 0 {
				return bounded(req, req.Rule.RequestTimeout, next)
			}
			return idle(req, req.Rule.IdleTimeout, func() (*http.Response, error) {
				if req.Rule.RequestTimeout > 0 {
					return bounded(req, req.Rule.RequestTimeout, next)
				}
				return next.Handle(req)
			})
		})
	}
}

// idle runs send with req.HTTP's context cancelled when the response stream goes d without a byte: the transport
// then ends the stream, and the client sees a broken response rather than waiting forever.
func idle(req *pipeline.Request, d time.Duration, send func() (*http.Response, error)) (*http.Response, error) {
	parent := req.HTTP
	ctx, cancel := context.WithCancel(parent.Context())
	req.HTTP = parent.WithContext(ctx)
	resp, err := send()
	req.HTTP = parent
	if err != nil || resp.StatusCode == http.StatusSwitchingProtocols {
		cancel()
		return resp, err
	}
	ib := &idleBody{ReadCloser: resp.Body, cancel: cancel, d: d}
	ib.timer = time.AfterFunc(d, cancel)
	resp.Body = ib
	return resp, nil
}

// idleBody cancels its request when no read returns data for d.
type idleBody struct {
	io.ReadCloser
	cancel context.CancelFunc
	timer  *time.Timer
	d      time.Duration
}

func (b *idleBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.timer.Reset(b.d)
	}
	return n, err
}

func (b *idleBody) Close() error {
	err := b.ReadCloser.Close()
	b.timer.Stop()
	b.cancel()
	return err
}

// bounded runs next with req.HTTP's context cancelled if no response headers arrived within d; the result is then
// pipeline.ErrTimeout. The context ends with the response body.
func bounded(req *pipeline.Request, d time.Duration, next pipeline.Handler) (*http.Response, error) {
	parent := req.HTTP
	ctx, cancel := context.WithCancel(parent.Context())
	var fired atomic.Bool
	t := time.AfterFunc(d, func() { fired.Store(true); cancel() })
	req.HTTP = parent.WithContext(ctx)
	resp, err := next.Handle(req)
	req.HTTP = parent
	if !t.Stop() && fired.Load() {
		if resp != nil {
			resp.Body.Close()
		}
		return nil, fmt.Errorf("%w: no response within %v", pipeline.ErrTimeout, d)
	}
	if err != nil {
		cancel()
		return nil, err
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// The upgraded stream lives on its own; the context ends with the client's request.
		return resp, nil
	}
	resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

// cancelBody ends a bounded request's context when its response body is closed.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}
