package cmd

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sinewmesh/sinew/viz/metricsapi"
	"github.com/sinewmesh/sinew/viz/server"
)

// authzAnswers answers `authz`'s queries for deploy/web: the default policy admitted 2 requests a second at
// 127.0.0.1:8080, all of them successful, and the Server web-http denied 0.5 a second.
type authzAnswers struct{}

func (authzAnswers) Query(_ context.Context, q string, _ time.Time) ([]metricsapi.Sample, error) {
	target := map[string]string{"namespace": "emojivoto", "pod": "web-1", "target_addr": "127.0.0.1:8080"}
	with := func(kv ...string) map[string]string {
		l := map[string]string{}
		for k, v := range target {
			l[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			l[kv[i]] = kv[i+1]
		}
		return l
	}
	switch {
	case strings.Contains(q, "inbound_http_authz_allow_total"):
		return []metricsapi.Sample{{Value: 2, Labels: with("srv_kind", "default", "srv_name", "all-unauthenticated",
			"authz_kind", "default", "authz_name", "all-unauthenticated")}}, nil
	case strings.Contains(q, "inbound_http_authz_deny_total"):
		return []metricsapi.Sample{{Value: 0.5, Labels: with("srv_kind", "server", "srv_name", "web-http")}}, nil
	case strings.Contains(q, "response_latency_ms_bucket"):
		return []metricsapi.Sample{{Value: 2, Labels: with("le", "5")}, {Value: 2, Labels: with("le", "+Inf")}}, nil
	case strings.Contains(q, "response_total"):
		return []metricsapi.Sample{{Value: 2, Labels: with()}}, nil
	}
	return nil, nil
}

func TestAuthzCommand(t *testing.T) {
	ts := httptest.NewServer(server.New(server.Config{Mode: server.ModeLocal, Querier: authzAnswers{}}))
	defer ts.Close()
	env := testEnv(t, nil)
	out := mustRun(t, env, "authz", "deploy/web", "-n", "emojivoto", "--viz-url", ts.URL)
	for _, re := range []string{
		`(?m)^ROUTE\s+SERVER\s+AUTHORIZATION\s+UNAUTHORIZED\s+SUCCESS\s+RPS\s+LATENCY_P50\s+LATENCY_P95\s+LATENCY_P99$`,
		`(?m)^default\s+default:all-unauthenticated\s+default/all-unauthenticated\s+0\.0rps\s+100\.00%\s+2\.0rps\s+3ms\s+5ms\s+5ms$`,
		`(?m)^default\s+web-http\s+0\.5rps\s+-\s+-\s+-\s+-\s+-$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("sinew viz authz deploy/web: want a line matching %s:\n%s", re, out)
		}
	}
	var rows []metricsapi.AuthzRow
	if err := json.Unmarshal([]byte(mustRun(t, env, "authz", "deploy/web", "-n", "emojivoto", "--viz-url", ts.URL, "-o", "json")), &rows); err != nil || len(rows) != 2 {
		t.Errorf("-o json: %v, %+v", err, rows)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"authz", "deploy", "-n", "emojivoto", "--viz-url", ts.URL}, "one resource"},
		{[]string{"authz", "deploy/web", "-A", "--viz-url", ts.URL}, "not -A"},
		{[]string{"authz", "deploy/web", "-t", "0s", "--viz-url", ts.URL}, "too short"},
		{[]string{"authz", "deploy/web", "-o", "yaml", "--viz-url", ts.URL}, `unknown output format "yaml"`},
	} {
		if r := run(t, env, c.args...); r.code == 0 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("sinew viz %s: exit %d %q, want an error with %q", strings.Join(c.args, " "), r.code, r.stderr, c.want)
		}
	}
}
