//go:build e2e

package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The ingress controller of issue 14's walkthrough: Traefik, built from source by hack/ingress/images.sh (make
// ingress-images) and deployed by the user-facing example examples/ingress/traefik.yaml.
const (
	ingressNS      = "traefik"
	ingressDeploy  = "traefik"
	ingressHost    = "emojivoto.example"
	ingressSA      = "traefik"
	ingressExample = "examples/ingress/traefik.yaml"
)

// ingressIdentity matches the controller's SPIFFE ID, whatever the trust domain.
var ingressIdentity = `spiffe://[^/]+/ns/` + ingressNS + `/sa/` + ingressSA

// webIngressOnly restricts web's http port to the ingress controller's identity: a Server, the controller's
// service account (in another namespace) as a MeshTLSAuthentication, and an AuthorizationPolicy joining them.
const webIngressOnly = `apiVersion: policy.sinew.dev/v1alpha1
kind: Server
metadata:
  name: web-ingress
  namespace: emojivoto
spec:
  podSelector:
    matchLabels:
      app: web-svc
  port: http
  proxyProtocol: HTTP/1
---
apiVersion: policy.sinew.dev/v1alpha1
kind: MeshTLSAuthentication
metadata:
  name: ingress
  namespace: emojivoto
spec:
  identityRefs:
  - kind: ServiceAccount
    name: ` + ingressSA + `
    namespace: ` + ingressNS + `
---
apiVersion: policy.sinew.dev/v1alpha1
kind: AuthorizationPolicy
metadata:
  name: web-from-ingress
  namespace: emojivoto
spec:
  targetRef:
    group: policy.sinew.dev
    kind: Server
    name: web-ingress
  requiredAuthenticationRefs:
  - group: policy.sinew.dev
    kind: MeshTLSAuthentication
    name: ingress
`

// TestIngressController plays issue 14's walkthrough with a real ingress controller: Traefik, meshed by the
// injector through `sinew.dev/inject: ingress`, routes host emojivoto.example to web; requests through it get 200
// and reach web over mTLS under Traefik's identity; `sinew viz tap deploy/traefik` shows them with tls=true. Then a
// Server and an AuthorizationPolicy on web admit only Traefik's service account: a meshed pod calling web directly
// and this host calling web's pod are refused with 403, while the same pages through Traefik still get 200.
func TestIngressController(t *testing.T) {
	e := loadEnv(t)
	image := ingressImage(t, e)
	j := newJourney(t, cpNS, appNS, ingressNS)
	// Nothing else in the suite knows Traefik's namespace and cluster-scoped objects: remove them whatever happened
	// (a failed step has already dumped their state). The rest follows the suite: kept after a failure for
	// inspection, cleared by the next scenario's clean-slate.
	t.Cleanup(func() { removeIngressController(t) })

	j.step("ingress-leftovers", nil, func(t *testing.T) { removeIngressController(t) })
	meshedEmojivotoSteps(j, e)
	j.step("viz-install", []string{"install"}, func(t *testing.T) {
		installViz(t, e)
		checkViz(t, e)
	})

	var traefikURL string // the traefik Service, as this host reaches it
	j.step("traefik-meshed", []string{"emojivoto-meshed", "ingress-leftovers"}, func(t *testing.T) {
		out := must(t, time.Minute, "", "ctr", "-n", "k8s.io", "images", "ls", "-q")
		if !strings.Contains(out, image) {
			t.Fatalf("image %s is not in the cluster's containerd: run `make ingress-images` and hack/cluster/load-images.sh", image)
		}
		b, err := os.ReadFile(e.repo + "/" + ingressExample)
		if err != nil {
			t.Fatal(err)
		}
		manifest := regexp.MustCompile(`ghcr\.io/sinewmesh/traefik:\S+`).ReplaceAllString(string(b), image)
		must(t, 2*time.Minute, manifest, "kubectl", "apply", "-f", "-")
		kubectl(t, "-n", ingressNS, "rollout", "status", "deploy/"+ingressDeploy, "--timeout=3m")
		// the injector meshed it: the proxy beside Traefik (native sidecar or plain container) and the capture rules
		eventually(t, time.Minute, "Traefik's pod meshed", func() error {
			out, err := kubectlQuiet("-n", ingressNS, "get", "pods", "-l", "app=traefik", "--field-selector=status.phase=Running", "-o",
				`jsonpath={range .items[*]}{.metadata.name}{"|"}{.spec.initContainers[*].name}{"|"}{.spec.containers[*].name}{"|"}{.metadata.annotations.sinew\.dev/inject}{"|"}{.metadata.deletionTimestamp}{"\n"}{end}`)
			if err != nil {
				return err
			}
			for line := range strings.Lines(out) {
				f := strings.Split(strings.TrimSpace(line), "|")
				if len(f) != 5 || f[4] != "" {
					continue
				}
				if !strings.Contains(f[1], "sinew-init") || !strings.Contains(f[1]+" "+f[2], "sinew-proxy") {
					return fmt.Errorf("pod %s has init containers [%s] and containers [%s]: want sinew-init and sinew-proxy", f[0], f[1], f[2])
				}
				if f[3] != "ingress" {
					return fmt.Errorf("pod %s has sinew.dev/inject=%q, want ingress", f[0], f[3])
				}
				return nil
			}
			return fmt.Errorf("no running Traefik pod:\n%s", out)
		})
		svc := strings.TrimSpace(kubectl(t, "-n", ingressNS, "get", "svc", "traefik", "-o", "jsonpath={.spec.clusterIP}"))
		traefikURL = "http://" + svc + ":80"
	})

	j.step("through-traefik", []string{"traefik-meshed"}, func(t *testing.T) {
		// Traefik picks the Ingress up once it has synced web-svc's endpoints; until then it answers 404
		eventually(t, 2*time.Minute, "web's pages through Traefik", func() error {
			for _, p := range []struct{ path, want string }{{"/", "<"}, {"/api/list", ":doughnut:"}} {
				a, err := viaIngress(traefikURL, p.path)
				if err != nil || a.code != http.StatusOK || !strings.Contains(a.body, p.want) {
					return fmt.Errorf("GET %s%s (Host %s): %s %v, want 200", traefikURL, p.path, ingressHost, a, err)
				}
				t.Logf("GET %s%s (Host %s) through Traefik: %s", traefikURL, p.path, ingressHost, a)
			}
			return nil
		})
		// web saw them over mTLS, from Traefik's identity
		web := podIP(t, "web-svc")
		eventually(t, time.Minute, "web's proxy counting mTLS requests from Traefik", func() error {
			if _, err := viaIngress(traefikURL, "/api/list"); err != nil {
				return err
			}
			s := metricsOfQuiet(web)
			n := sum(s, "request_total", map[string]string{"direction": "inbound", "tls": "true", "client_id": ingressIdentity})
			if n < 1 {
				return fmt.Errorf("no inbound request_total{tls=\"true\",client_id=~%q} at web:\n%s", ingressIdentity, grepSamples(s, "request_total"))
			}
			t.Logf("web's proxy: %g inbound mTLS requests from %s", n, ingressIdentity)
			return nil
		})
	})

	j.step("tap-traefik", []string{"through-traefik", "viz-install"}, func(t *testing.T) {
		web := podIP(t, "web-svc")
		// tap shows requests from the moment it starts: keep requests going through Traefik while it runs
		defer keepCalling(200*time.Millisecond, func() { _, _ = viaIngress(traefikURL, "/api/list") })()
		r := run(90*time.Second, "", e.sinew, "viz", "tap", "-n", ingressNS, "deploy/"+ingressDeploy, "--limit", "10")
		t.Logf("%s", r)
		if r.err != nil {
			t.Fatalf("sinew viz tap -n %s deploy/%s failed", ingressNS, ingressDeploy)
		}
		// Traefik's proxy sends each request to web's pod (the endpoint Traefik chose) over mTLS, that is to the
		// pod's proxy: dst is web's pod IP at the proxy's inbound port
		toWeb := 0
		for line := range strings.Lines(r.stdout) {
			f := strings.Fields(line)
			if len(f) > 0 && f[0] == "req" && strings.Contains(line, " proxy=out ") &&
				strings.Contains(line, " dst="+web+":") && strings.Contains(line, " tls=true ") {
				toWeb++
			}
		}
		if toWeb == 0 {
			t.Fatalf("sinew viz tap deploy/traefik printed no outbound request to web's pod (dst=%s:…) with tls=true", web)
		}
	})

	bot := ""
	j.step("ingress-only", []string{"through-traefik"}, func(t *testing.T) {
		// a meshed client under its own service account, calling web-svc directly, succeeds before the policy
		must(t, 2*time.Minute, fmt.Sprintf(botManifest, "direct-bot", e.version, 5, botStatsPort), "kubectl", "apply", "-f", "-")
		kubectl(t, "-n", appNS, "rollout", "status", "deploy/direct-bot", "--timeout=3m")
		bot = fmt.Sprintf("http://%s:%d/stats", podIP(t, "direct-bot"), botStatsPort)
		if s := waitRequests(t, bot, 0, 10); s.Failed != 0 {
			t.Fatalf("direct-bot failed before any policy: %v", s.Failures)
		}

		must(t, time.Minute, webIngressOnly, "kubectl", "apply", "-f", "-")
		eventually(t, time.Minute, "direct-bot (meshed, calling web-svc directly) refused with 403", func() error {
			before, err := statsQuiet(bot)
			if err != nil {
				return err
			}
			after := waitRequests(t, bot, before.Requests, 5)
			for k, n := range after.Failures {
				if strings.Contains(k, "status 403") && n > before.Failures[k] {
					t.Logf("direct-bot, calling web-svc directly under the policy: %d more failures %q", n-before.Failures[k], k)
					return nil
				}
			}
			return fmt.Errorf("direct-bot's new failures, want 403s:\n%s", kindsDiff(before.Failures, after.Failures))
		})
		web := podIP(t, "web-svc")
		eventually(t, 30*time.Second, "this host (unmeshed) refused by web with 403", func() error {
			a, err := httpGetWith("http://"+web+":8080/api/list", nil)
			if err != nil || a.code != http.StatusForbidden {
				return fmt.Errorf("GET /api/list from this host: %s %v, want 403", a, err)
			}
			t.Logf("GET http://%s:8080/api/list from this host (unmeshed): %s", web, a)
			return nil
		})
		// the same pages through Traefik: every one admitted
		for i := range 20 {
			p := []string{"/", "/api/list"}[i%2]
			if a, err := viaIngress(traefikURL, p); err != nil || a.code != http.StatusOK {
				t.Fatalf("GET %s%s (Host %s) under the policy: %s %v, want 200", traefikURL, p, ingressHost, a, err)
			}
		}
		t.Logf("20 GETs of / and /api/list through Traefik under the policy: all 200")
		s := metricsOf(t, web)
		if n := sum(s, "inbound_http_authz_allow_total", map[string]string{"srv_name": "web-ingress", "client_id": ingressIdentity}); n < 1 {
			t.Errorf("web's proxy counted %v admissions of Traefik by web-ingress:\n%s", n, grepSamples(s, "inbound_http_authz"))
		}
		if n := sum(s, "inbound_http_authz_deny_total", map[string]string{"srv_name": "web-ingress", "client_id": spiffe("direct-bot")}); n < 1 {
			t.Errorf("web's proxy counted %v denials of direct-bot by web-ingress:\n%s", n, grepSamples(s, "inbound_http_authz"))
		}
	})

	j.step("policy-removed", []string{"ingress-only"}, func(t *testing.T) {
		kubectl(t, "-n", appNS, "delete", "authorizationpolicy/web-from-ingress", "meshtlsauthentication/ingress", "server/web-ingress")
		eventually(t, time.Minute, "direct-bot admitted again once the Server is gone", func() error {
			before, err := statsQuiet(bot)
			if err != nil {
				return err
			}
			if after := waitRequests(t, bot, before.Requests, 5); after.Failed != before.Failed {
				return fmt.Errorf("direct-bot still failing: %s", kindsDiff(before.Failures, after.Failures))
			}
			return nil
		})
	})

	// Ingress mode: Traefik sends every request to a pod of web it chose, but a request whose sinew-dst-override
	// names web-svc is routed by the proxy as web-svc's, so web-svc's HTTPRoute applies to it (its response header
	// says so); without the header the request goes to the pod Traefik chose, unrouted.
	j.step("ingress-mode-routes", []string{"policy-removed"}, func(t *testing.T) {
		must(t, time.Minute, ingressModeRoute, "kubectl", "apply", "-f", "-")
		defer kubectl(t, "-n", appNS, "delete", "httproute", "web-svc-marked", "--ignore-not-found")
		override := map[string]string{"sinew-dst-override": "web-svc.emojivoto.svc.cluster.local:80"}
		eventually(t, 2*time.Minute, "web-svc's route applied through the override header", func() error {
			a, err := viaIngressWith(traefikURL, "/api/list", override)
			if err != nil || a.code != 200 || a.header.Get("X-Sinew-Route") != "web-svc-marked" {
				return fmt.Errorf("GET /api/list with %v: %s %v (x-sinew-route %q)", override, a, err, a.header.Get("X-Sinew-Route"))
			}
			return nil
		})
		for range 5 {
			a, err := viaIngressWith(traefikURL, "/api/list", nil)
			if err != nil || a.code != 200 || a.header.Get("X-Sinew-Route") != "" {
				t.Fatalf("GET /api/list without the header: %s %v (x-sinew-route %q), want 200 from the pod Traefik chose, unrouted", a, err, a.header.Get("X-Sinew-Route"))
			}
		}
	})

	j.step("cleanup", []string{"policy-removed", "tap-traefik"}, func(t *testing.T) {
		removeIngressController(t)
		kubectl(t, "delete", "ns", appNS, "--wait=true", "--timeout=3m")
		pipe(t, 3*time.Minute, []string{e.sinew, "viz", "uninstall"}, []string{"kubectl", "delete", "--ignore-not-found", "-f", "-"})
		pipe(t, 3*time.Minute, []string{e.sinew, "uninstall"}, []string{"kubectl", "delete", "--ignore-not-found", "-f", "-"})
	})
	j.summary()
}

// ingressImage is the Traefik image reference pinned in hack/ingress/versions.env.
func ingressImage(t *testing.T, e env) string {
	t.Helper()
	f, err := os.Open(e.repo + "/hack/ingress/versions.env")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "TRAEFIK_IMAGE="); ok && v != "" {
			return v
		}
	}
	t.Fatalf("hack/ingress/versions.env has no TRAEFIK_IMAGE= line (%v)", sc.Err())
	return ""
}

// removeIngressController deletes what examples/ingress/traefik.yaml creates outside emojivoto: Traefik's
// namespace and its cluster-scoped objects (the Ingress goes with emojivoto's namespace).
func removeIngressController(t *testing.T) {
	t.Helper()
	kubectl(t, "delete", "ns", ingressNS, "--ignore-not-found", "--wait=true", "--timeout=3m")
	kubectl(t, "delete", "--ignore-not-found", "--wait=true", "clusterrolebinding/traefik-ingress-controller",
		"clusterrole/traefik-ingress-controller", "ingressclass/traefik")
}

// ingressModeRoute marks web-svc's responses: an HTTPRoute on the Service that adds a response header.
const ingressModeRoute = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web-svc-marked, namespace: emojivoto}
spec:
  parentRefs: [{group: "", kind: Service, name: web-svc, port: 80}]
  rules:
  - filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier: {set: [{name: x-sinew-route, value: web-svc-marked}]}
    backendRefs: [{name: web-svc, port: 80}]
`

// viaIngress asks the ingress at base for path as a browser of emojivoto.example would, on a fresh connection.
func viaIngress(base, path string) (answer, error) { return viaIngressWith(base, path, nil) }

// viaIngressWith is viaIngress with request headers.
func viaIngressWith(base, path string, header map[string]string) (answer, error) {
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	if err != nil {
		return answer{}, err
	}
	req.Host = ingressHost
	for k, v := range header {
		req.Header.Set(k, v)
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return answer{code: resp.StatusCode, header: resp.Header, body: string(b)}, err
}
