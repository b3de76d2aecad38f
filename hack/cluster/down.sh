#!/usr/bin/env bash
# down.sh — stop the cluster that up.sh started (only the PIDs it recorded in $WORKDIR/pids, plus the containers
# that containerd ran for it) and undo its host changes: the bridge cni0, the service route, the FORWARD guards,
# kube-proxy's and the CNI plugins' iptables chains, leftover mounts and pod cgroups, and the sysctls the kubelet
# changed.
#
#   sudo hack/cluster/down.sh            # keeps compiled binaries ($CACHE) and PKI/logs ($WORKDIR)
#   sudo PURGE=1 hack/cluster/down.sh    # also deletes $WORKDIR
set -u
WORKDIR=${WORKDIR:-/tmp/sinew-cluster}
CACHE=${CACHE:-/var/cache/sinew-cluster}
CB=$CACHE/bin D=$WORKDIR/data S=$WORKDIR/state
export KUBECONFIG=$WORKDIR/etc/kubeconfig/admin.conf PATH=$CB:$PATH:/usr/sbin:/sbin
PIDS=$WORKDIR/pids
[ "$(id -u)" = 0 ] || { echo "down.sh: run as root" >&2; exit 1; }

if [ -z "${SINEW_CLUSTER_LOCKED:-}" ] && [ -d "$WORKDIR" ]; then
  exec 9> "$WORKDIR/.lock"
  flock -w 900 9 || { echo "down.sh: another up.sh or down.sh has held $WORKDIR/.lock for 15 minutes" >&2; exit 1; }
fi

pid_of() { awk -v n="$1" '$1==n {print $2}' "$PIDS" 2>/dev/null | tail -1; }
alive() { local p; p=$(pid_of "$1"); [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }
stop() { # stop NAME: SIGTERM the recorded PID, SIGKILL after 15 s
  local p; p=$(pid_of "$1"); [ -n "$p" ] || return 0
  kill -0 "$p" 2>/dev/null || return 0
  kill "$p"
  for _ in $(seq 30); do kill -0 "$p" 2>/dev/null || { echo "stopped $1 ($p)"; return 0; }; sleep 0.5; done
  kill -9 "$p" 2>/dev/null; echo "killed $1 ($p)"
}
k8s_tasks() { ctr -n k8s.io tasks ls -q 2>/dev/null; }

# 1. let the kubelet tear pods down properly (CNI DEL, volume unmounts) while the control plane still runs
if alive kube-apiserver && alive kubelet; then
  kubectl delete mutatingwebhookconfiguration,validatingwebhookconfiguration --all --ignore-not-found >/dev/null 2>&1
  kubectl delete deploy,ds,sts,rs,job,cronjob --all -A --wait=false >/dev/null 2>&1
  kubectl delete pod --all -A --grace-period=1 --wait=false >/dev/null 2>&1
  for _ in $(seq 60); do
    [ -z "$(k8s_tasks)" ] && break
    sleep 1
  done
fi

# 2. node and control-plane daemons, by recorded PID
for n in kube-proxy kubelet kube-scheduler kube-controller-manager kube-apiserver; do stop "$n"; done

# 3. whatever containerd still runs for us: kill and delete its tasks (their shims then exit)
if alive containerd; then
  for id in $(k8s_tasks); do ctr -n k8s.io tasks kill -s SIGKILL "$id" >/dev/null 2>&1; done
  for _ in $(seq 20); do
    running=$(ctr -n k8s.io tasks ls 2>/dev/null | awk 'NR>1 && $3=="RUNNING"' | wc -l)
    [ "$running" = 0 ] && break
    sleep 0.5
  done
  for id in $(k8s_tasks); do ctr -n k8s.io tasks rm -f "$id" >/dev/null 2>&1; done
fi
stop containerd
stop etcd

# 4. host changes
[ -x "$CB/kube-proxy" ] && "$CB/kube-proxy" --cleanup >/dev/null 2>&1
# what --cleanup leaves: the kubelet's KUBE-FIREWALL / canary / hint chains (no other Kubernetes runs here)
for ipt in iptables ip6tables; do
  command -v $ipt >/dev/null || continue
  for t in mangle filter nat; do
    $ipt -t $t -S 2>/dev/null | grep -E '^-A (INPUT|OUTPUT|FORWARD|PREROUTING|POSTROUTING) .*-j KUBE-' | sed 's/^-A/-D/' |
      while read -r r; do $ipt -t $t $r 2>/dev/null; done
    for c in $($ipt -t $t -S 2>/dev/null | awk '/^-N KUBE-/{print $2}'); do $ipt -t $t -F "$c" 2>/dev/null; done
    for c in $($ipt -t $t -S 2>/dev/null | awk '/^-N KUBE-/{print $2}'); do $ipt -t $t -X "$c" 2>/dev/null; done
  done
done
DEF=$(cat "$S/default-if" 2>/dev/null)
if [ -n "$DEF" ] && command -v iptables >/dev/null; then
  iptables -D FORWARD -i cni0 -o "$DEF" -j DROP 2>/dev/null
  iptables -D FORWARD -i "$DEF" -o cni0 -j DROP 2>/dev/null
fi
# chains the bridge and portmap CNI plugins left (named CNI-*)
if command -v iptables >/dev/null; then
  for t in nat filter; do
    iptables -t $t -S 2>/dev/null | grep -E '^-A .*CNI-' | sed 's/^-A/-D/' | while read -r r; do iptables -t $t $r 2>/dev/null; done
    iptables -t $t -S 2>/dev/null | awk '/^-N CNI-/{print $2}' | while read -r c; do iptables -t $t -F "$c"; iptables -t $t -X "$c"; done 2>/dev/null
  done
fi
ip route del 10.96.0.0/16 dev cni0 2>/dev/null
for l in $(ip -o link show master cni0 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do ip link del "$l" 2>/dev/null; done
ip link del cni0 2>/dev/null
rmdir /var/lib/cni/results /var/lib/cni 2>/dev/null   # libcni's result cache, empty once pods are gone
for ns in /run/netns/cni-*; do [ -e "$ns" ] && { umount "$ns" 2>/dev/null; rm -f "$ns"; }; done
# mounts the kubelet and containerd left under our directories (deepest first)
for m in $(awk -v a="$WORKDIR/" -v b="/run/containerd/" 'index($2,a)==1 || index($2,b)==1 {print $2}' /proc/mounts | sort -r); do
  umount -l "$m" 2>/dev/null
done
# empty pod cgroups the kubelet created (cgroupfs driver; v1 hierarchies and the unified one)
for c in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
  [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null
done
if [ -f "$S/sysctl.orig" ]; then
  read -r -d '' p1 p2 p3 p4 p5 < "$S/sysctl.orig"
  sysctl -qw kernel.panic="$p1" kernel.panic_on_oops="$p2" vm.overcommit_memory="$p3" \
    net.ipv4.ip_forward="$p4" net.ipv4.conf.all.route_localnet="$p5"
  rm -f "$S/sysctl.orig"
fi
[ -f "$PIDS" ] && : > "$PIDS"
if [ "${PURGE:-0}" = 1 ]; then rm -rf "$WORKDIR"; echo "purged $WORKDIR"; fi
echo "down."
