//go:build e2e

package e2e

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

// gatewayAPIVersion is the Gateway API bundle `sinew install --crds` installs (charts.GatewayAPIVersion; the e2e
// package does not import the CLI's packages).
const gatewayAPIVersion = "v1.6.3"

// canaryManifest is Flagger's layout: the apex Service web-svc (emojivoto's, which clients call), web-primary
// selecting the same pods, and a second web Deployment, web-canary, behind its own Service.
const canaryManifest = `apiVersion: v1
kind: Service
metadata:
  name: web-primary
  namespace: emojivoto
spec:
  selector:
    app: web-svc
  ports:
  - name: http
    port: 80
    targetPort: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: web-canary
  namespace: emojivoto
spec:
  selector:
    app: web-canary
  ports:
  - name: http
    port: 80
    targetPort: 8080
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web-canary
  namespace: emojivoto
spec:
  replicas: 1
  selector:
    matchLabels:
      app: web-canary
  template:
    metadata:
      labels:
        app: web-canary
    spec:
      serviceAccountName: web
      containers:
      - name: web-svc
        image: ghcr.io/sinewmesh/emojivoto:%s
        imagePullPolicy: IfNotPresent
        args: [web]
        env:
        - name: WEB_PORT
          value: "8080"
        - name: EMOJISVC_HOST
          value: emoji-svc.emojivoto:8080
        - name: VOTINGSVC_HOST
          value: voting-svc.emojivoto:8080
        ports:
        - name: http
          containerPort: 8080
        readinessProbe:
          httpGet:
            path: /
            port: 8080
          periodSeconds: 2
`

// splitRoute is the HTTPRoute Flagger's Gateway API provider writes: every request to web-svc goes to
// web-primary or web-canary by weight.
const splitRoute = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: web-split
  namespace: emojivoto
spec:
  parentRefs:
  - {group: "", kind: Service, name: web-svc, port: 80}
  rules:
  - backendRefs:
    - {name: web-primary, port: 80, weight: %d}
    - {name: web-canary, port: 80, weight: %d}
`

// perRouteAuthz is docs/security/authorization-policy.md's per-route example on web's http port: anyone may list
// (and GET /, web's readiness probe), only route-bot's service account may vote.
const perRouteAuthz = webServer + `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web-read, namespace: emojivoto}
spec:
  parentRefs: [{group: policy.sinew.dev, kind: Server, name: web-http}]
  rules:
  - matches:
    - path: {type: PathPrefix, value: /api/list}
    - path: {type: Exact, value: /}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web-vote, namespace: emojivoto}
spec:
  parentRefs: [{group: policy.sinew.dev, kind: Server, name: web-http}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api/vote}}]
---
apiVersion: policy.sinew.dev/v1alpha1
kind: NetworkAuthentication
metadata: {name: anywhere, namespace: emojivoto}
spec:
  networks: [{cidr: 0.0.0.0/0}, {cidr: "::/0"}]
---
apiVersion: policy.sinew.dev/v1alpha1
kind: MeshTLSAuthentication
metadata: {name: route-bot, namespace: emojivoto}
spec:
  identityRefs: [{kind: ServiceAccount, name: route-bot}]
---
apiVersion: policy.sinew.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: web-read-anyone, namespace: emojivoto}
spec:
  targetRef: {group: gateway.networking.k8s.io, kind: HTTPRoute, name: web-read}
  requiredAuthenticationRefs:
  - {group: policy.sinew.dev, kind: NetworkAuthentication, name: anywhere}
---
apiVersion: policy.sinew.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: web-vote-route-bot, namespace: emojivoto}
spec:
  targetRef: {group: gateway.networking.k8s.io, kind: HTTPRoute, name: web-vote}
  requiredAuthenticationRefs:
  - {group: policy.sinew.dev, kind: MeshTLSAuthentication, name: route-bot}
`

// abRoute sends the requests of the A/B test's group b (header x-ab-group: b) to web-canary, the rest to
// web-primary.
const abRoute = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: web-ab
  namespace: emojivoto
spec:
  parentRefs:
  - {group: "", kind: Service, name: web-svc, port: 80}
  rules:
  - matches: [{headers: [{name: x-ab-group, value: b}]}]
    backendRefs: [{name: web-canary, port: 80}]
  - backendRefs: [{name: web-primary, port: 80}]
`

// abBotManifest is a vote-bot of group b (its own service account, ab-bot).
const abBotManifest = `apiVersion: v1
kind: ServiceAccount
metadata: {name: ab-bot, namespace: emojivoto}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ab-bot, namespace: emojivoto}
spec:
  replicas: 1
  selector: {matchLabels: {app: ab-bot}}
  template:
    metadata: {labels: {app: ab-bot}}
    spec:
      serviceAccountName: ab-bot
      containers:
      - name: bot
        image: ghcr.io/sinewmesh/emojivoto:%s
        imagePullPolicy: IfNotPresent
        args: [vote-bot, -web-host=web-svc.emojivoto:80, -rate=5, -doughnut-share=0, "-header=x-ab-group: b"]
`

// votingV2Manifest is a second voting Deployment behind voting-v2, and voting-primary selecting emojivoto's own
// voting pods: the backends of a GRPCRoute on voting-svc.
const votingV2Manifest = `apiVersion: v1
kind: Service
metadata: {name: voting-primary, namespace: emojivoto}
spec:
  selector: {app: voting-svc}
  ports: [{name: grpc, port: 8080, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: voting-v2, namespace: emojivoto}
spec:
  selector: {app: voting-v2}
  ports: [{name: grpc, port: 8080, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: voting-v2, namespace: emojivoto}
spec:
  replicas: 1
  selector: {matchLabels: {app: voting-v2}}
  template:
    metadata: {labels: {app: voting-v2}}
    spec:
      serviceAccountName: voting
      containers:
      - name: voting-svc
        image: ghcr.io/sinewmesh/emojivoto:%s
        imagePullPolicy: IfNotPresent
        args: [voting]
        env: [{name: GRPC_PORT, value: "8080"}]
        ports: [{name: grpc, containerPort: 8080}]
        readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 2}
`

// votingRoute splits web's calls to voting-svc 50/50 between voting-primary and voting-v2, and answers every
// doughnut vote RESOURCE_EXHAUSTED through an HTTPFault (the sample fails them anyway, with another code).
const votingRoute = `apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: voting-split, namespace: emojivoto}
spec:
  parentRefs: [{group: "", kind: Service, name: voting-svc, port: 8080}]
  rules:
  - matches: [{method: {service: emojivoto.v1.VotingService, method: VoteDoughnut}}]
    filters: [{type: ExtensionRef, extensionRef: {group: policy.sinew.dev, kind: HTTPFault, name: no-doughnuts}}]
    backendRefs: [{name: voting-primary, port: 8080}]
  - backendRefs:
    - {name: voting-primary, port: 8080, weight: 50}
    - {name: voting-v2, port: 8080, weight: 50}
---
apiVersion: policy.sinew.dev/v1alpha1
kind: HTTPFault
metadata: {name: no-doughnuts, namespace: emojivoto}
spec:
  abort: {grpcStatus: RESOURCE_EXHAUSTED, httpStatus: 429}
`

const (
	routeBotRate      = 10 // rounds a second, two requests each
	routeBotStatsPort = 9992
	// shareTolerance is how far, in percentage points, a step's measured canary share may be from its weight;
	// a window of shareWindow requests at 10 % has a standard deviation of about 1.7 points.
	shareTolerance = 5.0
	shareWindow    = 300
)

// TestGatewayAPIRoutes is issue 13 on the real cluster: `sinew install --crds` installs the Gateway API CRDs
// (and upgrades an older one), `sinew check` reports their version, a canary's weight on an HTTPRoute moves
// 0 → 10 → 50 → 100 → 0 as Flagger's Gateway API provider moves it, under steady load, with no failed request and
// each step's share of requests within a few points of its weight, and the route's status says the policy
// controller accepted it. Then per-route authorization: HTTPRoutes on a Server, one admitting everyone to
// /api/list, one admitting only route-bot's service account to /api/vote.
func TestGatewayAPIRoutes(t *testing.T) {
	e := loadEnv(t)
	j := newJourney(t, cpNS, appNS)

	meshedEmojivotoSteps(j, e)

	j.step("gateway-api-crds", []string{"install"}, func(t *testing.T) {
		for _, crd := range []string{"httproutes", "grpcroutes", "gateways", "gatewayclasses", "referencegrants"} {
			got := kubectl(t, "get", "crd", crd+".gateway.networking.k8s.io", "-o",
				`jsonpath={.metadata.annotations.gateway\.networking\.k8s\.io/bundle-version} {.metadata.annotations.gateway\.networking\.k8s\.io/channel}`)
			if strings.TrimSpace(got) != gatewayAPIVersion+" standard" {
				t.Errorf("CRD %s.gateway.networking.k8s.io: bundle version and channel %q, want %q", crd, got, gatewayAPIVersion+" standard")
			}
		}
		out := must(t, 5*time.Minute, "", e.sinew, "check")
		if !strings.Contains(out, "✔ the Gateway API CRDs that routes need are installed\n    found: "+gatewayAPIVersion+" (standard): ") ||
			!strings.Contains(out, "HTTPRoute") || !strings.Contains(out, "GRPCRoute") {
			t.Fatalf("sinew check does not report the Gateway API CRDs %s:\n%s", gatewayAPIVersion, out)
		}
		// installed again: the CLI leaves the current ones alone and says so
		r := run(time.Minute, "", e.sinew, "install", "--crds")
		if r.err != nil || strings.Contains(r.stdout, "name: httproutes.gateway.networking.k8s.io") ||
			!strings.Contains(r.stderr, "httproutes.gateway.networking.k8s.io ("+gatewayAPIVersion+")") {
			t.Fatalf("install --crds with the Gateway API CRDs current:\n%s", r)
		}
	})

	j.step("gateway-api-upgrade", []string{"gateway-api-crds"}, func(t *testing.T) {
		// an older HTTPRoute CRD: check warns, and install --crds upgrades it
		kubectl(t, "annotate", "--overwrite", "crd", "httproutes.gateway.networking.k8s.io", "gateway.networking.k8s.io/bundle-version=v1.2.1")
		r := run(5*time.Minute, "", e.sinew, "check", "--wait", "1m")
		if r.err != nil || !strings.Contains(r.stdout, "‼ the Gateway API CRDs that routes need are installed") ||
			!strings.Contains(r.stdout, "older than "+gatewayAPIVersion+": httproutes.gateway.networking.k8s.io (v1.2.1)") {
			t.Fatalf("sinew check with an older HTTPRoute CRD: want a warning (and success):\n%s", r)
		}
		pipe(t, 2*time.Minute, []string{e.sinew, "install", "--crds"}, []string{"kubectl", "apply", "-f", "-"})
		got := kubectl(t, "get", "crd", "httproutes.gateway.networking.k8s.io", "-o", `jsonpath={.metadata.annotations.gateway\.networking\.k8s\.io/bundle-version}`)
		if strings.TrimSpace(got) != gatewayAPIVersion {
			t.Fatalf("after install --crds the HTTPRoute CRD is of bundle %q, want %s", got, gatewayAPIVersion)
		}
	})

	var statsURL string
	webIPs := map[string]string{} // backend -> pod IP
	j.step("canary-deployed", []string{"emojivoto-meshed"}, func(t *testing.T) {
		must(t, 2*time.Minute, fmt.Sprintf(canaryManifest, e.version), "kubectl", "apply", "-f", "-")
		must(t, 2*time.Minute, fmt.Sprintf(botManifest, "route-bot", e.version, routeBotRate, routeBotStatsPort), "kubectl", "apply", "-f", "-")
		for _, d := range []string{"web-canary", "route-bot"} {
			kubectl(t, "-n", appNS, "rollout", "status", "deploy/"+d, "--timeout=3m")
		}
		requireAllMeshed(t)
		webIPs["web-primary"], webIPs["web-canary"] = podIP(t, "web-svc"), podIP(t, "web-canary")
		statsURL = fmt.Sprintf("http://%s:%d/stats", podIP(t, "route-bot"), routeBotStatsPort)
		if s := waitRequests(t, statsURL, 0, 20); s.Failed != 0 {
			t.Fatalf("route-bot failed before any route: %v", s.Failures)
		}
	})

	// requestsTo counts the requests route-bot's identity made to each web backend, from the backends' inbound
	// proxy metrics.
	requestsTo := func() (primary, canary float64, err error) {
		labels := map[string]string{"direction": "inbound", "client_id": spiffe("route-bot")}
		p := metricsOfQuiet(webIPs["web-primary"])
		c := metricsOfQuiet(webIPs["web-canary"])
		if len(p) == 0 || len(c) == 0 {
			return 0, 0, fmt.Errorf("no metrics from web-primary (%d samples) or web-canary (%d samples)", len(p), len(c))
		}
		return sum(p, "request_total", labels), sum(c, "request_total", labels), nil
	}

	j.step("canary-weights", []string{"gateway-api-crds", "canary-deployed"}, func(t *testing.T) {
		before := stats(t, statsURL)
		for i, w := range []int{0, 10, 50, 100, 0} {
			must(t, time.Minute, fmt.Sprintf(splitRoute, 100-w, w), "kubectl", "apply", "-f", "-")
			if i == 0 {
				routeAccepted(t, "web-split")
			}
			// the first window may straddle the change reaching route-bot's proxy: measure until a window of
			// shareWindow requests shows the new weight
			var last string
			eventually(t, 2*time.Minute, fmt.Sprintf("weight %d %% on web-canary", w), func() error {
				p0, c0, err := requestsTo()
				if err != nil {
					return err
				}
				var p1, c1 float64
				eventually(t, time.Minute, fmt.Sprintf("%d more requests at web", shareWindow), func() error {
					if p1, c1, err = requestsTo(); err != nil {
						return err
					}
					if n := p1 + c1 - p0 - c0; n < shareWindow {
						return fmt.Errorf("%.0f requests", n)
					}
					return nil
				})
				share := 100 * (c1 - c0) / (p1 + c1 - p0 - c0)
				last = fmt.Sprintf("weight %3d %%: web-canary got %5.1f %% of %4.0f requests", w, share, p1+c1-p0-c0)
				if math.Abs(share-float64(w)) > shareTolerance {
					return fmt.Errorf("%s, want %d ± %.0f", last, w, shareTolerance)
				}
				return nil
			})
			t.Log(last)
		}
		after := stats(t, statsURL)
		if after.Failed != before.Failed {
			t.Fatalf("%d of %d requests failed while the weights moved:\n%s\nlast failures:\n  %s",
				after.Failed-before.Failed, after.Requests-before.Requests, kindsDiff(before.Failures, after.Failures), strings.Join(after.Recent, "\n  "))
		}
		t.Logf("%d requests while the weights moved, none failed", after.Requests-before.Requests)
	})

	// A/B by header: ab-bot's requests (x-ab-group: b) all go to web-canary, route-bot's (no header) all to
	// web-primary.
	j.step("ab-by-header", []string{"canary-weights"}, func(t *testing.T) {
		kubectl(t, "-n", appNS, "delete", "httproute", "web-split")
		must(t, time.Minute, abRoute, "kubectl", "apply", "-f", "-")
		routeAccepted(t, "web-ab")
		must(t, 2*time.Minute, fmt.Sprintf(abBotManifest, e.version), "kubectl", "apply", "-f", "-")
		kubectl(t, "-n", appNS, "rollout", "status", "deploy/ab-bot", "--timeout=3m")
		requireAllMeshed(t)
		from := func(ip, bot string) float64 {
			return sum(metricsOfQuiet(ip), "request_total", map[string]string{"direction": "inbound", "client_id": spiffe(bot)})
		}
		type counts struct{ abPrimary, abCanary, routePrimary, routeCanary float64 }
		read := func() counts {
			return counts{from(webIPs["web-primary"], "ab-bot"), from(webIPs["web-canary"], "ab-bot"),
				from(webIPs["web-primary"], "route-bot"), from(webIPs["web-canary"], "route-bot")}
		}
		// Once the route reached both bots' proxies, a window of requests goes only where each belongs.
		var last string
		eventually(t, 2*time.Minute, "each group at its own backend", func() error {
			c0 := read()
			var d counts
			// a window of traffic: 50 of ab-bot's requests and 100 of route-bot's
			eventually(t, time.Minute, "a window of both bots' requests", func() error {
				c1 := read()
				d = counts{c1.abPrimary - c0.abPrimary, c1.abCanary - c0.abCanary, c1.routePrimary - c0.routePrimary, c1.routeCanary - c0.routeCanary}
				if d.abPrimary+d.abCanary < 50 || d.routePrimary+d.routeCanary < 100 {
					return fmt.Errorf("ab-bot %.0f, route-bot %.0f requests", d.abPrimary+d.abCanary, d.routePrimary+d.routeCanary)
				}
				return nil
			})
			last = fmt.Sprintf("ab-bot: %.0f at web-canary, %.0f at web-primary; route-bot: %.0f at web-primary, %.0f at web-canary",
				d.abCanary, d.abPrimary, d.routePrimary, d.routeCanary)
			if d.abCanary < 20 || d.abPrimary != 0 || d.routePrimary < 20 || d.routeCanary != 0 {
				return fmt.Errorf("%s", last)
			}
			return nil
		})
		t.Log(last)
		kubectl(t, "-n", appNS, "delete", "deploy", "ab-bot")
		kubectl(t, "-n", appNS, "delete", "httproute", "web-ab")
	})

	// GRPCRoute on emojivoto's voting service: web's calls split between two voting versions, and an HTTPFault
	// answers one method with the gRPC status it names.
	j.step("grpcroute-voting", []string{"gateway-api-crds", "emojivoto-meshed"}, func(t *testing.T) {
		must(t, 2*time.Minute, fmt.Sprintf(votingV2Manifest, e.version), "kubectl", "apply", "-f", "-")
		kubectl(t, "-n", appNS, "rollout", "status", "deploy/voting-v2", "--timeout=3m")
		// a bot that only votes for the doughnut
		doughnutBot := strings.Replace(fmt.Sprintf(botManifest, "doughnut-bot", e.version, 5, routeBotStatsPort), "-doughnut-share=0", "-doughnut-share=1", 1)
		must(t, 2*time.Minute, doughnutBot, "kubectl", "apply", "-f", "-")
		kubectl(t, "-n", appNS, "rollout", "status", "deploy/doughnut-bot", "--timeout=3m")
		requireAllMeshed(t)
		must(t, time.Minute, votingRoute, "kubectl", "apply", "-f", "-")
		eventually(t, time.Minute, "GRPCRoute voting-split accepted", func() error {
			out, err := kubectlQuiet("-n", appNS, "get", "grpcroute", "voting-split", "-o",
				`jsonpath={range .status.parents[*]}{.controllerName} {.conditions[?(@.type=="Accepted")].status} {.conditions[?(@.type=="ResolvedRefs")].status}{"\n"}{end}`)
			if err != nil {
				return err
			}
			if strings.TrimSpace(out) != "sinew.dev/policy-controller True True" {
				return fmt.Errorf("status.parents: %q", strings.TrimSpace(out))
			}
			return nil
		})
		primaryIP, v2IP, webIP := podIP(t, "voting-svc"), podIP(t, "voting-v2"), podIP(t, "web-svc")
		fromWeb := func(ip string) float64 {
			return sum(metricsOfQuiet(ip), "request_total", map[string]string{"direction": "inbound", "client_id": spiffe("web")})
		}
		var last string
		eventually(t, 2*time.Minute, "web's votes split between the voting versions", func() error {
			p0, v0 := fromWeb(primaryIP), fromWeb(v2IP)
			var p1, v1, n float64
			eventually(t, time.Minute, "100 more calls from web", func() error {
				p1, v1 = fromWeb(primaryIP), fromWeb(v2IP)
				if n = p1 + v1 - p0 - v0; n < 100 {
					return fmt.Errorf("%.0f calls from web in the window", n)
				}
				return nil
			})
			share := 100 * (v1 - v0) / n
			last = fmt.Sprintf("voting-v2 got %.1f %% of %.0f calls", share, n)
			if math.Abs(share-50) > 10 {
				return fmt.Errorf("%s, want 50 ± 10", last)
			}
			return nil
		})
		t.Log(last)
		// The doughnut votes get the HTTPFault's RESOURCE_EXHAUSTED (8) from web's own proxy.
		eventually(t, time.Minute, "doughnut votes answered RESOURCE_EXHAUSTED by the fault", func() error {
			n := sum(metricsOfQuiet(webIP), "response_total", map[string]string{"direction": "outbound", "grpc_status_code": "8"})
			if n < 5 {
				return fmt.Errorf("web's proxy answered %v calls with gRPC status 8", n)
			}
			return nil
		})
		kubectl(t, "-n", appNS, "delete", "grpcroute", "voting-split")
		kubectl(t, "-n", appNS, "delete", "httpfault", "no-doughnuts")
		kubectl(t, "-n", appNS, "delete", "deploy", "voting-v2", "doughnut-bot")
		kubectl(t, "-n", appNS, "delete", "service", "voting-v2", "voting-primary")
	})

	j.step("canary-removed", []string{"ab-by-header"}, func(t *testing.T) {
		kubectl(t, "-n", appNS, "delete", "deploy,service", "web-canary")
		kubectl(t, "-n", appNS, "delete", "service", "web-primary")
	})

	var otherURL string
	j.step("per-route-authz", []string{"canary-removed"}, func(t *testing.T) {
		must(t, 2*time.Minute, fmt.Sprintf(botManifest, "other-bot", e.version, 5, routeBotStatsPort), "kubectl", "apply", "-f", "-")
		kubectl(t, "-n", appNS, "rollout", "status", "deploy/other-bot", "--timeout=3m")
		otherURL = fmt.Sprintf("http://%s:%d/stats", podIP(t, "other-bot"), routeBotStatsPort)
		if s := waitRequests(t, otherURL, 0, 10); s.Failed != 0 {
			t.Fatalf("other-bot failed before any policy: %v", s.Failures)
		}
		// (routes with a Server parent get no status: ParentStatuses covers Service parents only)
		must(t, time.Minute, perRouteAuthz, "kubectl", "apply", "-f", "-")
		web := podIP(t, "web-svc")
		// this host is not meshed: it may list (and probe), not vote
		eventually(t, time.Minute, "an unmeshed client refused on /api/vote, admitted on /api/list", func() error {
			var errs []string
			for path, want := range map[string]int{"/api/vote?choice=:joy:": 403, "/api/list": 200, "/": 200} {
				if code, body, err := httpGet("http://" + web + ":8080" + path); err != nil || code != want {
					errs = append(errs, fmt.Sprintf("GET %s: %d %v %s, want %d", path, code, err, clip(body, 200), want))
				}
			}
			if len(errs) > 0 {
				return fmt.Errorf("%s", strings.Join(errs, "; "))
			}
			return nil
		})
		// other-bot, meshed under another service account: its votes are refused, its lists admitted
		o0 := stats(t, otherURL)
		eventually(t, time.Minute, "other-bot's votes refused with 403", func() error {
			s, err := statsQuiet(otherURL)
			if err != nil {
				return err
			}
			if d := votesRefused(s) - votesRefused(o0); d < 5 {
				return fmt.Errorf("%d more votes refused (failures %v)", d, s.Failures)
			}
			return nil
		})
		o1 := stats(t, otherURL)
		o2 := waitRequests(t, otherURL, o1.Requests, 20)
		if d := o2.Failed - o1.Failed; d != votesRefused(o2)-votesRefused(o1) || d == 0 {
			t.Errorf("other-bot: want only its votes refused (403), got:\n%s", kindsDiff(o1.Failures, o2.Failures))
		}
		// route-bot, the admitted voter: not one failure from now on
		r1 := stats(t, statsURL)
		r2 := waitRequests(t, statsURL, r1.Requests, 60)
		if r2.Failed != r1.Failed {
			t.Fatalf("route-bot failed under the per-route policy:\n%s", kindsDiff(r1.Failures, r2.Failures))
		}
		// web stays ready: the kubelet's probe GET / is on web-read
		kubectl(t, "-n", appNS, "rollout", "restart", "deploy/web")
		kubectl(t, "-n", appNS, "rollout", "status", "deploy/web", "--timeout=3m")
	})

	// after a failure, what is left is kept for inspection
	j.step("cleanup", []string{"gateway-api-upgrade", "per-route-authz"}, func(t *testing.T) {
		kubectl(t, "delete", "ns", appNS, "--wait=true", "--timeout=3m")
		pipe(t, 3*time.Minute, []string{e.sinew, "uninstall"}, []string{"kubectl", "delete", "--ignore-not-found", "-f", "-"})
		// uninstall leaves the Gateway API CRDs: other controllers' routes may live in them
		kubectl(t, "get", "crd", "httproutes.gateway.networking.k8s.io")
	})
}

// votesRefused counts a bot's votes answered 403 (the key carries the proxy's error, e.g. "GET /api/vote: status
// 403 (sinew-proxy-error: forbidden)").
func votesRefused(s botStats) int64 {
	var n int64
	for k, v := range s.Failures {
		if strings.HasPrefix(k, "GET /api/vote: status 403") {
			n += v
		}
	}
	return n
}

// routeAccepted waits for the policy controller's status on an HTTPRoute: Accepted and ResolvedRefs True.
func routeAccepted(t *testing.T, name string) {
	t.Helper()
	eventually(t, time.Minute, "HTTPRoute "+name+" accepted by sinew.dev/policy-controller", func() error {
		out, err := kubectlQuiet("-n", appNS, "get", "httproute", name, "-o",
			`jsonpath={range .status.parents[*]}{.controllerName} {.conditions[?(@.type=="Accepted")].status} {.conditions[?(@.type=="ResolvedRefs")].status}{"\n"}{end}`)
		if err != nil {
			return err
		}
		if strings.TrimSpace(out) != "sinew.dev/policy-controller True True" {
			return fmt.Errorf("status.parents: %q, want %q", strings.TrimSpace(out), "sinew.dev/policy-controller True True")
		}
		return nil
	})
}
