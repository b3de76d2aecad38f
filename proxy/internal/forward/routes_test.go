package forward

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestInboundRouteMetrics sends requests through Inbound.ServeHTTP and reads the route_* series back: the route is
// the path without its query, the authority is the request's Host, and a failed response is counted as such.
func TestInboundRouteMetrics(t *testing.T) {
	t.Parallel()
	in, ctx, reg := newPlainInbound(t, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("choice") == "bad" {
			w.WriteHeader(500)
		}
		io.WriteString(w, "ok")
	}))
	for _, u := range []string{"http://web-svc:80/api/vote?choice=good", "http://web-svc:80/api/vote?choice=bad", "http://web-svc:80/api/list"} {
		w := httptest.NewRecorder()
		in.ServeHTTP(w, httptest.NewRequestWithContext(ctx, "GET", u, nil))
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, mf := range mfs {
		if mf.GetName() != "route_response_total" {
			continue
		}
		for _, s := range mf.GetMetric() {
			l := map[string]string{}
			for _, lp := range s.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			got = append(got, strings.Join([]string{l["rt_route"], l["authority"], l["status_code"], l["classification"]}, " "))
		}
	}
	want := map[string]bool{"/api/vote web-svc:80 200 success": true, "/api/vote web-svc:80 500 failure": true, "/api/list web-svc:80 200 success": true}
	if len(got) != len(want) {
		t.Fatalf("route_response_total series %q, want %d", got, len(want))
	}
	for _, g := range got {
		if !want[g] {
			t.Errorf("unexpected route_response_total series %q (all: %q)", g, got)
		}
	}
}
