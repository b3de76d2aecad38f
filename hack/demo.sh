#!/usr/bin/env bash
# The local mesh on loopback, no Kubernetes, no root: the control plane in local mode and the emojivoto sample
# app with a sidecar beside every process (emoji, voting, web, vote-bot). Ctrl-C stops everything.
# NO_TRAFFIC=1 leaves the vote-bot out; PORT_BASE moves every port. (Issue #4 turns this into `sinew demo`.)
set -euo pipefail
cd "$(dirname "$0")/.."
base=${PORT_BASE:-17000}
data=$(mktemp -d /tmp/sinew-demo.XXXXXX)
pids=()
cleanup() {
  trap - INT TERM EXIT
  echo; echo "stopping..."
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$data"
}
trap cleanup INT TERM EXIT
ports=(0 1 2 3 10 11 12 20 21 22 30 31 32 33 34 42 43)
for off in "${ports[@]}"; do
  p=$((base+off))
  if (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then echo "port $p is taken; set PORT_BASE to another base" >&2; exit 1; fi
done
echo "building..."
go build -o bin/ ./cmd/sinew-controller ./cmd/sinew-proxy ./cmd/emojivoto
export BIND_HOST=127.0.0.1 # the apps listen on loopback only
mkdir -p "$data/resources"
workload() { # name app meshPort
  printf 'apiVersion: sinew.dev/v1alpha1\nkind: Workload\nmetadata: {name: %s, namespace: emojivoto, labels: {app: %s}}\nspec: {serviceAccount: %s, address: 127.0.0.1, meshPort: %s, ports: [{name: grpc, port: 8080}]}\n---\n' "$1" "$2" "$1" "$3"
}
service() { # name port
  printf 'apiVersion: sinew.dev/v1alpha1\nkind: Service\nmetadata: {name: %s, namespace: emojivoto}\nspec: {selector: {app: %s}, ports: [{name: p, port: %s, targetPort: 8080}]}\n---\n' "$1" "$1" "$2"
}
{
  workload emoji emoji-svc $((base+11)); service emoji-svc 8080
  workload voting voting-svc $((base+21)); service voting-svc 8080
  workload web web-svc $((base+31)); service web-svc 80
  workload vote-bot vote-bot 0
} > "$data/resources/emojivoto.yaml"

bin/sinew-controller local --data-dir "$data/cp" --resource-dir "$data/resources" \
  --identity-addr 127.0.0.1:$base --destination-addr 127.0.0.1:$((base+1)) \
  --policy-addr 127.0.0.1:$((base+2)) --admin-addr 127.0.0.1:$((base+3)) 2>"$data/controller.log" &
pids+=($!)
until curl -sf "http://127.0.0.1:$((base+3))/ready" >/dev/null; do
  sleep 0.2; kill -0 "${pids[0]}" 2>/dev/null || { echo "control plane failed:"; cat "$data/controller.log"; exit 1; }
done

sidecar() { # workload admin-port extra-env...
  local wl=$1 admin=$2; shift 2
  env SINEW_PROXY_MODE=explicit SINEW_PROXY_LOG_FORMAT=text SINEW_PROXY_WORKLOAD=emojivoto/$wl \
    SINEW_PROXY_IDENTITY_SVC_ADDR=127.0.0.1:$base SINEW_PROXY_DESTINATION_SVC_ADDR=127.0.0.1:$((base+1)) \
    SINEW_PROXY_POLICY_SVC_ADDR=127.0.0.1:$((base+2)) SINEW_PROXY_IDENTITY_TRUST_ANCHORS_FILE="$data/cp/ca.crt" \
    SINEW_PROXY_IDENTITY_LOCAL_NAME=spiffe://cluster.local/ns/emojivoto/sa/$wl \
    SINEW_PROXY_IDENTITY_TOKEN="$(bin/sinew-controller token --data-dir "$data/cp" --namespace emojivoto --workload "$wl")" \
    SINEW_PROXY_ADMIN_LISTEN_ADDR=127.0.0.1:$admin "$@" bin/sinew-proxy 2>"$data/proxy-$wl.log" &
  pids+=($!)
}
inbound() { echo SINEW_PROXY_INBOUND_LISTEN_ADDR=127.0.0.1:$1 SINEW_PROXY_INBOUND_PORTS=8080=127.0.0.1:$2; }

bin/emojivoto emoji --port $((base+10)) 2>"$data/emoji.log" & pids+=($!)
bin/emojivoto voting --port $((base+20)) 2>"$data/voting.log" & pids+=($!)
bin/emojivoto web --port $((base+30)) --emoji-addr 127.0.0.1:$((base+33)) --voting-addr 127.0.0.1:$((base+34)) 2>"$data/web.log" & pids+=($!)
sidecar emoji $((base+12)) $(inbound $((base+11)) $((base+10)))
sidecar voting $((base+22)) $(inbound $((base+21)) $((base+20)))
sidecar web $((base+32)) $(inbound $((base+31)) $((base+30))) \
  SINEW_PROXY_OUTBOUND_PORTS=127.0.0.1:$((base+33))=emoji-svc.emojivoto.svc.cluster.local:8080,127.0.0.1:$((base+34))=voting-svc.emojivoto.svc.cluster.local:8080
admins=($((base+12)) $((base+22)) $((base+32)))
if [ -z "${NO_TRAFFIC:-}" ]; then
  sidecar vote-bot $((base+42)) SINEW_PROXY_OUTBOUND_PORTS=127.0.0.1:$((base+43))=web-svc.emojivoto.svc.cluster.local:80
  admins+=($((base+42)))
fi
for admin in "${admins[@]}"; do
  until curl -sf "http://127.0.0.1:$admin/ready" >/dev/null; do sleep 0.2; done
done
if [ -z "${NO_TRAFFIC:-}" ]; then
  bin/emojivoto vote-bot --web-host 127.0.0.1:$((base+43)) --rate 2 2>"$data/vote-bot.log" & pids+=($!)
fi
cat <<MSG

sinew local mesh is up: emojivoto with a sidecar beside every process (logs in $data).

  The app, through web's sidecar:   http://127.0.0.1:$((base+31))/
  Vote (the doughnut always fails): curl -i 'http://127.0.0.1:$((base+31))/api/vote?choice=:doughnut:'
  web's sidecar metrics (mTLS to emoji and voting; look for tls="true", server_id, grpc_status_code="2"):
    curl -s http://127.0.0.1:$((base+32))/metrics | grep '^response_total'
  What web's sidecar knows:         curl -s http://127.0.0.1:$((base+32))/debug/config
  The control plane's model:        curl -s http://127.0.0.1:$((base+3))/debug/model

Ctrl-C stops everything.
MSG
wait -n "${pids[@]}" || true
echo "a process exited; its log is in $data" >&2
