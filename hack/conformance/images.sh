#!/usr/bin/env bash
# images.sh — build the Gateway API conformance suite's mesh echo image from source, without Docker or a registry.
#
#   hack/conformance/images.sh [OUT.tar]        (default bin/images/gateway-api-echo-advanced.tar)
#
# The pinned suite's mesh tests run Istio's echo app (see versions.env). The cluster cannot pull images, so this
# compiles pkg/test/echo/cmd/{server,client} of the pinned Istio release in a throwaway module under bin/ (fetched
# through the Go module proxy into the module cache; nothing of Istio's is committed), statically, and wraps them
# with hack/images into a tarball tagged with exactly the reference the suite's manifests use. Layout as in
# Istio's pkg/test/echo/docker/Dockerfile.app: /usr/local/bin/{server,client}, /cert.{crt,key}, user 1338,
# entrypoint the server. The suite runs `client …` through kubectl exec, hence PATH.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=versions.env
. "$ROOT/hack/conformance/versions.env"
OUT=${1:-$ROOT/bin/images/gateway-api-echo-advanced.tar}
GO=${GO:-go}
WORK=$ROOT/bin/conformance/istio-echo
mkdir -p "$WORK/stage/usr/local/bin" "$(dirname "$OUT")"

# A module of its own: Istio's dependency graph (old Kubernetes, Envoy's go-control-plane) stays out of ours.
cat >"$WORK/go.mod" <<MOD
module sinew.local/conformance/istio-echo

go 1.22

require istio.io/istio $ISTIO_MODULE_VERSION
MOD
: >"$WORK/go.sum"
(
  cd "$WORK"
  export GOFLAGS="-mod=mod -buildvcs=false" GOWORK=off
  "$GO" mod download istio.io/istio
  CGO_ENABLED=0 "$GO" build -trimpath -ldflags "-s -w" -o stage/usr/local/bin/ \
    istio.io/istio/pkg/test/echo/cmd/server istio.io/istio/pkg/test/echo/cmd/client
  src=$("$GO" list -m -f '{{.Dir}}' istio.io/istio)
  install -m 0444 "$src/tests/testdata/certs/cert.crt" stage/cert.crt
  install -m 0444 "$src/tests/testdata/certs/cert.key" stage/cert.key
)
S=$WORK/stage
"$GO" -C "$ROOT" run ./hack/images wrap -o "$OUT" -name "$ECHO_IMAGE" -entrypoint /usr/local/bin/server -user 1338 \
  -env PATH=/usr/local/bin \
  "$S/usr/local/bin/server:/usr/local/bin/server" "$S/usr/local/bin/client:/usr/local/bin/client" \
  "$S/cert.crt:/cert.crt" "$S/cert.key:/cert.key"
