//go:build e2e

package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// botManifest is a meshed vote-bot under its own service account, serving its request and failure counts on
// statsPort; the authorization tests tell the admitted client from the refused one by these counts.
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
        args: [vote-bot, -web-host=web-svc.emojivoto:80, -rate=5, -doughnut-share=0, -stats-port=%[3]d]
        ports:
        - name: stats
          containerPort: %[3]d
        readinessProbe:
          httpGet:
            path: /stats
            port: %[3]d
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
// MeshTLSAuthentication in place of the ServerAuthorization.
func TestAuthorizationPolicy(t *testing.T) {
	e := loadEnv(t)
	j := newJourney(t, cpNS, appNS)

	meshedEmojivotoSteps(j, e)
	bots := map[string]string{} // name -> stats URL
	j.step("bots", []string{"emojivoto-meshed"}, func(t *testing.T) {
		for _, b := range []string{"allowed-bot", "denied-bot"} {
			must(t, 2*time.Minute, fmt.Sprintf(botManifest, b, e.version, botStatsPort), "kubectl", "apply", "-f", "-")
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
	j.step("cleanup", []string{"policy-removed", "probes-admitted"}, func(t *testing.T) {
		kubectl(t, "delete", "ns", appNS, "--wait=true", "--timeout=3m")
		pipe(t, 3*time.Minute, []string{e.sinew, "uninstall"}, []string{"kubectl", "delete", "--ignore-not-found", "-f", "-"})
	})
	j.summary()
}
