#!/usr/bin/env bash
# run.sh — run the Gateway API conformance suite's mesh profiles (MESH-HTTP, MESH-GRPC) and gateway profiles
# (GATEWAY-HTTP, GATEWAY-GRPC, GatewayClass sinew) against sinew on a running cluster whose containerd already holds
# sinew's images and the suite's (make conformance does all of that: docs/reference/conformance.md).
#
#   KUBECONFIG=… SINEW_BIN=bin SINEW_VERSION=0.1.0-dev hack/conformance/run.sh [go test flags…] [-args suite flags…]
#
# Every run starts from a fresh sinew install: the suite's namespaces of an earlier run and an earlier install
# (with --force: leftovers of a failed e2e run go with it) are removed first. The suite's own flags pass through
# after -args, e.g. `-args -run-test=MeshBasic -cleanup-base-resources=false`; go test's before it, e.g.
# `-run TestGatewayConformance` for the gateway profiles alone.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
: "${KUBECONFIG:?KUBECONFIG is not set (the cluster: hack/cluster/up.sh prints it)}"
SINEW_BIN=${SINEW_BIN:-$ROOT/bin}
SINEW_VERSION=${SINEW_VERSION:?SINEW_VERSION (the version of the images loaded) is not set}
GO=${GO:-go}
export KUBECONFIG
# shellcheck source=versions.env
. "$ROOT/hack/conformance/versions.env"
sinew=$SINEW_BIN/sinew
step() { printf '\n== %s (%s)\n' "$*" "$(date -u +%T)"; }

step "clean slate"
SUITE_NAMESPACES="gateway-conformance-mesh gateway-conformance-mesh-consumer gateway-conformance-infra
  gateway-conformance-app-backend gateway-conformance-web-backend"
# shellcheck disable=SC2086 # a list
kubectl delete ns $SUITE_NAMESPACES --ignore-not-found --wait=true --timeout=3m
if kubectl get ns sinew >/dev/null 2>&1; then
  "$sinew" uninstall --force | kubectl delete --ignore-not-found --wait=true --timeout=3m -f -
fi

step "install sinew $SINEW_VERSION (CRDs, Gateway API CRDs, control plane)"
"$sinew" install --crds | kubectl apply --server-side --force-conflicts -f -
kubectl wait --for=condition=Established --timeout=60s crd --all
"$sinew" install | kubectl apply -f -
for d in sinew-identity sinew-destination sinew-proxy-injector; do
  kubectl -n sinew rollout status "deploy/$d" --timeout=4m
done

step "conformance suite (MESH-HTTP, MESH-GRPC; GATEWAY-HTTP, GATEWAY-GRPC)"
cd "$ROOT"
SINEW_CONFORMANCE_VERSION=$SINEW_VERSION SINEW_CONFORMANCE_ECHO_IMAGE=$ECHO_IMAGE \
  SINEW_CONFORMANCE_BASE_IMAGES="$ECHO_BASIC_IMAGES,$COREDNS_IMAGE" \
  "$GO" test -tags conformance -count=1 -v -timeout 45m ./conformance "$@"
