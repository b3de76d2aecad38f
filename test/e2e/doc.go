// Package e2e holds the end-to-end test of Kubernetes mode: the user's journey (install, check, inject, mTLS
// between emojivoto's services, control-plane failure, uninstall) on a real cluster, driven through the `sinew`
// binary and kubectl. Its tests carry the build tag e2e; run them with `make e2e` (docs/operations/local-cluster.md).
package e2e
