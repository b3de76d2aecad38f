//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sinewmesh/sinew/controlplane/inject"
	"github.com/sinewmesh/sinew/internal/names"
)

// loadApp is the in-cluster load client: emojivoto's vote-bot in its own meshed Deployment, never voting for the
// doughnut (whose votes fail by design), counting every request that got no 2xx or no response at all, and
// serving its counts on statsPort.
const (
	loadApp   = "rollout-load"
	statsPort = 9990
	loadRate  = 10 // rounds per second, two requests each (list, vote): web → emoji, web → emoji + voting
)

const loadManifest = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: rollout-load
  namespace: emojivoto
spec:
  replicas: 1
  selector:
    matchLabels:
      app: rollout-load
  template:
    metadata:
      labels:
        app: rollout-load
    spec:
      containers:
      - name: load
        image: ghcr.io/sinewmesh/emojivoto:%s
        imagePullPolicy: IfNotPresent
        args: [vote-bot, -web-host=web-svc.emojivoto:80, -rate=%d, -doughnut-share=0, -stats-port=%d]
        ports:
        - name: stats
          containerPort: %d
        readinessProbe:
          httpGet:
            path: /stats
            port: %d
          periodSeconds: 2
`

// botStats is vote-bot's GET /stats (examples/emojivoto/app BotStatsJSON).
type botStats struct {
	Requests int64            `json:"requests"`
	Failed   int64            `json:"failed"`
	Failures map[string]int64 `json:"failures"`
	Recent   []string         `json:"recent"`
}

// TestRollingRestart restarts web, then voting, with `kubectl rollout restart` while a meshed client keeps calling
// web, and requires that not one of its requests failed: a terminating pod must stop getting new requests before
// it stops serving, and a request that never reached an application must be retried on another endpoint. It does
// so with native sidecars (the default), then again with plain-container proxies, which get SIGTERM with the app
// and keep accepting for their drain delay.
func TestRollingRestart(t *testing.T) {
	e := loadEnv(t)
	j := newJourney(t, cpNS, appNS)

	meshedEmojivotoSteps(j, e)

	var statsURL string
	j.step("load-running", []string{"emojivoto-meshed"}, func(t *testing.T) {
		must(t, 2*time.Minute, fmt.Sprintf(loadManifest, e.version, loadRate, statsPort, statsPort, statsPort), "kubectl", "apply", "-f", "-")
		kubectl(t, "-n", appNS, "rollout", "status", "deploy/"+loadApp, "--timeout=3m")
		requireAllMeshed(t)
		statsURL = fmt.Sprintf("http://%s:%d/stats", podIP(t, loadApp), statsPort)
		s := waitRequests(t, statsURL, 0, 4*loadRate)
		t.Logf("load running: %d requests so far, %d failed %v", s.Requests, s.Failed, s.Failures)
	})

	restart := func(deploy string) func(t *testing.T) {
		return func(t *testing.T) { kubectl(t, "-n", appNS, "rollout", "restart", "deploy/"+deploy) }
	}
	// native sidecars (the default): the kubelet stops the app first, then the proxy
	for _, d := range restarted {
		j.step("restart-"+d.deploy, []string{"load-running"}, func(t *testing.T) {
			rollUnderLoad(t, statsURL, d.deploy, d.app, restart(d.deploy))
		})
	}
	// plain-container proxies: the app and the proxy get SIGTERM together, and the proxy keeps accepting for its
	// drain delay; the switch from native sidecars is a rollout too
	for _, d := range restarted {
		j.step("plain-sidecar-"+d.deploy, []string{"load-running"}, func(t *testing.T) {
			rollUnderLoad(t, statsURL, d.deploy, d.app, func(t *testing.T) {
				kubectl(t, "-n", appNS, "patch", "deploy", d.deploy, "--type=merge", "-p",
					`{"spec":{"template":{"metadata":{"annotations":{"`+names.AnnProxyNativeSidecar+`":"false"}}}}}`)
			})
		})
		// (needs only the load: the switch may have failed on requests and still have happened)
		j.step("restart-plain-"+d.deploy, []string{"load-running"}, func(t *testing.T) {
			delay := kubectl(t, "-n", appNS, "get", "pods", "-l", "app="+d.app, "-o",
				`jsonpath={range .items[*].spec.containers[?(@.name=="sinew-proxy")]}{.env[?(@.name=="SINEW_PROXY_SHUTDOWN_DRAIN_DELAY")].value}{"\n"}{end}`)
			if strings.TrimSpace(delay) != inject.PlainSidecarDrainDelay {
				t.Fatalf("want one pod of %s with a plain-container proxy and SINEW_PROXY_SHUTDOWN_DRAIN_DELAY=%s, have %q",
					d.deploy, inject.PlainSidecarDrainDelay, delay)
			}
			rollUnderLoad(t, statsURL, d.deploy, d.app, restart(d.deploy))
		})
	}

	// after a failure, what is left is kept for inspection
	j.step("cleanup", []string{"restart-web", "restart-voting", "restart-plain-web", "restart-plain-voting"}, func(t *testing.T) {
		kubectl(t, "delete", "ns", appNS, "--wait=true", "--timeout=3m")
		pipe(t, 3*time.Minute, []string{e.sinew, "uninstall"}, []string{"kubectl", "delete", "--ignore-not-found", "-f", "-"})
	})
}

// restarted are the deployments rolled under load, with their pods' app label: web (which the load client calls)
// and voting (which web calls for every vote).
var restarted = []struct{ deploy, app string }{{"web", "web-svc"}, {"voting", "voting-svc"}}

// rollUnderLoad starts a rollout of deploy (start: `kubectl rollout restart`, or a change to its pod template),
// waits for it and for the old pods to be gone, lets the load run a little longer, and fails on any request the
// load client saw fail meanwhile.
func rollUnderLoad(t *testing.T, statsURL, deploy, app string, start func(t *testing.T)) {
	t.Helper()
	old := strings.Fields(kubectl(t, "-n", appNS, "get", "pods", "-l", "app="+app, "-o", "jsonpath={.items[*].metadata.name}"))
	if len(old) == 0 {
		t.Fatalf("no pod with app=%s", app)
	}
	before := stats(t, statsURL)
	began := time.Now()
	start(t)
	kubectl(t, "-n", appNS, "rollout", "status", "deploy/"+deploy, "--timeout=4m")
	eventually(t, 3*time.Minute, "the old pods of "+deploy+" gone", func() error {
		out, err := kubectlQuiet(append([]string{"-n", appNS, "get", "pods", "--ignore-not-found", "-o", "name"}, old...)...)
		if err != nil || strings.TrimSpace(out) != "" {
			return fmt.Errorf("still there: %q %v", strings.TrimSpace(out), err)
		}
		return nil
	})
	took := time.Since(began)
	// a few more seconds of load on the new pods only
	mid := stats(t, statsURL)
	after := waitRequests(t, statsURL, mid.Requests, 4*loadRate)
	n, failed := after.Requests-before.Requests, after.Failed-before.Failed
	t.Logf("rollout of %s (old pods gone after %.1fs): %d requests, %d failed", deploy, took.Seconds(), n, failed)
	if failed > 0 {
		t.Errorf("%d of %d requests failed across the rollout of %s, by kind:\n%s\nlast failures:\n  %s\n"+
			"failed responses the client proxies saw since their pods started (load client → web, web → voting and emoji), by endpoint:\n%s",
			failed, n, deploy, kindsDiff(before.Failures, after.Failures), strings.Join(after.Recent, "\n  "),
			failedResponses(t, loadApp, "web-svc"))
	}
}

// failedResponses renders the outbound response_total samples classified as failures in the proxies of the pods
// labelled app=<app>: with their dst_pod and status, they show which endpoint each attempt went to.
func failedResponses(t *testing.T, apps ...string) string {
	t.Helper()
	var b strings.Builder
	for _, app := range apps {
		for _, s := range metricsOfQuiet(podIP(t, app)) {
			l := s.labels
			if s.name == "response_total" && l["direction"] == "outbound" && l["classification"] == "failure" {
				fmt.Fprintf(&b, "  %s → %s status=%s grpc=%s: %g\n", app, l["dst_pod"], l["status_code"], l["grpc_status_code"], s.value)
			}
		}
	}
	return b.String()
}

// stats reads the load client's counts.
func stats(t *testing.T, url string) botStats {
	t.Helper()
	s, err := statsQuiet(url)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func statsQuiet(url string) (botStats, error) {
	var s botStats
	code, body, err := httpGet(url)
	if err != nil || code != 200 {
		return s, fmt.Errorf("GET %s: %d %v %s", url, code, err, clip(body, 300))
	}
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		return s, fmt.Errorf("GET %s: %v: %s", url, err, clip(body, 300))
	}
	return s, nil
}

// waitRequests waits until the load client has made more than from+n requests and returns its counts then.
func waitRequests(t *testing.T, url string, from, n int64) botStats {
	t.Helper()
	var s botStats
	eventually(t, time.Minute, fmt.Sprintf("%d more requests from the load client", n), func() error {
		var err error
		if s, err = statsQuiet(url); err != nil {
			return err
		}
		if s.Requests < from+n {
			return fmt.Errorf("%d requests, want %d", s.Requests, from+n)
		}
		return nil
	})
	return s
}

// kindsDiff renders the failure counts that grew between two readings.
func kindsDiff(before, after map[string]int64) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(after)) {
		if d := after[k] - before[k]; d > 0 {
			fmt.Fprintf(&b, "  %5d  %s\n", d, k)
		}
	}
	return b.String()
}
