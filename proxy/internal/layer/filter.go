package layer

import (
	"net/http"

	policyv1 "github.com/sinewmesh/sinew/api/policy/v1"
	"github.com/sinewmesh/sinew/proxy/internal/pipeline"
)

// Filters applies the matched rule's request and response header modifiers. Redirects and failure injection are
// filled in by the routing issue; a rule that asks for a filter this proxy cannot apply yet is answered 500 rather
// than forwarded without it (a route's author relies on its filters).
func Filters() pipeline.Layer {
	return func(next pipeline.Handler) pipeline.Handler {
		return pipeline.HandlerFunc(func(req *pipeline.Request) (*http.Response, error) {
			if req.Rule == nil || len(req.Rule.Filters) == 0 {
				return next.Handle(req)
			}
			var respMods []*policyv1.Filter_HeaderModifier
			for _, f := range req.Rule.Filters {
				switch k := f.GetKind().(type) {
				case *policyv1.Filter_RequestHeaderModifier:
					modifyHeader(req.HTTP.Header, k.RequestHeaderModifier)
				case *policyv1.Filter_ResponseHeaderModifier:
					respMods = append(respMods, k.ResponseHeaderModifier)
				default:
					return nil, pipeline.ErrUnsupportedFilter
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
		})
	}
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
