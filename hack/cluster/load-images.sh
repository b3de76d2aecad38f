#!/usr/bin/env bash
# load-images.sh — import image tarballs (default: bin/images/*.tar from `make images`) into the local cluster's
# containerd, namespace k8s.io, where the kubelet finds them; pods then run them with imagePullPolicy IfNotPresent
# (or Never) without any registry. Re-importing a rebuilt image moves its tag to the new image.
#   sudo hack/cluster/load-images.sh [DIR-OR-TAR...]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
[ "$(id -u)" = 0 ] || { echo "load-images.sh: run as root (containerd's socket is root's)" >&2; exit 1; }
[ -S /run/containerd/containerd.sock ] || { echo "load-images.sh: containerd is not running: start the cluster with hack/cluster/up.sh" >&2; exit 1; }
[ $# -gt 0 ] || set -- "$HERE/../../bin/images"
n=0
for a in "$@"; do
  if [ -d "$a" ]; then files=("$a"/*.tar); else files=("$a"); fi
  for f in "${files[@]}"; do
    [ -f "$f" ] || { echo "load-images.sh: no image tarball at $f (run make images)" >&2; exit 1; }
    ctr -n k8s.io images import "$f" | sed 's/^/  /'
    n=$((n + 1))
  done
done
echo "imported $n image(s) into containerd (namespace k8s.io)"
