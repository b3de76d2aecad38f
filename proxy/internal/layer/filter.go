package layer

import (
	"math/rand/v2"
	"net/http"

	policyv1 "github.com/sinewmesh/sinew/api/policy/v1"
	"github.com/sinewmesh/sinew/proxy/internal/pipeline"
)

// Filters applies the matched rule's filters: request and response header modifiers, and failure injectors
// (abort only), which answer their share of the requests with their status. A rule that asks for a filter this
// proxy cannot apply yet (a redirect, a delay) is answered 500 rather than forwarded without it: a route's author
// relies on its filters. A backend's own filters are applied by Split, per attempt.
func Filters() pipeline.Layer {
	return func(next pipeline.Handler) pipeline.Handler {
		return pipeline.HandlerFunc(func(req *pipeline.Request) (*http.Response, error) {
			if req.Rule == nil || len(req.Rule.Filters) == 0 {
				return next.Handle(req)
			}
			respMods, err := requestFilters(req.HTTP.Header, req.Rule.Filters)
			if err != nil {
				return nil, err
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

// requestFilters applies filters to a request's header h, or says why the request fails instead (an injected
// failure, a filter this proxy cannot apply), and returns the response header modifiers to apply later.
func requestFilters(h http.Header, filters []*policyv1.Filter) ([]*policyv1.Filter_HeaderModifier, error) {
	var respMods []*policyv1.Filter_HeaderModifier
	for _, f := range filters {
		switch k := f.GetKind().(type) {
		case *policyv1.Filter_RequestHeaderModifier:
			modifyHeader(h, k.RequestHeaderModifier)
		case *policyv1.Filter_ResponseHeaderModifier:
			respMods = append(respMods, k.ResponseHeaderModifier)
		case *policyv1.Filter_FailureInjector_:
			if err := injectFailure(k.FailureInjector); err != nil {
				return nil, err
			}
		default:
			return nil, pipeline.ErrUnsupportedFilter
		}
	}
	return respMods, nil
}

// injectFailure is the failure a FailureInjector gives this request: its status for a ratio of the requests
// (1 or more: all; 0: none), nil for the others. A delay is not applied yet, so an injector with one fails every
// request as unsupported.
func injectFailure(fi *policyv1.Filter_FailureInjector) error {
	if fi.GetDelay() != nil {
		return pipeline.ErrUnsupportedFilter
	}
	if r := fi.GetRatio(); !(r >= 1) && !(rand.Float64() < r) {
		return nil
	}
	return &pipeline.InjectedError{Status: int(fi.GetStatus()), Message: fi.GetMessage()}
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
