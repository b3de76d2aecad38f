// Package e2e holds the end-to-end tests of Kubernetes mode: the user's journey (install, check, inject, mTLS
// between emojivoto's services, control-plane failure, uninstall), authorization policy (Servers, authorizations,
// JWT, rate limits, mTLS modes: TestAuthorizationPolicy), a plain Helm install, and rolling restarts of
// emojivoto under load that must not fail a single request (TestRollingRestart), on a real cluster, driven through
// the `sinew` binary and kubectl. Its tests carry the build tag e2e; run them with `make e2e`
// (docs/operations/local-cluster.md).
package e2e
