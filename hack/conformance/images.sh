#!/usr/bin/env bash
# images.sh — build the Gateway API conformance suite's images from source, without Docker or a registry.
#
#   hack/conformance/images.sh [DIR]        (default bin/images)
#
# writes into DIR:
#   gateway-api-echo-advanced.tar   the mesh tests' echo (Istio's echo app, see versions.env)
#   gateway-api-echo-basic-*.tar    the gateway tests' backends (upstream's echo-basic, one tarball per tag)
#   gateway-api-coredns.tar         the CoreDNS that the suite's base manifests run
#
# The cluster cannot pull images, so each is compiled here, statically (fetched through the Go module proxy into
# the module cache; nothing fetched is committed), and wrapped with hack/images into a tarball tagged with exactly
# the reference the suite's manifests use (conformance_test.go fails early when they name another).
#
# Istio's echo app: pkg/test/echo/cmd/{server,client} of the pinned Istio release in a throwaway module under bin/,
# laid out as Istio's pkg/test/echo/docker/Dockerfile.app: /usr/local/bin/{server,client}, /cert.{crt,key}, user
# 1338, entrypoint the server. The suite runs `client …` through kubectl exec, hence PATH.
#
# echo-basic: the source in the pinned conformance module (conformance/echo-basic, a module of its own there, its
# go.mod shipped as .go.mod), built as upstream's docker/Dockerfile.echo-basic does: /echo-basic, user 65532
# (distroless's nonroot).
#
# CoreDNS: `go install github.com/coredns/coredns@$COREDNS_VERSION`, /coredns as the entrypoint (the manifests pass
# -conf). It runs as root: upstream's image runs as nonroot with a file capability to bind port 53, which hack/images
# cannot set; the suite's pod drops every capability but NET_BIND_SERVICE.
#
# Each tarball is skipped when it exists and is newer than versions.env and this script (FORCE=1 rebuilds).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=versions.env
. "$ROOT/hack/conformance/versions.env"
DIR=${1:-$ROOT/bin/images}
GO=${GO:-go}
WORK=$ROOT/bin/conformance
mkdir -p "$DIR" "$WORK"
wrap() { "$GO" -C "$ROOT" run ./hack/images wrap "$@"; }
fresh() {
  [ -z "${FORCE:-}" ] && [ -f "$1" ] && [ "$1" -nt "$ROOT/hack/conformance/versions.env" ] && [ "$1" -nt "$0" ] &&
    echo "conformance images: $1 is up to date"
}

# ---------------------------------------------------------------- Istio's echo app (mesh tests)
OUT=$DIR/gateway-api-echo-advanced.tar
if ! fresh "$OUT"; then
  W=$WORK/istio-echo
  mkdir -p "$W/stage/usr/local/bin"
  # A module of its own: Istio's dependency graph (old Kubernetes, Envoy's go-control-plane) stays out of ours.
  cat >"$W/go.mod" <<MOD
module sinew.local/conformance/istio-echo

go 1.22

require istio.io/istio $ISTIO_MODULE_VERSION
MOD
  : >"$W/go.sum"
  (
    cd "$W"
    export GOFLAGS="-mod=mod -buildvcs=false" GOWORK=off
    "$GO" mod download istio.io/istio
    CGO_ENABLED=0 "$GO" build -trimpath -ldflags "-s -w" -o stage/usr/local/bin/ \
      istio.io/istio/pkg/test/echo/cmd/server istio.io/istio/pkg/test/echo/cmd/client
    src=$("$GO" list -m -f '{{.Dir}}' istio.io/istio)
    install -m 0444 "$src/tests/testdata/certs/cert.crt" stage/cert.crt
    install -m 0444 "$src/tests/testdata/certs/cert.key" stage/cert.key
  )
  S=$W/stage
  wrap -o "$OUT" -name "$ECHO_IMAGE" -entrypoint /usr/local/bin/server -user 1338 -env PATH=/usr/local/bin \
    "$S/usr/local/bin/server:/usr/local/bin/server" "$S/usr/local/bin/client:/usr/local/bin/client" \
    "$S/cert.crt:/cert.crt" "$S/cert.key:/cert.key"
fi

# ---------------------------------------------------------------- echo-basic (gateway tests)
need=()
for ref in ${ECHO_BASIC_IMAGES//,/ }; do
  out=$DIR/gateway-api-echo-basic-${ref##*:}.tar
  fresh "$out" || need+=("$ref")
done
if [ ${#need[@]} -gt 0 ]; then
  W=$WORK/echo-basic
  src=$(cd "$ROOT" && "$GO" list -m -f '{{.Dir}}' sigs.k8s.io/gateway-api/conformance)
  [ -d "$src/echo-basic" ] || { echo "images.sh: $src has no echo-basic" >&2; exit 1; }
  rm -rf "$W"
  cp -r "$src/echo-basic" "$W"
  chmod -R u+w "$W"
  mv -f "$W/.go.mod" "$W/go.mod"
  mv -f "$W/.go.sum" "$W/go.sum"
  (
    cd "$W"
    GOWORK=off GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0 \
      "$GO" build -trimpath -ldflags "-buildid= -s -w" -o "$WORK/echo-basic.bin" .
  )
  for ref in "${need[@]}"; do
    wrap -o "$DIR/gateway-api-echo-basic-${ref##*:}.tar" -name "$ref" -entrypoint /echo-basic -user 65532 \
      "$WORK/echo-basic.bin:/echo-basic"
  done
fi

# ---------------------------------------------------------------- CoreDNS (the base manifests' DNS server)
OUT=$DIR/gateway-api-coredns.tar
if ! fresh "$OUT"; then
  W=$WORK/coredns
  mkdir -p "$W/out"
  CGO_ENABLED=0 GOBIN=$W/out GOFLAGS="-mod=mod -buildvcs=false" GOWORK=off \
    "$GO" install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION"
  wrap -o "$OUT" -name "$COREDNS_IMAGE" -entrypoint /coredns "$W/out/coredns:/coredns"
fi
