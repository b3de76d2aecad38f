// Package grafana holds sinew's Grafana dashboards, JSON files a user imports into their own Grafana (see
// README.md). They query only the proxies' metrics (docs/observability/metrics.md) and the scrape targets' labels
// (docs/observability/viz.md's label contract). The package embeds the files so a command can ship them; it must
// not talk to Grafana or Prometheus.
package grafana

import (
	"embed"
	"io/fs"
)

//go:embed *.json
var files embed.FS

// Dashboards are the dashboard files (sinew-top-line.json, sinew-namespace.json, sinew-deployment.json) at the root
// of the file system.
var Dashboards fs.FS = files
