#!/usr/bin/env bash
# images.sh — build the ingress controller that the e2e suite meshes (Traefik v3) from source, without Docker or a
# registry.
#
#   hack/ingress/images.sh [OUT.tar]        (default bin/images/traefik.tar)
#
# The local cluster cannot pull images. This copies the pinned Traefik module (versions.env; fetched through the Go
# module proxy into the module cache) into a throwaway directory under bin/, builds ./cmd/traefik there statically,
# and wraps it with hack/images into a tarball tagged $TRAEFIK_IMAGE. Nothing of Traefik's is committed.
#
# Two things the module zip lacks, made up in the copy:
#   - go.mod replaces github.com/traefik/traefik/dynamic/ext with ./pkg/config/dynamic/ext, a nested module and so
#     not in the zip (the proxy does not serve it either). Upstream it holds two empty extension structs that
#     dynamic.HTTP and dynamic.Router embed; we write the same empty types.
#   - webui embeds webui/static, which upstream fills with the built dashboard (Node). The zip has only a README
#     there, which is enough for go:embed; the dashboard is not served (we do not enable the API anyway).
#
# And some dependencies the Go module proxy refuses to serve ("403 This module version is not available"):
#   - github.com/containous/go-http-auth, Traefik's fork of github.com/abbot/go-http-auth (basicAuth and digestAuth
#     middlewares). We build against a copy of abbot/go-http-auth v0.4.0, which the proxy serves, plus the two
#     functions of the fork Traefik calls: CheckSecret (v0.4.0's own htpasswd comparison, exported) and
#     DigestAuth.RequireAuthStale (a plain RequireAuth: no stale=true hint to digest clients). Neither middleware is
#     part of what the e2e suite runs.
#   - the SDKs behind a few of lego's ACME DNS-01 providers (REFUSED_DNS_PROVIDERS below). We build against a copy
#     of lego with those providers left out of its generated registry: asking for one of them then fails with lego's
#     "unrecognized DNS provider". ACME is not used here at all.
#
# Skipped when OUT exists and is newer than versions.env and this script (FORCE=1 rebuilds).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=versions.env
. "$ROOT/hack/ingress/versions.env"
OUT=${1:-$ROOT/bin/images/traefik.tar}
GO=${GO:-go}
if [ -z "${FORCE:-}" ] && [ -f "$OUT" ] && [ "$OUT" -nt "$ROOT/hack/ingress/versions.env" ] && [ "$OUT" -nt "$0" ]; then
  echo "ingress images: $OUT is up to date ($TRAEFIK_IMAGE)"
  exit 0
fi
WORK=$ROOT/bin/ingress/traefik
SRC=$WORK/src
mkdir -p "$WORK/stage" "$(dirname "$OUT")"

# Fetch the module (its go.sum pins every dependency) and copy it somewhere writable: replace directives apply only
# in the main module, so Traefik must be the main module of the build, not a dependency of ours.
mod=github.com/traefik/traefik/v3
dir=$(cd "$WORK" && GOWORK=off GOFLAGS=-mod=mod "$GO" mod download -json "$mod@$TRAEFIK_VERSION" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -d "$dir" ] || { echo "images.sh: could not download $mod@$TRAEFIK_VERSION" >&2; exit 1; }
rm -rf "$SRC"
cp -r "$dir" "$SRC"
chmod -R u+w "$SRC"

mkdir -p "$SRC/pkg/config/dynamic/ext"
printf 'module github.com/traefik/traefik/dynamic/ext\n\ngo 1.24.0\n' >"$SRC/pkg/config/dynamic/ext/go.mod"
cat >"$SRC/pkg/config/dynamic/ext/ext.go" <<'GO'
// Package ext stands in for Traefik's nested extension module, which the module zip leaves out (hack/ingress).
package ext

// HTTP extends dynamic.HTTP; empty in open-source Traefik.
type HTTP struct{}

// Router extends dynamic.Router; empty in open-source Traefik.
type Router struct{}
GO

REFUSED_DNS_PROVIDERS='edgedns|huaweicloud|oraclecloud|sakuracloud|ucloud|yandexcloud'
(
  cd "$SRC"
  export GOWORK=off GOFLAGS="-mod=mod -buildvcs=false"
  lego=github.com/go-acme/lego/v5
  lego_version=$("$GO" list -m -f '{{.Version}}' "$lego")
  lego_dir=$("$GO" mod download -json "$lego@$lego_version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  rm -rf "$WORK/lego"
  cp -r "$lego_dir" "$WORK/lego"
  chmod -R u+w "$WORK/lego"
  reg=$WORK/lego/providers/dns/zz_gen_dns_providers.go
  sed -i -E "\\#\"$lego/providers/dns/($REFUSED_DNS_PROVIDERS)\"#d" "$reg"
  # each case of the registry's switch is two lines: the case, then `return <pkg>.NewDNSProvider()`
  sed -i -E "/^\tcase .*:\$/{N;/\n\t\treturn ($REFUSED_DNS_PROVIDERS)\.NewDNSProvider\(\)\$/d}" "$reg"
  if grep -Eq "[^a-z0-9]($REFUSED_DNS_PROVIDERS)\." "$reg"; then
    echo "images.sh: could not cut the refused DNS providers out of $reg" >&2
    exit 1
  fi
  auth=github.com/abbot/go-http-auth
  auth_dir=$("$GO" mod download -json "$auth@v0.4.0" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  rm -rf "$WORK/go-http-auth"
  cp -r "$auth_dir" "$WORK/go-http-auth"
  chmod -R u+w "$WORK/go-http-auth"
  printf 'module %s\n\ngo 1.21\n' "$auth" >"$WORK/go-http-auth/go.mod"
  cat >"$WORK/go-http-auth/fork_compat.go" <<'GO'
package auth

import (
	"net/http"
	"strings"
)

// CheckSecret reports whether password matches an htpasswd secret, as BasicAuth.CheckAuth compares them
// (written for hack/ingress: Traefik's fork of this package exports it).
func CheckSecret(password, secret string) bool {
	compare := compareFuncs[0].compare
	for _, c := range compareFuncs[1:] {
		if strings.HasPrefix(secret, c.prefix) {
			compare = c.compare
			break
		}
	}
	return compare([]byte(secret), []byte(password)) == nil
}

// RequireAuthStale asks for authentication again, like RequireAuth (the fork also marks the nonce stale).
func (a *DigestAuth) RequireAuthStale(w http.ResponseWriter, r *http.Request) { a.RequireAuth(w, r) }
GO
  "$GO" mod edit -replace "$lego=../lego" -replace "$auth=../go-http-auth"
  CGO_ENABLED=0 "$GO" build -trimpath \
    -ldflags "-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=$TRAEFIK_VERSION" \
    -o "$WORK/stage/traefik" ./cmd/traefik
)
# Traefik's own image runs as root by default; ours runs as nobody (the manifests listen on unprivileged ports).
"$GO" -C "$ROOT" run ./hack/images wrap -o "$OUT" -name "$TRAEFIK_IMAGE" -entrypoint /traefik -user 65534 \
  "$WORK/stage/traefik:/traefik"
