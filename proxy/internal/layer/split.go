package layer

import (
	"math/rand/v2"
	"net/http"

	"github.com/sinewmesh/sinew/proxy/internal/pipeline"
	"github.com/sinewmesh/sinew/proxy/internal/policy"
)

// Split chooses the backend of each attempt among the rule's backends, at random in proportion to their weights.
// A rule without backends (or no rule) sends the request to the target itself. A backend's own filters apply to
// the attempts sent to it: each such attempt starts from the request's header as the layers above left it, so a
// retry at another backend carries none of the first one's changes. A backend whose injector fails the attempt
// (the control plane's answer for a backend that does not resolve) is never sent anything.
func Split(mirror *Mirror) pipeline.Layer {
	return func(next pipeline.Handler) pipeline.Handler {
		return pipeline.HandlerFunc(func(req *pipeline.Request) (*http.Response, error) {
			b := pick(req)
			if b == nil {
				if req.Out.Target == "" {
					// A gateway's rule without backends: there is nothing to send the request to.
					return nil, pipeline.ErrNoEndpoints
				}
				req.Backend = req.Out.Target
				return next.Handle(req)
			}
			if b.Authority == "" {
				return nil, pipeline.ErrNoEndpoints
			}
			req.Backend = b.Authority
			if len(b.Filters) == 0 {
				return next.Handle(req)
			}
			return viaBackendFilters(req, b, mirror, next)
		})
	}
}

// viaBackendFilters sends one attempt through the backend's filters. The attempt's changes to the request's
// header, authority and URL are its own: the next attempt starts from the request as the layers above left it.
func viaBackendFilters(req *pipeline.Request, b *policy.Backend, mirror *Mirror, next pipeline.Handler) (*http.Response, error) {
	savedHeader, savedHost, savedURL, savedBody := req.HTTP.Header, req.HTTP.Host, req.HTTP.URL, req.HTTP.Body
	req.HTTP.Header = savedHeader.Clone()
	if req.HTTP.Header == nil {
		req.HTTP.Header = http.Header{}
	}
	u := *savedURL
	req.HTTP.URL = &u
	defer func() {
		req.HTTP.Header, req.HTTP.Host, req.HTTP.URL, req.HTTP.Body = savedHeader, savedHost, savedURL, savedBody
	}()
	return applyFilters(req, b.Filters, b.FaultActive, mirror, next)
}

// noBackend is what pick returns when every weight is zero: Gateway API says no traffic goes to any of them.
var noBackend = &policy.Backend{}

// pick chooses the backend of an attempt: nil for the target itself (no rule, or a rule without backends).
func pick(req *pipeline.Request) *policy.Backend {
	if req.Rule == nil {
		return nil
	}
	bs := req.Rule.Backends
	switch len(bs) {
	case 0:
		return nil
	case 1:
		return &bs[0]
	}
	var total uint64
	for _, b := range bs {
		total += uint64(b.Weight)
	}
	if total == 0 {
		return noBackend
	}
	n := rand.Uint64N(total)
	for i := range bs {
		if n < uint64(bs[i].Weight) {
			return &bs[i]
		}
		n -= uint64(bs[i].Weight)
	}
	return &bs[len(bs)-1]
}
