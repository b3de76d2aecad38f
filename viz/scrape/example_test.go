package scrape_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/sinewmesh/sinew/viz/metricsapi"
	"github.com/sinewmesh/sinew/viz/scrape"
)

// A local mesh scrapes its proxies in-process and hands the scraper to viz wherever a Prometheus client would go.
func Example() {
	s, err := scrape.New(scrape.Config{
		// One target per proxy admin server, with the label contract's labels (as for metricsapi.PrometheusConfig).
		Targets: []metricsapi.ScrapeTarget{
			{Address: "127.0.0.1:17012", Namespace: "emojivoto", Deployment: "emoji", Pod: "emoji"},
			{Address: "127.0.0.1:17032", Namespace: "emojivoto", Deployment: "web", Pod: "web"},
		},
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "viz-scrape"),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	// Run under the mesh's context (an errgroup member in practice); Close once it has returned.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		<-done
		s.Close()
	}()

	// Anything that takes a metricsapi.Querier: stat, edges, routes, the viz server.
	rows, err := metricsapi.Stat(ctx, s, metricsapi.StatRequest{
		Resource: metricsapi.Resource{Kind: metricsapi.KindDeployment, Namespace: "emojivoto"},
		Window:   time.Minute,
	}, time.Time{})
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = metricsapi.WriteStat(os.Stdout, rows, metricsapi.OutputTable, false)
}
