package layer

import (
	"math/rand/v2"
	"net/http"

	"github.com/sinewmesh/sinew/proxy/internal/pipeline"
)

// Split chooses the backend of each attempt among the rule's backends, at random in proportion to their weights.
// A rule without backends (or no rule) sends the request to the target itself.
func Split() pipeline.Layer {
	return func(next pipeline.Handler) pipeline.Handler {
		return pipeline.HandlerFunc(func(req *pipeline.Request) (*http.Response, error) {
			req.Backend = pick(req)
			if req.Backend == "" {
				return nil, pipeline.ErrNoEndpoints
			}
			return next.Handle(req)
		})
	}
}

func pick(req *pipeline.Request) string {
	if req.Rule == nil {
		return req.Out.Target
	}
	bs := req.Rule.Backends
	switch len(bs) {
	case 0:
		return req.Out.Target
	case 1:
		return bs[0].Authority
	}
	var total uint64
	for _, b := range bs {
		total += uint64(b.Weight)
	}
	if total == 0 {
		// All weights zero: Gateway API says no traffic goes to any of them.
		return ""
	}
	n := rand.Uint64N(total)
	for _, b := range bs {
		if n < uint64(b.Weight) {
			return b.Authority
		}
		n -= uint64(b.Weight)
	}
	return bs[len(bs)-1].Authority
}
