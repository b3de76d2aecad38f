#!/usr/bin/env bash
# up.sh — bring up a real single-node Kubernetes cluster on this (Debian bookworm) machine for sinew's e2e tests:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy, containerd, bridge CNI,
# CoreDNS. No Docker engine and no image registry: Kubernetes and CoreDNS are compiled from the Go module proxy,
# the rest comes from Debian packages, and images are tarballs imported into containerd.
#
#   sudo hack/cluster/up.sh          # prints the kubeconfig path as its last line
#   sudo hack/cluster/down.sh        # stops everything by recorded PID and undoes the host changes
#
# Environment:
#   WORKDIR   cluster state, logs, PKI (default /tmp/sinew-cluster); every start is a fresh cluster
#   CACHE     compiled binaries that survive (default /var/cache/sinew-cluster): a warm start takes about a minute
#   COREDNS=0 skip CoreDNS (no service DNS names)
#
# If the cluster is already up, up.sh says so and prints the kubeconfig path. If it is half up (some daemon died),
# it runs down.sh first. Root is required (network setup, containerd, kubelet).
#
# Network rules: every server binds to 127.0.0.1 or to 10.244.0.1, the address of the bridge cni0 that this script
# creates; pod traffic never crosses to or from the default-route interface (FORWARD drops), the service CIDR is
# routed onto cni0, and pods get no upstream DNS (CoreDNS answers cluster names only).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
WORKDIR=${WORKDIR:-/tmp/sinew-cluster}
CACHE=${CACHE:-/var/cache/sinew-cluster}
K8S=${K8S:-v1.32.13}                        # k8s.io/kubernetes
STG=${STG:-v0.32.13}                        # the matching k8s.io/* staging modules
COREDNS_VER=${COREDNS_VER:-v1.11.4}
COREDNS=${COREDNS:-1}
NODE=sinew-node
NODE_IP=10.244.0.1                          # gateway of the bridge cni0; API server and kubelet bind here
POD_CIDR=10.244.0.0/24
SVC_CIDR=10.96.0.0/16
DNS_IP=10.96.0.10
PAUSE_IMAGE=localhost/sinew-cluster/pause:1
COREDNS_IMAGE=localhost/sinew-cluster/coredns:$COREDNS_VER

CB=$CACHE/bin
L=$WORKDIR/logs P=$WORKDIR/pki E=$WORKDIR/etc D=$WORKDIR/data S=$WORKDIR/state K=$WORKDIR/etc/kubeconfig
I=$WORKDIR/images M=$WORKDIR/manifests
export KUBECONFIG=$K/admin.conf
export PATH=$CB:$PATH:/usr/local/go/bin:/usr/sbin:/sbin GOTOOLCHAIN=local

[ "$(id -u)" = 0 ] || { echo "up.sh: run as root (it configures networking, containerd and the kubelet)" >&2; exit 1; }
mkdir -p "$CB" "$CACHE/build" "$L" "$P" "$E/cni/net.d" "$E/manifests" "$K" "$D" "$S" "$I" "$M"

# one up.sh/down.sh at a time (a second caller waits; down.sh run from here inherits the lock)
if [ -z "${SINEW_CLUSTER_LOCKED:-}" ]; then
  exec 9> "$WORKDIR/.lock"
  flock -w 900 9 || { echo "up.sh: another up.sh or down.sh has held $WORKDIR/.lock for 15 minutes" >&2; exit 1; }
  export SINEW_CLUSTER_LOCKED=1
fi

T0=$(date +%s.%N)
T=$WORKDIR/timings.txt
stamp() { date +%s.%N; }
took() { printf '%-44s %7.1f s\n' "$1" "$(echo "$(stamp) - $2" | bc)" | tee -a "$T" >&2; }
log() { echo "up.sh: $*" >&2; }
daemons="etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy"

# ---------------------------------------------------------------- 0. already up?
if [ -s "$WORKDIR/pids" ]; then
  alive=0 dead=""
  for n in $daemons; do
    p=$(awk -v n="$n" '$1==n {print $2}' "$WORKDIR/pids" | tail -1)
    if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then alive=$((alive + 1)); else dead="$dead $n"; fi
  done
  if [ -z "$dead" ] && kubectl get --raw /readyz >/dev/null 2>&1; then
    log "cluster already up (workdir $WORKDIR)"
    echo "$KUBECONFIG"
    exit 0
  fi
  if [ "$alive" -gt 0 ]; then
    log "cluster half up (not running:$dead): running down.sh first"
    WORKDIR=$WORKDIR CACHE=$CACHE "$HERE/down.sh" >&2
  fi
fi
if grep -qE " ($D|/run/containerd)/" /proc/mounts || ip link show cni0 >/dev/null 2>&1; then
  log "leftovers of an earlier cluster (mounts or cni0): running down.sh first"
  WORKDIR=$WORKDIR CACHE=$CACHE "$HERE/down.sh" >&2
fi
: > "$WORKDIR/pids"
: > "$T"
rm -rf "$D/etcd" "$D/kubelet" "$D/containerd" "$D/containerd-opt" "$D/cni-ipam" "$D/pod-logs"

start() { # start NAME CMD... : a background daemon whose PID down.sh reads from $WORKDIR/pids
  local name=$1; shift
  nohup "$@" > "$L/$name.log" 2>&1 < /dev/null 9>&- &   # 9: the lock, not for the daemons
  echo "$name $!" >> "$WORKDIR/pids"
}
wait_for() { # wait_for DESC TIMEOUT_S CMD... : poll every 0.5 s until CMD succeeds
  local desc=$1 to=$2; shift 2; local t0; t0=$(date +%s)
  until "$@" >/dev/null 2>&1; do
    if (( $(date +%s) - t0 > to )); then log "TIMEOUT after ${to}s waiting for $desc (logs in $L)"; return 1; fi
    sleep 0.5
  done
}

# ---------------------------------------------------------------- 1. Debian packages
t=$(stamp)
need=""
for pkg in etcd-server containerd runc containernetworking-plugins iptables conntrack bc openssl curl iproute2; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need="$need $pkg"
done
if [ -n "$need" ]; then
  log "installing Debian packages:$need"
  created_policy=0
  # there is no init system, but package scripts must never start etcd or containerd on their own
  if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; created_policy=1; fi
  apt-get -o DPkg::Lock::Timeout=600 update -q > "$L/apt-update.log" 2>&1
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends $need > "$L/apt-install.log" 2>&1
  [ $created_policy = 1 ] && rm -f /usr/sbin/policy-rc.d
fi
took "debian packages" "$t"

# ---------------------------------------------------------------- 2. Kubernetes and CoreDNS from the Go module proxy
# `go install k8s.io/kubernetes/cmd/x@v` refuses (the module has replace directives), so a scratch module requires
# k8s.io/kubernetes and pins every staging module with a replace line. The binaries stay in $CACHE.
t=$(stamp)
CMDS="kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy"
command -v kubectl >/dev/null || CMDS="$CMDS kubectl"
missing=0; for c in $CMDS; do [ -x "$CB/$c" ] || missing=1; done
if [ $missing = 1 ]; then
  log "compiling Kubernetes $K8S into $CB (about 6 minutes on 2 cores; log $L/build-k8s.log)"
  (
    cd "$CACHE/build"
    : > "$L/build-k8s.log"
    go mod download -json "k8s.io/kubernetes@$K8S" > "$L/k8s-download.json"
    KMOD=$(go env GOMODCACHE)/k8s.io/kubernetes@$K8S/go.mod
    repl=""
    for m in $(sed -n '/^replace (/,/^)/p' "$KMOD" | awk '/=>/{print $1}' | grep -v sample-); do
      # the proxy refuses some versions' zips (403 "module version is not available"): step back a patch
      p=${STG##*.}
      while ! (cd / && go mod download "$m@${STG%.*}.$p") >/dev/null 2>&1 && [ "$p" -gt 0 ]; do p=$((p - 1)); done
      [ "${STG%.*}.$p" != "$STG" ] && echo "note: $m $STG unavailable, using ${STG%.*}.$p" >> "$L/build-k8s.log"
      repl="$repl	$m => $m ${STG%.*}.$p
"
    done
    {
      echo "module sinewcluster/build"; echo; echo "go 1.23.0"; echo; echo "godebug default=go1.23"; echo
      echo "require k8s.io/kubernetes $K8S"; echo; echo "replace ("; printf '%s' "$repl"; echo ")"
    } > go.mod
    rm -f go.sum
    vp="" pk=""
    for c in $CMDS; do vp="$vp k8s.io/kubernetes/cmd/$c@$K8S"; pk="$pk k8s.io/kubernetes/cmd/$c"; done
    GOFLAGS=-mod=mod go get $vp >> "$L/build-k8s.log" 2>&1
    minor=$(echo "$K8S" | cut -d. -f2)
    LD="-s -w -X k8s.io/component-base/version.gitVersion=$K8S -X k8s.io/component-base/version.gitMajor=1"
    LD="$LD -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
    LD="$LD -X k8s.io/client-go/pkg/version.gitVersion=$K8S -X k8s.io/client-go/pkg/version.gitMajor=1"
    LD="$LD -X k8s.io/client-go/pkg/version.gitMinor=$minor"
    CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "$LD" -o "$CACHE/build/out/" $pk >> "$L/build-k8s.log" 2>&1
    mv "$CACHE/build/out/"* "$CB/"
  ) || { log "compiling Kubernetes failed; see $L/build-k8s.log"; tail -20 "$L/build-k8s.log" >&2; exit 1; }
fi
took "kubernetes $K8S binaries" "$t"
if [ "$COREDNS" = 1 ]; then
  t=$(stamp)
  if [ ! -x "$CB/coredns" ]; then
    log "compiling CoreDNS $COREDNS_VER (about 2 minutes)"
    CGO_ENABLED=0 GOBIN=$CACHE/build/out GOFLAGS=-mod=mod go install -trimpath -ldflags '-s -w' \
      "github.com/coredns/coredns@$COREDNS_VER" > "$L/build-coredns.log" 2>&1 \
      || { log "compiling CoreDNS failed; see $L/build-coredns.log"; tail -20 "$L/build-coredns.log" >&2; exit 1; }
    mv "$CACHE/build/out/coredns" "$CB/coredns"
  fi
  took "coredns $COREDNS_VER" "$t"
fi

# ---------------------------------------------------------------- 3. the cluster's own images (pause, CoreDNS)
t=$(stamp)
(
  cd "$REPO"
  CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$I/pause" ./hack/cluster/pause
  go build -o "$I/mkimage" ./hack/images
  "$I/mkimage" wrap -o "$I/pause.tar" -name "$PAUSE_IMAGE" -entrypoint /pause -user 65535 "$I/pause:/pause"
  if [ "$COREDNS" = 1 ]; then
    "$I/mkimage" wrap -o "$I/coredns.tar" -name "$COREDNS_IMAGE" -entrypoint /coredns "$CB/coredns:/coredns"
  fi
) > "$L/build-images.log" 2>&1 || { log "building the pause/CoreDNS images failed: $L/build-images.log"; cat "$L/build-images.log" >&2; exit 1; }
took "pause and coredns images" "$t"

# ---------------------------------------------------------------- 4. PKI (a CA of this cluster, 30-day certs) and kubeconfigs
t=$(stamp)
(
  cd "$P"
  rm -f ./*.crt ./*.key ./*.srl
  openssl genrsa -out ca.key 2048 2>/dev/null
  openssl req -x509 -new -nodes -key ca.key -sha256 -days 30 -subj "/CN=sinew-cluster-ca" -out ca.crt
  openssl genrsa -out sa.key 2048 2>/dev/null
  openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  mk() { # mk NAME CN ORG SAN EKU
    openssl genrsa -out "$1.key" 2048 2>/dev/null
    local subj="/CN=$2"; [ -n "$3" ] && subj="/O=$3/CN=$2"
    openssl req -new -key "$1.key" -subj "$subj" -out "$1.csr"
    { echo "basicConstraints=CA:FALSE"; echo "keyUsage=critical,digitalSignature,keyEncipherment"
      echo "extendedKeyUsage=$5"; if [ -n "$4" ]; then echo "subjectAltName=$4"; fi; } > "$1.ext"
    openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -sha256 -extfile "$1.ext" -out "$1.crt" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
  }
  mk apiserver kube-apiserver "" "IP:127.0.0.1,IP:$NODE_IP,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local" serverAuth
  mk apiserver-kubelet-client kube-apiserver-kubelet-client system:masters "" clientAuth
  mk admin admin system:masters "" clientAuth
  mk controller-manager system:kube-controller-manager "" "" clientAuth
  mk scheduler system:kube-scheduler "" "" clientAuth
  mk kube-proxy system:kube-proxy "" "" clientAuth
  mk kubelet "system:node:$NODE" system:nodes "" clientAuth
  mk kubelet-serving "system:node:$NODE" system:nodes "IP:$NODE_IP,IP:127.0.0.1,DNS:$NODE" serverAuth
  chmod 600 ./*.key
)
for n in admin controller-manager scheduler kube-proxy kubelet; do
  f=$K/$n.conf; rm -f "$f"
  kubectl config --kubeconfig="$f" set-cluster sinew-local --server="https://$NODE_IP:6443" --certificate-authority="$P/ca.crt" --embed-certs=true >/dev/null
  kubectl config --kubeconfig="$f" set-credentials "$n" --client-certificate="$P/$n.crt" --client-key="$P/$n.key" --embed-certs=true >/dev/null
  kubectl config --kubeconfig="$f" set-context sinew-local --cluster=sinew-local --user="$n" >/dev/null
  kubectl config --kubeconfig="$f" use-context sinew-local >/dev/null
done
chmod 644 "$K/admin.conf"   # other (non-root) users of this machine may run kubectl against the test cluster
took "pki and kubeconfigs" "$t"

# ---------------------------------------------------------------- 5. host network
# The bridge exists before the API server starts so that it can bind to (and advertise) the bridge's address:
# the `kubernetes` Service's endpoint must not be a loopback address, or pods could not reach the API.
t=$(stamp)
[ -f "$S/sysctl.orig" ] || sysctl -n kernel.panic kernel.panic_on_oops vm.overcommit_memory net.ipv4.ip_forward net.ipv4.conf.all.route_localnet > "$S/sysctl.orig"
# replies from a Service's pod to a pod on the same bridge must pass the host's conntrack to be un-NATed
if [ "$(cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null)" != 1 ]; then
  log "warning: net.bridge.bridge-nf-call-iptables is not 1 (br_netfilter): pod-to-ClusterIP traffic may fail"
fi
ip link add cni0 type bridge
ip addr add "$NODE_IP/24" dev cni0
ip link set cni0 up
ip route replace "$SVC_CIDR" dev cni0        # un-NATed ClusterIP traffic stays on the private bridge
DEF=$(ip route show default | awk '{print $5; exit}'); echo "$DEF" > "$S/default-if"
if [ -n "$DEF" ]; then                        # pod traffic never crosses to or from the outside interface
  iptables -C FORWARD -i cni0 -o "$DEF" -j DROP 2>/dev/null || iptables -I FORWARD 1 -i cni0 -o "$DEF" -j DROP
  iptables -C FORWARD -i "$DEF" -o cni0 -j DROP 2>/dev/null || iptables -I FORWARD 1 -i "$DEF" -o cni0 -j DROP
fi
cat > "$E/cni/net.d/10-sinew-local.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "sinew-local",
  "plugins": [
    {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "dataDir": "$D/cni-ipam",
              "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$NODE_IP"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
echo "nameserver 127.0.0.1" > "$E/resolv.conf"   # pods never get the host's resolver
took "host network" "$t"

# ---------------------------------------------------------------- 6. control plane
t=$(stamp)
mkdir -p "$D/etcd"
start etcd etcd --name sinew --data-dir "$D/etcd" \
  --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
  --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
  --initial-cluster sinew=http://127.0.0.1:2380 --listen-metrics-urls http://127.0.0.1:2381
wait_for etcd 30 curl -sf http://127.0.0.1:2379/health
start kube-apiserver "$CB/kube-apiserver" \
  --advertise-address=$NODE_IP --bind-address=$NODE_IP --secure-port=6443 \
  --etcd-servers=http://127.0.0.1:2379 --service-cluster-ip-range=$SVC_CIDR \
  --tls-cert-file="$P/apiserver.crt" --tls-private-key-file="$P/apiserver.key" --client-ca-file="$P/ca.crt" \
  --kubelet-client-certificate="$P/apiserver-kubelet-client.crt" --kubelet-client-key="$P/apiserver-kubelet-client.key" \
  --kubelet-preferred-address-types=InternalIP \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$P/sa.pub" --service-account-signing-key-file="$P/sa.key" \
  --api-audiences=https://kubernetes.default.svc.cluster.local \
  --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
  --allow-privileged=true --enable-aggregator-routing=true --profiling=false
wait_for kube-apiserver 90 kubectl get --raw /readyz
start kube-controller-manager "$CB/kube-controller-manager" --kubeconfig="$K/controller-manager.conf" \
  --authentication-kubeconfig="$K/controller-manager.conf" --authorization-kubeconfig="$K/controller-manager.conf" \
  --bind-address=127.0.0.1 --leader-elect=false \
  --service-account-private-key-file="$P/sa.key" --root-ca-file="$P/ca.crt" \
  --cluster-signing-cert-file="$P/ca.crt" --cluster-signing-key-file="$P/ca.key" \
  --use-service-account-credentials=true --allocate-node-cidrs=false --service-cluster-ip-range=$SVC_CIDR
start kube-scheduler "$CB/kube-scheduler" --kubeconfig="$K/scheduler.conf" \
  --authentication-kubeconfig="$K/scheduler.conf" --authorization-kubeconfig="$K/scheduler.conf" \
  --bind-address=127.0.0.1 --leader-elect=false
took "control plane (etcd, apiserver ready)" "$t"

# ---------------------------------------------------------------- 7. node: containerd, kubelet, kube-proxy
t=$(stamp)
cat > "$E/containerd.toml" <<EOF
version = 2
root = "$D/containerd"
state = "/run/containerd"
[grpc]
  address = "/run/containerd/containerd.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$D/containerd-opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # root here lacks CAP_SYS_RESOURCE: a negative oom_score_adj (the pause container asks for -998) would fail
  # every sandbox with "can't get final child's PID from pipe: EOF"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$E/cni/net.d"
EOF
start containerd containerd --config "$E/containerd.toml"
wait_for containerd 30 ctr version
for img in pause $( [ "$COREDNS" = 1 ] && echo coredns ); do
  ctr -n k8s.io images import "$I/$img.tar" >> "$L/ctr-import.log" 2>&1
done
# the mesh images from `make images`, if built (a fresh cluster starts with an empty image store)
if compgen -G "$REPO/bin/images/*.tar" >/dev/null; then
  for f in "$REPO"/bin/images/*.tar; do ctr -n k8s.io images import "$f" >> "$L/ctr-import.log" 2>&1; done
  log "imported $(ls "$REPO"/bin/images/*.tar | wc -l) image(s) from $REPO/bin/images"
fi
DNSLINE=""; [ "$COREDNS" = 1 ] && DNSLINE="clusterDNS: [\"$DNS_IP\"]"
cat > "$E/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $P/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $P/kubelet-serving.crt
tlsPrivateKeyFile: $P/kubelet-serving.key
cgroupDriver: cgroupfs
failSwapOn: false
staticPodPath: $E/manifests
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
resolvConf: $E/resolv.conf
clusterDomain: cluster.local
$DNSLINE
podLogsDir: $D/pod-logs
evictionHard: {memory.available: "100Mi", nodefs.available: "2%", imagefs.available: "2%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
maxPods: 110
EOF
mkdir -p "$D/kubelet" "$D/pod-logs"
# the kubelet sets kernel.panic, kernel.panic_on_oops and vm.overcommit_memory; down.sh restores them
start kubelet "$CB/kubelet" --config="$E/kubelet.yaml" --kubeconfig="$K/kubelet.conf" \
  --root-dir="$D/kubelet" --hostname-override=$NODE --node-ip=$NODE_IP
cat > "$E/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $K/kube-proxy.conf}
mode: iptables
clusterCIDR: $POD_CIDR
hostnameOverride: $NODE
bindAddress: $NODE_IP
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: ["$POD_CIDR"]
conntrack: {maxPerCore: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
start kube-proxy "$CB/kube-proxy" --config="$E/kube-proxy.yaml"
wait_for "node Ready" 120 sh -c "kubectl get node $NODE -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -qx True"
took "node Ready (containerd, kubelet, kube-proxy)" "$t"

# ---------------------------------------------------------------- 8. CoreDNS (cluster names only)
if [ "$COREDNS" = 1 ]; then
  t=$(stamp)
  cat > "$M/coredns.yaml" <<EOF
apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:coredns"}
rules:
- {apiGroups: [""], resources: [endpoints, services, pods, namespaces], verbs: [list, watch]}
- {apiGroups: [discovery.k8s.io], resources: [endpointslices], verbs: [list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}
subjects: [{kind: ServiceAccount, name: coredns, namespace: kube-system}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  # no "forward" plugin: nothing is ever sent to an upstream resolver
  Corefile: |
    .:53 {
        errors
        health :8080
        ready :8181
        kubernetes cluster.local in-addr.arpa ip6.arpa {
            pods insecure
            fallthrough in-addr.arpa ip6.arpa
        }
        cache 30
        loop
    }
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: coredns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  replicas: 1
  selector: {matchLabels: {k8s-app: kube-dns}}
  template:
    metadata: {labels: {k8s-app: kube-dns}}
    spec:
      serviceAccountName: coredns
      dnsPolicy: Default
      containers:
      - name: coredns
        image: $COREDNS_IMAGE
        imagePullPolicy: Never
        args: ["-conf", "/etc/coredns/Corefile"]
        ports: [{containerPort: 53, protocol: UDP, name: dns}, {containerPort: 53, protocol: TCP, name: dns-tcp}]
        readinessProbe: {httpGet: {path: /ready, port: 8181}, periodSeconds: 2}
        volumeMounts: [{name: config, mountPath: /etc/coredns, readOnly: true}]
      volumes: [{name: config, configMap: {name: coredns}}]
---
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  clusterIP: $DNS_IP
  selector: {k8s-app: kube-dns}
  ports: [{name: dns, port: 53, protocol: UDP}, {name: dns-tcp, port: 53, protocol: TCP}]
EOF
  kubectl apply -f "$M/coredns.yaml" > /dev/null
  kubectl -n kube-system rollout status deploy/coredns --timeout=120s >&2
  took "coredns ready" "$t"
fi

took "total" "$T0"
kubectl get nodes -o wide >&2
log "cluster up; use: export KUBECONFIG=$KUBECONFIG"
echo "$KUBECONFIG"
