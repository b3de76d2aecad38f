//go:build e2e

package e2e

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sinewmesh/sinew/internal/names"
)

// botManifest is a meshed vote-bot (name, image version, rounds a second: a list and a vote each, stats port)
// under its own service account, serving its request and failure counts on the stats port; the authorization and
// route tests tell the admitted client from the refused one, and measure shares, by these counts.
const botManifest = `apiVersion: v1
kind: ServiceAccount
metadata:
  name: %[1]s
  namespace: emojivoto
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s
  namespace: emojivoto
spec:
  replicas: 1
  selector:
    matchLabels:
      app: %[1]s
  template:
    metadata:
      labels:
        app: %[1]s
    spec:
      serviceAccountName: %[1]s
      containers:
      - name: bot
        image: ghcr.io/sinewmesh/emojivoto:%[2]s
        imagePullPolicy: IfNotPresent
        args: [vote-bot, -web-host=web-svc.emojivoto:80, -rate=%[3]d, -doughnut-share=0, -stats-port=%[4]d]
        ports:
        - name: stats
          containerPort: %[4]d
        readinessProbe:
          httpGet:
            path: /stats
            port: %[4]d
          periodSeconds: 2
`

// The walkthrough's security step: a Server on web's http port that admits only allowed-bot's service account.
const webServer = `apiVersion: policy.sinew.dev/v1alpha1
kind: Server
metadata:
  name: web-http
  namespace: emojivoto
spec:
  podSelector:
    matchLabels:
      app: web-svc
  port: http
  proxyProtocol: HTTP/1
`

const serverAuthorization = `apiVersion: policy.sinew.dev/v1alpha1
kind: ServerAuthorization
metadata:
  name: web-allowed-bot
  namespace: emojivoto
spec:
  server:
    name: web-http
  client:
    meshTLS:
      serviceAccounts:
      - name: allowed-bot
`

const authorizationPolicy = `apiVersion: policy.sinew.dev/v1alpha1
kind: MeshTLSAuthentication
metadata:
  name: allowed-bot
  namespace: emojivoto
spec:
  identityRefs:
  - kind: ServiceAccount
    name: allowed-bot
---
apiVersion: policy.sinew.dev/v1alpha1
kind: AuthorizationPolicy
metadata:
  name: web-allowed-bot
  namespace: emojivoto
spec:
  targetRef:
    group: policy.sinew.dev
    kind: Server
    name: web-http
  requiredAuthenticationRefs:
  - group: policy.sinew.dev
    kind: MeshTLSAuthentication
    name: allowed-bot
`

const botStatsPort = 9991

// TestAuthorizationPolicy plays the walkthrough's security step on the cluster: once a Server on web's http port
// and an authorization admitting only allowed-bot's service account are applied, allowed-bot keeps getting 200,
// a meshed client under another service account and an unmeshed client (this host) get 403, and web's new pods
// still become ready (kubelet probes are admitted). Then the same with AuthorizationPolicy +
// MeshTLSAuthentication in place of the ServerAuthorization. Then the rest of issue 12 on the real cluster: JWT
// with keys from a JWKS URL served by a pod and from a Secret (jwt_test.go), `viz authz` showing the denials, a
// local rate limit answering 429 with Retry-After, and the mTLS modes STRICT and DISABLE set by annotation on web.
func TestAuthorizationPolicy(t *testing.T) {
	e := loadEnv(t)
	j := newJourney(t, cpNS, appNS)

	meshedEmojivotoSteps(j, e)
	bots := map[string]string{} // name -> stats URL
	j.step("bots", []string{"emojivoto-meshed"}, func(t *testing.T) {
		for _, b := range []string{"allowed-bot", "denied-bot"} {
			must(t, 2*time.Minute, fmt.Sprintf(botManifest, b, e.version, 5, botStatsPort), "kubectl", "apply", "-f", "-")
		}
		for _, b := range []string{"allowed-bot", "denied-bot"} {
			kubectl(t, "-n", appNS, "rollout", "status", "deploy/"+b, "--timeout=3m")
			bots[b] = fmt.Sprintf("http://%s:%d/stats", podIP(t, b), botStatsPort)
			s := waitRequests(t, bots[b], 0, 10)
			if s.Failed != 0 {
				t.Fatalf("%s failed before any policy: %v", b, s.Failures)
			}
		}
		requireAllMeshed(t)
	})

	// enforced checks, with policy applied by apply, that the admitted bot keeps succeeding while the other one
	// and an unmeshed client are refused with 403.
	enforced := func(t *testing.T) {
		t.Helper()
		denied := 0
		eventually(t, time.Minute, "denied-bot refused with 403", func() error {
			s, err := statsQuiet(bots["denied-bot"])
			if err != nil {
				return err
			}
			denied = 0
			for k, n := range s.Failures {
				if strings.Contains(k, "status 403") {
					denied += int(n)
				}
			}
			if denied < 5 {
				return fmt.Errorf("denied-bot: %d requests, failures %v; want 403s", s.Requests, s.Failures)
			}
			return nil
		})
		web := podIP(t, "web-svc")
		eventually(t, 30*time.Second, "an unmeshed client refused", func() error {
			code, body, err := httpGet("http://" + web + ":8080/api/list")
			if err != nil || code != 403 {
				return fmt.Errorf("GET /api/list from this host (unmeshed): %d %v %s, want 403", code, err, clip(body, 200))
			}
			return nil
		})
		// The admitted bot: from now on, no failure at all.
		before := stats(t, bots["allowed-bot"])
		after := waitRequests(t, bots["allowed-bot"], before.Requests, 30)
		if after.Failed != before.Failed {
			t.Fatalf("allowed-bot failed under the policy: %s", kindsDiff(before.Failures, after.Failures))
		}
		samples := metricsOf(t, web)
		if n := sum(samples, "inbound_http_authz_deny_total", map[string]string{"srv_kind": "server", "srv_name": "web-http"}); n < 1 {
			t.Errorf("web's proxy counted %v denials for server web-http:\n%s", n, grepSamples(samples, "inbound_http_authz"))
		}
		if n := sum(samples, "inbound_http_authz_allow_total", map[string]string{"srv_name": "web-http", "client_id": spiffe("allowed-bot")}); n < 1 {
			t.Errorf("web's proxy counted %v admissions of allowed-bot:\n%s", n, grepSamples(samples, "inbound_http_authz"))
		}
	}

	j.step("server-authorization", []string{"bots"}, func(t *testing.T) {
		must(t, time.Minute, webServer+"---\n"+serverAuthorization, "kubectl", "apply", "-f", "-")
		enforced(t)
	})
	j.step("probes-admitted", []string{"server-authorization"}, func(t *testing.T) {
		// New web pods must pass their readiness probe (GET / from the kubelet, unmeshed) under the policy.
		kubectl(t, "-n", appNS, "rollout", "restart", "deploy/web")
		kubectl(t, "-n", appNS, "rollout", "status", "deploy/web", "--timeout=3m")
		enforced(t)
		// The injector saw the Server: the new pods' proxies refuse its port (and only it) until the control
		// plane answers, should they start without one.
		out := kubectl(t, "-n", appNS, "get", "pods", "-l", "app=web-svc", "-o", `jsonpath={range .items[*]}{.metadata.deletionTimestamp}{"|"}`+
			`{.spec.initContainers[?(@.name=="sinew-proxy")].env[?(@.name=="SINEW_PROXY_INBOUND_SERVER_PORTS")].value}{"\n"}{end}`)
		for line := range strings.Lines(out) {
			deleting, ports, _ := strings.Cut(strings.TrimSpace(line), "|")
			if deleting == "" && ports != "8080" {
				t.Errorf("a new web pod's SINEW_PROXY_INBOUND_SERVER_PORTS is %q, want 8080 (the Server web-http's port http)", ports)
			}
		}
	})
	j.step("authorization-policy", []string{"server-authorization"}, func(t *testing.T) {
		must(t, time.Minute, authorizationPolicy, "kubectl", "apply", "-f", "-")
		kubectl(t, "-n", appNS, "delete", "serverauthorization", "web-allowed-bot")
		// Only the AuthorizationPolicy admits allowed-bot now: it must keep succeeding, the others refused.
		enforced(t)
	})
	j.step("policy-removed", []string{"authorization-policy"}, func(t *testing.T) {
		kubectl(t, "-n", appNS, "delete", "authorizationpolicy,meshtlsauthentication,server", "--all")
		eventually(t, time.Minute, "denied-bot admitted again once the Server is gone", func() error {
			before, err := statsQuiet(bots["denied-bot"])
			if err != nil {
				return err
			}
			after := waitRequests(t, bots["denied-bot"], before.Requests, 10)
			if after.Failed != before.Failed {
				return fmt.Errorf("denied-bot still failing: %s", kindsDiff(before.Failures, after.Failures))
			}
			return nil
		})
	})
	// viz, installed early, has Prometheus scrape web's decisions from here on
	j.step("viz-install", []string{"bots"}, func(t *testing.T) {
		installViz(t, e)
		checkViz(t, e)
	})
	jwtSteps(j, e, []string{"policy-removed"})
	vizAuthzStep(j, e, []string{"viz-install", "jwt-remote-jwks"})
	j.step("rate-limit", []string{"policy-removed"}, func(t *testing.T) { rateLimited(t, bots["allowed-bot"]) })
	j.step("mtls-strict", []string{"policy-removed"}, func(t *testing.T) { mtlsStrict(t, bots["allowed-bot"]) })
	j.step("mtls-disable", []string{"policy-removed"}, func(t *testing.T) { mtlsDisable(t, bots["allowed-bot"]) })

	// after a failure, what is left is kept for inspection
	j.step("cleanup", []string{"policy-removed", "probes-admitted", "jwt-secret-jwks", "viz-authz", "rate-limit", "mtls-strict", "mtls-disable"}, func(t *testing.T) {
		kubectl(t, "delete", "ns", appNS, jwksNS, "--wait=true", "--timeout=3m")
		pipe(t, 3*time.Minute, []string{e.sinew, "viz", "uninstall"}, []string{"kubectl", "delete", "--ignore-not-found", "-f", "-"})
		pipe(t, 3*time.Minute, []string{e.sinew, "uninstall"}, []string{"kubectl", "delete", "--ignore-not-found", "-f", "-"})
	})
	j.summary()
}

// removePolicies deletes every policy resource in emojivoto, so that a step starts from the default policy
// whatever the steps before it left.
func removePolicies(t *testing.T) {
	t.Helper()
	kubectl(t, "-n", appNS, "delete", "--ignore-not-found",
		"httplocalratelimitpolicy,authorizationpolicy,serverauthorization,meshtlsauthentication,jwtauthentication,server", "--all")
}

// webRateLimit admits everyone to web's http port, but each client identity (every unmeshed client sharing one)
// only 20 requests per second: the bots call web 10 times a second each, a burst from this host is over.
const webRateLimit = webServer + `  accessPolicy: all-unauthenticated
---
apiVersion: policy.sinew.dev/v1alpha1
kind: HTTPLocalRateLimitPolicy
metadata:
  name: web-limit
  namespace: emojivoto
spec:
  targetRef:
    group: policy.sinew.dev
    kind: Server
    name: web-http
  total:
    requestsPerSecond: 1000
  identity:
    requestsPerSecond: 20
`

// rateLimited applies webRateLimit and sends bursts from this host (unmeshed) until some request gets 429 with
// Retry-After, while the meshed bot, under its own share, keeps getting answers.
func rateLimited(t *testing.T, botStatsURL string) {
	removePolicies(t)
	must(t, time.Minute, webRateLimit, "kubectl", "apply", "-f", "-")
	url := "http://" + podIP(t, "web-svc") + ":8080/api/list"
	// burst sends 60 requests in a row, each on a new connection, and returns how many got each status, and one
	// of the 429s.
	burst := func() (map[int]int, *answer, error) {
		codes := map[int]int{}
		var limited *answer
		for range 60 {
			a, err := httpGetWith(url, nil)
			if err != nil {
				return codes, limited, err
			}
			codes[a.code]++
			if a.code == http.StatusTooManyRequests && limited == nil {
				limited = &a
			}
		}
		return codes, limited, nil
	}
	eventually(t, time.Minute, "a burst from this host limited with 429 and Retry-After", func() error {
		codes, limited, err := burst()
		if err != nil {
			return err
		}
		if limited == nil {
			return fmt.Errorf("60 requests in a row got %v, want some 429", codes)
		}
		if codes[200] == 0 {
			return fmt.Errorf("60 requests in a row got %v: the limit admitted none", codes)
		}
		if n, err := strconv.Atoi(limited.header.Get("Retry-After")); err != nil || n < 1 {
			return fmt.Errorf("a 429 without Retry-After in seconds: %s", limited)
		}
		t.Logf("60 requests in a row from this host: %v; a refused one: %s", codes, limited)
		return nil
	})
	// the meshed bot has its own share: another burst from the host costs it nothing
	before := stats(t, botStatsURL)
	if codes, _, err := burst(); err != nil || codes[http.StatusTooManyRequests] == 0 {
		t.Errorf("a second burst from this host: %v %v, want some 429", codes, err)
	}
	after := waitRequests(t, botStatsURL, before.Requests, 20)
	if after.Failed != before.Failed {
		t.Errorf("allowed-bot, under its own share, failed while the host was limited: %s", kindsDiff(before.Failures, after.Failures))
	}
	samples := metricsOf(t, podIP(t, "web-svc"))
	if n := sum(samples, "inbound_http_ratelimit_rejected_total", map[string]string{"ratelimit_name": "web-limit", "limit": "identity"}); n < 1 {
		t.Errorf("web's proxy counted %v refusals by web-limit's identity limit:\n%s", n, grepSamples(samples, "inbound_http_ratelimit_rejected_total"))
	}
}

// setWebMTLSMode sets config.sinew.dev/mtls-mode on web's pod template and waits for the new pods.
func setWebMTLSMode(t *testing.T, mode string) {
	t.Helper()
	old := strings.Fields(kubectl(t, "-n", appNS, "get", "pods", "-l", "app=web-svc", "-o", "jsonpath={.items[*].metadata.name}"))
	kubectl(t, "-n", appNS, "patch", "deploy", "web", "--type=merge", "-p",
		`{"spec":{"template":{"metadata":{"annotations":{"`+names.AnnMTLSMode+`":"`+mode+`"}}}}}`)
	kubectl(t, "-n", appNS, "rollout", "status", "deploy/web", "--timeout=3m")
	eventually(t, 2*time.Minute, "web's old pods gone", func() error {
		out, err := kubectlQuiet(append([]string{"-n", appNS, "get", "pods", "--ignore-not-found", "-o", "name"}, old...)...)
		if err != nil || strings.TrimSpace(out) != "" {
			return fmt.Errorf("still there: %q %v", strings.TrimSpace(out), err)
		}
		return nil
	})
}

// mtlsStrict makes every port of web STRICT: this host (unmeshed) is refused with 403 and counted as a denial of
// a client without identity, while the meshed bot keeps getting answers.
func mtlsStrict(t *testing.T, botStatsURL string) {
	removePolicies(t)
	// under the default policy (PERMISSIVE, all-unauthenticated) this host is admitted, so a 403 below is STRICT's
	eventually(t, time.Minute, "an unmeshed client admitted once no policy is left", func() error {
		a, err := httpGetWith("http://"+podIP(t, "web-svc")+":8080/api/list", nil)
		if err != nil || a.code != http.StatusOK {
			return fmt.Errorf("GET /api/list from this host (unmeshed): %s %v, want 200", a, err)
		}
		return nil
	})
	setWebMTLSMode(t, "STRICT")
	web := podIP(t, "web-svc")
	eventually(t, time.Minute, "an unmeshed client refused by STRICT web", func() error {
		a, err := httpGetWith("http://"+web+":8080/api/list", nil)
		if err != nil || a.code != http.StatusForbidden {
			return fmt.Errorf("GET /api/list from this host (unmeshed): %s %v, want 403", a, err)
		}
		t.Logf("GET /api/list from this host (unmeshed): %s", a)
		return nil
	})
	before := stats(t, botStatsURL)
	after := waitRequests(t, botStatsURL, before.Requests, 20)
	if after.Failed != before.Failed {
		t.Errorf("allowed-bot (meshed) failed against STRICT web: %s", kindsDiff(before.Failures, after.Failures))
	}
	samples := metricsOf(t, web)
	if n := sum(samples, "inbound_http_authz_deny_total", map[string]string{"tls": "no_identity"}); n < 1 {
		t.Errorf("web's proxy counted %v denials of clients without identity:\n%s", n, grepSamples(samples, "inbound_http_authz_deny_total"))
	}
	if n := sum(samples, "request_total", map[string]string{"direction": "inbound", "tls": "true", "client_id": spiffe("allowed-bot")}); n < 1 {
		t.Errorf("web's proxy saw no mTLS request from allowed-bot:\n%s", grepSamples(samples, "request_total"))
	}
}

// mtlsDisable turns mTLS off for web's http port: the meshed bot's proxy sends it plaintext, counted as
// tls="disabled" on its outbound metrics, and the bot keeps getting answers.
func mtlsDisable(t *testing.T, botStatsURL string) {
	removePolicies(t)
	setWebMTLSMode(t, "http=DISABLE")
	bot := strings.TrimSuffix(strings.TrimPrefix(botStatsURL, "http://"), fmt.Sprintf(":%d/stats", botStatsPort))
	eventually(t, time.Minute, "allowed-bot's proxy sending plaintext to web", func() error {
		s := metricsOfQuiet(bot)
		n := sum(s, "request_total", map[string]string{"direction": "outbound", "tls": "disabled", "authority": "web-svc[.].*"})
		if n < 1 {
			return fmt.Errorf("allowed-bot's proxy has no outbound request_total{tls=\"disabled\"} to web-svc:\n%s", grepSamples(s, "request_total"))
		}
		t.Logf("allowed-bot's proxy: %g outbound requests to web-svc with tls=\"disabled\"", n)
		return nil
	})
	before := stats(t, botStatsURL)
	after := waitRequests(t, botStatsURL, before.Requests, 20)
	if after.Failed != before.Failed {
		t.Errorf("allowed-bot failed against web's DISABLE port: %s", kindsDiff(before.Failures, after.Failures))
	}
	// and no longer over mTLS: the count of mTLS requests to web stands still
	s := metricsOf(t, bot)
	mtls := sum(s, "request_total", map[string]string{"direction": "outbound", "tls": "true", "authority": "web-svc[.].*"})
	waitRequests(t, botStatsURL, stats(t, botStatsURL).Requests, 10)
	s = metricsOf(t, bot)
	if now := sum(s, "request_total", map[string]string{"direction": "outbound", "tls": "true", "authority": "web-svc[.].*"}); now != mtls {
		t.Errorf("allowed-bot's proxy still sends web mTLS requests (%g, then %g):\n%s", mtls, now, grepSamples(s, "request_total"))
	}
}
