package jwks

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sinewmesh/sinew/controlplane/internal/model"
	"github.com/sinewmesh/sinew/controlplane/internal/policy/authz"
	"github.com/sinewmesh/sinew/controlplane/internal/policy/authz/api"
)

const (
	keysA   = `{"keys":[{"kty":"EC","crv":"P-256","kid":"a","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}`
	keysB   = `{"keys":[{"kty":"EC","crv":"P-256","kid":"b","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}`
	private = `{"keys":[{"kty":"EC","crv":"P-256","kid":"p","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","d":"jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"}]}`
)

func named(urls ...string) model.Resources {
	var p api.Policies
	for i, u := range urls {
		p.Add(&api.JWTAuthentication{Metadata: api.Meta{Namespace: "ns", Name: string(rune('a' + i))},
			Spec: api.JWTAuthenticationSpec{Issuers: []api.JWTIssuer{{Issuer: "i", Audiences: []string{"a"}, JWKS: api.JWKS{Remote: &api.RemoteJWKS{URI: u}}}}}})
	}
	return model.Resources{Policies: p}
}

func waitFor(t *testing.T, f *Fetcher, what string, ok func(*authz.Keys) bool) {
	t.Helper()
	changed, unsubscribe := f.Subscribe()
	defer unsubscribe()
	deadline := time.After(10 * time.Second)
	for !ok(f.Keys()) {
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("%s: keys %+v", what, f.Keys())
		}
	}
}

// TestFetcher: a URL is fetched and refreshed; a failing fetch keeps the last good keys and says why; private
// keys, oversized and malformed bodies are refused; a URL no longer named is dropped; on-demand refetches are
// rate-limited.
func TestFetcher(t *testing.T) {
	t.Parallel()
	var body atomic.Value
	body.Store(keysA)
	var status atomic.Int32
	status.Store(http.StatusOK)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(int(status.Load()))
		_, _ = w.Write([]byte(body.Load().(string)))
	}))
	defer srv.Close()
	src := api.KeySource{URL: srv.URL + "/jwks"}

	store := model.NewStore()
	store.Update(named(src.URL))
	reg := prometheus.NewPedanticRegistry()
	f := New(Config{Store: store, Interval: 50 * time.Millisecond, MaxBytes: 4096, Registerer: reg})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	waitFor(t, f, "first fetch", func(k *authz.Keys) bool { return string(k.Sets[src]) == keysA })
	body.Store(keysB)
	waitFor(t, f, "refresh", func(k *authz.Keys) bool { return string(k.Sets[src]) == keysB })

	status.Store(http.StatusServiceUnavailable)
	waitFor(t, f, "failure kept the last keys", func(k *authz.Keys) bool {
		return string(k.Sets[src]) == keysB && k.Errors[src] == "HTTP status 503 Service Unavailable"
	})
	if v := value(t, f.failing); v != 1 {
		t.Errorf("jwks_sources_failing = %v", v)
	}
	status.Store(http.StatusOK)
	body.Store(private)
	waitFor(t, f, "private key refused", func(k *authz.Keys) bool {
		return string(k.Sets[src]) == keysB && strings.Contains(k.Errors[src], "private")
	})
	body.Store(`{"keys": [` + strings.Repeat(" ", 5000) + `]}`)
	waitFor(t, f, "too large", func(k *authz.Keys) bool { return strings.Contains(k.Errors[src], "larger than 4096 bytes") })
	body.Store(keysA)
	waitFor(t, f, "recovered", func(k *authz.Keys) bool { return string(k.Sets[src]) == keysA && k.Errors[src] == "" })
	if v := value(t, f.fetches.WithLabelValues("failure")); v < 3 {
		t.Errorf("failures counted %v", v)
	}

	if f.Refetch(src.Handle(), "c") {
		t.Error("a refetch right after a fetch was not rate-limited")
	}

	store.Update(named())
	waitFor(t, f, "dropped", func(k *authz.Keys) bool { return len(k.Sets) == 0 && len(k.Errors) == 0 })
}

// TestFetcherRefetch: a token naming a key the set lacks gets its source fetched again at once, however long the
// refresh interval; not when the set has the key, and not for a source nobody names (TestFetcher: not again
// within RefetchEvery).
func TestFetcherRefetch(t *testing.T) {
	t.Parallel()
	var body atomic.Value
	body.Store(keysA)
	var fetches atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fetches.Add(1)
		_, _ = w.Write([]byte(body.Load().(string)))
	}))
	defer srv.Close()
	src := api.KeySource{URL: srv.URL + "/jwks"}
	store := model.NewStore()
	store.Update(named(src.URL))
	f := New(Config{Store: store, Interval: time.Hour, RefetchEvery: time.Nanosecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	waitFor(t, f, "first fetch", func(k *authz.Keys) bool { return string(k.Sets[src]) == keysA })

	body.Store(keysB)
	if f.Refetch(src.Handle(), "a") {
		t.Error("a refetch for a key the set has")
	}
	if f.Refetch(api.KeySource{URL: "https://unknown.example"}.Handle(), "b") {
		t.Error("a refetch of a source nobody names")
	}
	if fetches.Load() != 1 {
		t.Errorf("%d fetches before the refetch, want 1", fetches.Load())
	}
	if !f.Refetch(src.Handle(), "b") {
		t.Fatal("no refetch for a key the set lacks")
	}
	waitFor(t, f, "the refetched keys", func(k *authz.Keys) bool { return string(k.Sets[src]) == keysB })
}

// TestFetcherSecrets: Secrets are read through the SecretReader, and reported as unavailable without one.
func TestFetcherSecrets(t *testing.T) {
	t.Parallel()
	var p api.Policies
	p.Add(&api.JWTAuthentication{Metadata: api.Meta{Namespace: "ns", Name: "s"},
		Spec: api.JWTAuthenticationSpec{Issuers: []api.JWTIssuer{{Issuer: "i", Audiences: []string{"a"}, JWKS: api.JWKS{SecretRef: &api.SecretKeyRef{Name: "keys"}}}}}})
	store := model.NewStore()
	store.Update(model.Resources{Policies: p})
	src := api.KeySource{Namespace: "ns", Secret: "keys", Key: api.DefaultJWKSSecretKey}
	for _, tc := range []struct {
		name    string
		secrets SecretReader
		ok      func(*authz.Keys) bool
	}{
		{"reader", secretsFunc(func(ns, name, key string) ([]byte, error) {
			if ns != "ns" || name != "keys" || key != "jwks" {
				t.Errorf("read %s/%s %s", ns, name, key)
			}
			return []byte(keysA), nil
		}), func(k *authz.Keys) bool { return string(k.Sets[src]) == keysA }},
		{"none", nil, func(k *authz.Keys) bool { return k.Errors[src] == ErrNoSecrets.Error() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := New(Config{Store: store, Secrets: tc.secrets})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- f.Run(ctx) }()
			waitFor(t, f, tc.name, tc.ok)
			cancel()
			<-done
		})
	}
}

type secretsFunc func(ns, name, key string) ([]byte, error)

func (f secretsFunc) SecretKey(_ context.Context, ns, name, key string) ([]byte, error) {
	return f(ns, name, key)
}

func value(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	if d.Gauge != nil {
		return d.Gauge.GetValue()
	}
	return d.Counter.GetValue()
}
