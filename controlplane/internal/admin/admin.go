// Package admin is the admin HTTP server every control-plane component runs next to its real servers: liveness,
// readiness, metrics and, where there is a model, its debug view. It serves nothing a proxy or a workload needs.
package admin

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewServer serves /live, /ready, /metrics (from gatherer) and, when debugModel is set, /debug/model (its result as
// JSON). /ready answers 503 with the error's text while ready returns one.
func NewServer(ready func() error, gatherer prometheus.Gatherer, debugModel func() any) *http.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /live", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) {
		if err := ready(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	if debugModel != nil {
		mux.HandleFunc("GET /debug/model", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			_ = enc.Encode(debugModel())
		})
	}
	return &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
}
