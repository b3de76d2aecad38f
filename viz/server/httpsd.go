package server

import (
	"context"
	"net/http"
)

// ScrapeGroup is one entry of Prometheus's HTTP service discovery answer (http_sd_configs): targets and the
// labels they share, here the same __meta_kubernetes_* labels Kubernetes discovery gives, so one relabeling serves
// both.
type ScrapeGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

// ScrapeTargetsPath is where a viz server with Config.ScrapeTargets answers Prometheus's HTTP discovery.
const ScrapeTargetsPath = "/api/prometheus/targets"

func (s *Server) scrapeTargets(w http.ResponseWriter, r *http.Request) {
	if s.cfg.ScrapeTargets == nil {
		writeError(w, http.StatusNotFound, errNoScrapeTargets)
		return
	}
	groups, err := s.cfg.ScrapeTargets(r.Context())
	if err != nil {
		writeError(w, http.StatusBadGateway, err)
		return
	}
	if groups == nil {
		groups = []ScrapeGroup{}
	}
	writeJSON(w, groups)
}

type scrapeTargetsFunc = func(context.Context) ([]ScrapeGroup, error)
