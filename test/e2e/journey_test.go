//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

const (
	cpNS  = "sinew"
	appNS = "emojivoto"
)

var (
	images      = []string{"sinew-proxy", "sinew-controller", "sinew-init", "emojivoto"}
	deployments = []string{"emoji", "voting", "web", "vote-bot"}
	cpDeploys   = []string{"sinew-identity", "sinew-destination", "sinew-proxy-injector"}
)

// spiffe matches the SPIFFE ID of a service account in emojivoto, whatever the trust domain.
func spiffe(sa string) string { return `spiffe://[^/]+/ns/` + appNS + `/sa/` + sa }

// TestJourney is the user's path through Kubernetes mode, step by step, each step reporting the command that failed
// and its output. It leaves the cluster running; it deletes the emojivoto namespace only when every step passed
// (so a failure can be inspected), and clears leftovers of an earlier run before it starts.
func TestJourney(t *testing.T) {
	e := loadEnv(t)
	j := newJourney(t, cpNS, appNS)

	j.step("cluster-ready", nil, func(t *testing.T) {
		kubectl(t, "get", "--raw", "/readyz")
		eventually(t, time.Minute, "node Ready", func() error {
			out, err := kubectlQuiet("get", "nodes", "-o", `jsonpath={.items[*].status.conditions[?(@.type=="Ready")].status}`)
			if err != nil || !strings.Contains(out, "True") {
				return fmt.Errorf("node Ready=%q %v", out, err)
			}
			return nil
		})
		kubectl(t, "-n", "kube-system", "rollout", "status", "deploy/coredns", "--timeout=90s")
	})

	j.step("images-loaded", nil, func(t *testing.T) {
		out := must(t, time.Minute, "", "ctr", "-n", "k8s.io", "images", "ls", "-q")
		for _, img := range images {
			ref := fmt.Sprintf("ghcr.io/sinewmesh/%s:%s", img, e.version)
			if !strings.Contains(out, ref) {
				t.Errorf("image %s is not in the cluster's containerd: run `make images` and hack/cluster/load-images.sh", ref)
			}
		}
	})

	j.step("cli-version", nil, func(t *testing.T) {
		if _, err := os.Stat(e.sinew); err != nil {
			t.Fatalf("the sinew CLI is not built: %v", err)
		}
		if got := strings.TrimSpace(must(t, 30*time.Second, "", e.sinew, "version", "--client", "--short")); got != e.version {
			t.Fatalf("sinew version --client --short = %q, want %q (the images' tag)", got, e.version)
		}
	})

	j.step("clean-slate", []string{"cluster-ready"}, func(t *testing.T) {
		removeLeftovers(t)
	})

	// ------------------------------------------------------------------ install
	j.step("install-crds", []string{"clean-slate", "cli-version"}, func(t *testing.T) {
		pipe(t, 2*time.Minute, []string{e.sinew, "install", "--crds"}, []string{"kubectl", "apply", "-f", "-"})
		var crds []string
		for _, l := range strings.Fields(kubectl(t, "get", "crd", "-o", "name")) {
			if strings.Contains(l, "sinew.dev") {
				crds = append(crds, l)
			}
		}
		if len(crds) == 0 {
			t.Fatal("no CRD of a sinew.dev group after `sinew install --crds | kubectl apply -f -`")
		}
		kubectl(t, append([]string{"wait", "--for=condition=Established", "--timeout=60s"}, crds...)...)
	})

	j.step("install", []string{"install-crds", "images-loaded"}, func(t *testing.T) {
		pipe(t, 2*time.Minute, []string{e.sinew, "install"}, []string{"kubectl", "apply", "-f", "-"})
	})

	j.step("control-plane-ready", []string{"install"}, func(t *testing.T) {
		for _, d := range cpDeploys {
			kubectl(t, "-n", cpNS, "rollout", "status", "deploy/"+d, "--timeout=4m")
		}
	})

	j.step("check", []string{"control-plane-ready"}, func(t *testing.T) {
		must(t, 5*time.Minute, "", e.sinew, "check")
	})

	// ------------------------------------------------------------------ emojivoto, not meshed
	manifest := filepath.Join(e.repo, "examples/emojivoto/kubernetes/emojivoto.yml")
	j.step("emojivoto-unmeshed", []string{"clean-slate", "images-loaded"}, func(t *testing.T) {
		applyEmojivoto(t, manifest, e.version)
		waitEmojivoto(t)
		if pods := meshedPods(t); len(pods) > 0 {
			t.Fatalf("pods are meshed before anyone asked for it: %v", pods)
		}
		checkEmojivotoServes(t)
	})

	j.step("check-proxy-fails-unmeshed", []string{"check", "emojivoto-unmeshed"}, func(t *testing.T) {
		r := run(3*time.Minute, "", e.sinew, "check", "--proxy", "-n", appNS)
		t.Logf("%s", r)
		if r.err == nil {
			t.Fatal("`sinew check --proxy -n emojivoto` passed although no pod there is meshed")
		}
		if !strings.Contains(strings.ToLower(r.stdout+r.stderr), "inject") {
			t.Fatal("`sinew check --proxy -n emojivoto` failed without mentioning inject (the fix a user needs)")
		}
	})

	// ------------------------------------------------------------------ meshed with `sinew inject`
	// `sinew inject` marks the pod templates (sinew.dev/inject: enabled) and the injector adds the proxy
	j.step("inject-cli", []string{"control-plane-ready", "emojivoto-unmeshed"}, func(t *testing.T) {
		injectDeployments(t, e)
		waitEmojivoto(t)
		requireAllMeshed(t)
	})

	j.step("check-proxy-meshed", []string{"inject-cli", "check"}, func(t *testing.T) {
		must(t, 5*time.Minute, "", e.sinew, "check", "--proxy", "-n", appNS)
	})

	j.step("mtls-cli-inject", []string{"inject-cli"}, func(t *testing.T) {
		checkEmojivotoServes(t)
		checkMeshedTraffic(t)
	})

	// `sinew inject --manual` writes the proxy into the templates itself, without the webhook
	j.step("inject-manual-flag", []string{"control-plane-ready", "emojivoto-unmeshed"}, func(t *testing.T) {
		injectDeployments(t, e, "--manual")
		waitEmojivoto(t)
		requireAllMeshed(t)
		tmpl := kubectl(t, "-n", appNS, "get", "deploy", "-o",
			`jsonpath={range .items[*]}{.metadata.name}{": "}{.spec.template.spec.initContainers[*].name} {.spec.template.spec.containers[*].name}{"\n"}{end}`)
		for _, line := range strings.Split(strings.TrimSpace(tmpl), "\n") {
			if !strings.Contains(line, "sinew-proxy") || !strings.Contains(line, "sinew-init") {
				t.Errorf("after --manual the template of %s lacks sinew-init or sinew-proxy", line)
			}
		}
	})

	j.step("mtls-manual-inject", []string{"inject-manual-flag"}, func(t *testing.T) {
		checkEmojivotoServes(t)
		checkMeshedTraffic(t)
	})

	// ------------------------------------------------------------------ meshed by the webhook
	j.step("inject-namespace-annotation", []string{"control-plane-ready", "emojivoto-unmeshed"}, func(t *testing.T) {
		// back to the plain manifests (the pods lose their proxies), then the namespace opts in and a restart
		// brings every pod back through the injector
		applyEmojivoto(t, manifest, e.version)
		waitEmojivoto(t)
		if pods := meshedPods(t); len(pods) > 0 {
			t.Fatalf("re-applying the plain manifests left meshed pods: %v", pods)
		}
		kubectl(t, "annotate", "ns", appNS, "sinew.dev/inject=enabled", "--overwrite")
		kubectl(t, "-n", appNS, "rollout", "restart", "deploy")
		waitEmojivoto(t)
		requireAllMeshed(t)
		tmpl := kubectl(t, "-n", appNS, "get", "deploy", "-o", `jsonpath={.items[*].spec.template.spec.containers[*].name}`)
		if strings.Contains(tmpl, "sinew-proxy") {
			t.Fatalf("deployment templates carry the proxy, so the webhook was not what injected it: %s", tmpl)
		}
	})

	j.step("check-proxy-webhook", []string{"inject-namespace-annotation", "check"}, func(t *testing.T) {
		must(t, 5*time.Minute, "", e.sinew, "check", "--proxy", "-n", appNS)
	})

	j.step("mtls-webhook-inject", []string{"inject-namespace-annotation"}, func(t *testing.T) {
		checkEmojivotoServes(t)
		checkMeshedTraffic(t)
	})

	// ------------------------------------------------------------------ control-plane failure
	j.step("control-plane-pod-deleted", []string{"mtls-webhook-inject"}, func(t *testing.T) {
		pod := strings.TrimSpace(kubectl(t, "-n", cpNS, "get", "pod", "-l", "sinew.dev/control-plane-component=destination",
			"-o", "jsonpath={.items[0].metadata.name}"))
		if pod == "" {
			t.Fatal("no destination pod (label sinew.dev/control-plane-component=destination) in namespace sinew")
		}
		voting := podIP(t, "voting-svc")
		before := sum(metricsOf(t, voting), "request_total", map[string]string{"direction": "inbound", "tls": "true", "client_id": spiffe("web")})
		kubectl(t, "-n", cpNS, "delete", "pod", pod, "--wait=false")
		// requests keep succeeding while the destination service is gone and while its replacement starts
		web := podIP(t, "web-svc")
		deadline := time.Now().Add(20 * time.Second)
		var ok, failed int
		var lastErr string
		for time.Now().Before(deadline) {
			for _, path := range []string{"/api/list", "/api/leaderboard"} {
				code, body, err := httpGet("http://" + web + ":8080" + path)
				if err != nil || code != 200 {
					failed++
					lastErr = fmt.Sprintf("%s: %d %v %s", path, code, err, clip(body, 200))
				} else {
					ok++
				}
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Logf("while the destination pod was replaced: %d requests succeeded, %d failed", ok, failed)
		if failed > 0 {
			t.Errorf("%d of %d requests failed while a control-plane pod was replaced; last: %s", failed, ok+failed, lastErr)
		}
		kubectl(t, "-n", cpNS, "rollout", "status", "deploy/sinew-destination", "--timeout=3m")
		eventually(t, time.Minute, "voting receiving mTLS requests from web after the restart", func() error {
			s := metricsOfQuiet(voting)
			if v := sum(s, "request_total", map[string]string{"direction": "inbound", "tls": "true", "client_id": spiffe("web")}); v <= before {
				return fmt.Errorf("voting's inbound mTLS request_total from web stayed at %g:\n%s", v, grepSamples(s, "request_total"))
			}
			return nil
		})
	})

	// ------------------------------------------------------------------ viz (test/e2e/viz_test.go)
	vizSteps(j, e, "mtls-webhook-inject")

	// ------------------------------------------------------------------ uninstall
	j.step("uninstall", []string{"install"}, func(t *testing.T) {
		// the user removes the meshed application first (uninstall refuses while meshed pods remain)
		kubectl(t, "delete", "ns", appNS, "--ignore-not-found", "--wait=true", "--timeout=3m")
		pipe(t, 3*time.Minute, []string{e.sinew, "uninstall"}, []string{"kubectl", "delete", "--ignore-not-found", "-f", "-"})
		eventually(t, 3*time.Minute, "free of sinew objects", func() error {
			if left := sinewObjects(); len(left) > 0 {
				return fmt.Errorf("still there: %s", strings.Join(left, ", "))
			}
			return nil
		})
	})

	allPassed := true
	for _, n := range j.order {
		allPassed = allPassed && j.state[n] == "PASS"
	}
	if allPassed {
		kubectl(t, "delete", "ns", appNS, "--ignore-not-found", "--wait=true", "--timeout=3m")
	} else {
		t.Logf("what is left is kept for inspection (KUBECONFIG=%s)", os.Getenv("KUBECONFIG"))
	}
}

// injectDeployments runs `kubectl get -n emojivoto deploy -o yaml | sinew inject [flags] - | kubectl apply -f -`.
func injectDeployments(t *testing.T, e env, flags ...string) {
	t.Helper()
	deploys, err := kubectlQuiet("get", "-n", appNS, "deploy", "-o", "yaml")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("$ kubectl get -n %s deploy -o yaml  (%d bytes)", appNS, len(deploys))
	args := append(append([]string{e.sinew, "inject"}, flags...), "-")
	r := run(time.Minute, deploys, args...)
	if r.err != nil {
		t.Fatalf("sinew inject failed:\n%s", r)
	}
	if !strings.Contains(r.stdout, "sinew.dev") {
		t.Fatalf("sinew inject output does not mention sinew.dev at all:\n%s", r)
	}
	t.Logf("$ %s  (%d bytes in, %d bytes out)\n%s", r.cmd, len(deploys), len(r.stdout), clip(r.stderr, 2000))
	must(t, 2*time.Minute, r.stdout, "kubectl", "apply", "-f", "-")
}

// removeLeftovers deletes what an earlier run may have left: the namespaces the tests create (emojivoto, viz's,
// the JWKS server's, the control plane's) and the cluster-scoped sinew objects.
func removeLeftovers(t *testing.T) {
	t.Helper()
	// the namespaces with meshed pods go before the control plane's; the JWKS server's has no proxy but is a leftover
	for _, ns := range []string{appNS, vizNS, jwksNS, cpNS} {
		kubectl(t, "delete", "ns", ns, "--ignore-not-found", "--wait=true", "--timeout=3m")
	}
	for _, obj := range sinewObjects() {
		kubectl(t, "delete", obj, "--ignore-not-found", "--wait=true", "--timeout=2m")
	}
	if left := sinewObjects(); len(left) > 0 {
		t.Fatalf("could not remove leftovers: %v", left)
	}
}

// sinewObjects lists what an install creates and an uninstall must remove: the sinew namespace and every
// cluster-scoped object whose name mentions sinew (CRDs, webhook configurations, cluster roles and bindings,
// API services).
func sinewObjects() []string {
	var left []string
	if out, err := kubectlQuiet("get", "ns", cpNS, "-o", "name", "--ignore-not-found"); err != nil || strings.TrimSpace(out) != "" {
		left = append(left, "namespace/"+cpNS+strings.TrimSpace(" "+errString(err)))
	}
	out, err := kubectlQuiet("get", "crd,mutatingwebhookconfiguration,validatingwebhookconfiguration,clusterrole,clusterrolebinding,apiservice", "-o", "name")
	if err != nil {
		return append(left, "(listing cluster objects failed: "+err.Error()+")")
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "sinew") {
			left = append(left, strings.TrimSpace(line))
		}
	}
	return left
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return "(" + err.Error() + ")"
}

var emojivotoImage = regexp.MustCompile(`ghcr\.io/sinewmesh/emojivoto:\S+`)

// applyEmojivoto applies the example manifest with its image tag set to the version under test.
func applyEmojivoto(t *testing.T, path, version string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := emojivotoImage.ReplaceAllString(string(b), "ghcr.io/sinewmesh/emojivoto:"+version)
	must(t, 2*time.Minute, m, "kubectl", "apply", "-f", "-")
}

func waitEmojivoto(t *testing.T) {
	t.Helper()
	for _, d := range deployments {
		kubectl(t, "-n", appNS, "rollout", "status", "deploy/"+d, "--timeout=4m")
	}
}

// podsOf lists the running, not terminating pods of emojivoto as name|initContainers|containers|podIP|app.
func podsOf(t *testing.T) []string {
	t.Helper()
	out, err := kubectlQuiet("-n", appNS, "get", "pods", "--field-selector=status.phase=Running", "-o",
		`jsonpath={range .items[*]}{.metadata.name}{"|"}{.spec.initContainers[*].name}{"|"}{.spec.containers[*].name}{"|"}{.status.podIP}{"|"}{.metadata.labels.app}{"|"}{.metadata.deletionTimestamp}{"\n"}{end}`)
	if err != nil {
		t.Fatal(err)
	}
	var pods []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Split(l, "|"); len(f) == 6 && f[5] == "" {
			pods = append(pods, strings.Join(f[:5], "|"))
		}
	}
	return pods
}

// meshedPods names the emojivoto pods that carry a sinew-proxy container (native sidecar or plain).
func meshedPods(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, p := range podsOf(t) {
		f := strings.Split(p, "|")
		if strings.Contains(f[1], "sinew-proxy") || strings.Contains(f[2], "sinew-proxy") {
			out = append(out, f[0])
		}
	}
	return out
}

// requireAllMeshed waits until every emojivoto pod has the init container and the proxy.
func requireAllMeshed(t *testing.T) {
	t.Helper()
	eventually(t, 2*time.Minute, "every emojivoto pod meshed", func() error {
		pods := podsOf(t)
		if len(pods) < len(deployments) {
			return fmt.Errorf("%d running pods, want %d: %v", len(pods), len(deployments), pods)
		}
		for _, p := range pods {
			f := strings.Split(p, "|")
			if !strings.Contains(f[1], "sinew-init") || !strings.Contains(f[1], "sinew-proxy") && !strings.Contains(f[2], "sinew-proxy") {
				return fmt.Errorf("pod %s has init containers [%s] and containers [%s]: want sinew-init and sinew-proxy", f[0], f[1], f[2])
			}
		}
		return nil
	})
}

// podIP returns the IP of the running pod labelled app=<app>.
func podIP(t *testing.T, app string) string {
	t.Helper()
	for _, p := range podsOf(t) {
		f := strings.Split(p, "|")
		if f[4] == app && f[3] != "" {
			return f[3]
		}
	}
	t.Fatalf("no running pod with app=%s in %s", app, appNS)
	return ""
}

// checkEmojivotoServes asks web for the emoji list (web → emoji) and votes (web → voting) through the web
// Service's ClusterIP and through the pod; the doughnut vote fails by design.
func checkEmojivotoServes(t *testing.T) {
	t.Helper()
	svc := strings.TrimSpace(kubectl(t, "-n", appNS, "get", "svc", "web-svc", "-o", "jsonpath={.spec.clusterIP}"))
	for _, base := range []string{"http://" + svc + ":80", "http://" + podIP(t, "web-svc") + ":8080"} {
		eventually(t, time.Minute, "web answering at "+base, func() error {
			code, body, err := httpGet(base + "/api/list")
			if err != nil || code != 200 || !strings.Contains(body, ":doughnut:") {
				return fmt.Errorf("GET %s/api/list: %d %v %s", base, code, err, clip(body, 300))
			}
			if code, body, err = httpGet(base + "/api/vote?choice=:joy:"); err != nil || code != 200 {
				return fmt.Errorf("vote :joy: at %s: %d %v %s", base, code, err, clip(body, 300))
			}
			if code, _, err = httpGet(base + "/api/vote?choice=:doughnut:"); err != nil || code != 500 {
				return fmt.Errorf("vote :doughnut: at %s: %d %v, want the designed 500", base, code, err)
			}
			return nil
		})
	}
	code, body, err := httpGet("http://" + svc + "/api/leaderboard")
	if err != nil || code != 200 || !strings.Contains(body, ":joy:") {
		t.Fatalf("leaderboard after voting :joy:: %d %v %s", code, err, clip(body, 300))
	}
}

// metricsOf reads a pod's proxy metrics from its admin port (4191 is never captured, so the host reaches the
// proxy's admin server directly).
func metricsOf(t *testing.T, ip string) []sample {
	t.Helper()
	code, body, err := httpGet("http://" + ip + ":4191/metrics")
	if err != nil || code != 200 {
		t.Fatalf("GET http://%s:4191/metrics: %d %v %s", ip, code, err, clip(body, 300))
	}
	return parseMetrics(body)
}

func metricsOfQuiet(ip string) []sample {
	_, body, _ := httpGet("http://" + ip + ":4191/metrics")
	return parseMetrics(body)
}

// checkMeshedTraffic proves, from the proxies' own metrics, that web's calls to voting and emoji and vote-bot's
// calls to web crossed both sidecars over mTLS with the right identities on each side.
func checkMeshedTraffic(t *testing.T) {
	t.Helper()
	web, voting, emoji := podIP(t, "web-svc"), podIP(t, "voting-svc"), podIP(t, "emoji-svc")
	checks := []struct {
		what, ip string
		labels   map[string]string
	}{
		{"web's proxy sent mTLS requests to voting's identity", web,
			map[string]string{"direction": "outbound", "tls": "true", "server_id": spiffe("voting")}},
		{"web's proxy sent mTLS requests to emoji's identity", web,
			map[string]string{"direction": "outbound", "tls": "true", "server_id": spiffe("emoji")}},
		{"voting's proxy received mTLS requests from web's identity", voting,
			map[string]string{"direction": "inbound", "tls": "true", "client_id": spiffe("web")}},
		{"emoji's proxy received mTLS requests from web's identity", emoji,
			map[string]string{"direction": "inbound", "tls": "true", "client_id": spiffe("web")}},
		{"web's proxy received mTLS requests from vote-bot (service account default)", web,
			map[string]string{"direction": "inbound", "tls": "true", "client_id": spiffe("default")}},
	}
	eventually(t, 90*time.Second, "mTLS traffic between emojivoto's sidecars", func() error {
		// more traffic, on top of vote-bot's: web → emoji (list) and web → voting (vote)
		httpGet("http://" + web + ":8080/api/list")
		httpGet("http://" + web + ":8080/api/vote?choice=:joy:")
		var missing, found []string
		for _, c := range checks {
			s := metricsOfQuiet(c.ip)
			if v := sum(s, "request_total", c.labels); v <= 0 {
				missing = append(missing, fmt.Sprintf("%s: no request_total%v at %s; its request_total samples:\n%s",
					c.what, c.labels, c.ip, grepSamples(s, "request_total")))
			} else {
				found = append(found, fmt.Sprintf("  %s: request_total = %g", c.what, v))
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("\n%s", strings.Join(missing, "\n"))
		}
		t.Logf("mTLS seen in the proxies' metrics:\n%s", strings.Join(found, "\n"))
		return nil
	})
	// nothing between these workloads went in plaintext (metricsOf, not metricsOfQuiet: an unreadable /metrics
	// would read as no plaintext requests)
	s := metricsOf(t, web)
	if v := sum(s, "request_total", map[string]string{"direction": "outbound", "tls": "false|", "dst_namespace": appNS}); v > 0 {
		t.Errorf("web's proxy sent %g requests to emojivoto services without mTLS:\n%s", v, grepSamples(s, "request_total"))
	}
}
