#!/usr/bin/env bash
# The local mesh on loopback, no Kubernetes, no root: the control plane in local mode, the hello app behind a
# sidecar, and a client-side sidecar whose local port leads to the app's service over mTLS. Ctrl-C stops all.
# (Issue #4 replaces this with `sinew demo` running emojivoto and the dashboard.)
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
for p in $((base)) $((base+1)) $((base+2)) $((base+3)) $((base+10)) $((base+11)) $((base+21)) $((base+22)) $((base+30)); do
  if (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then echo "port $p is taken; set PORT_BASE to another base" >&2; exit 1; fi
done
echo "building..."
go build -o bin/ ./cmd/sinew-controller ./cmd/sinew-proxy ./examples/hello
mkdir -p "$data/resources"
cat > "$data/resources/demo.yaml" <<YAML
apiVersion: sinew.dev/v1alpha1
kind: Workload
metadata: {name: hello, namespace: demo, labels: {app: hello}}
spec: {serviceAccount: hello, address: 127.0.0.1, meshPort: $((base+10)), ports: [{name: http, port: 8080}]}
---
apiVersion: sinew.dev/v1alpha1
kind: Service
metadata: {name: hello, namespace: demo}
spec: {selector: {app: hello}, ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: sinew.dev/v1alpha1
kind: Workload
metadata: {name: client, namespace: demo, labels: {app: client}}
spec: {serviceAccount: client, address: 127.0.0.1, meshPort: $((base+20)), ports: [{name: http, port: 8080}]}
YAML
bin/sinew-controller local --data-dir "$data/cp" --resource-dir "$data/resources" \
  --identity-addr 127.0.0.1:$base --destination-addr 127.0.0.1:$((base+1)) \
  --policy-addr 127.0.0.1:$((base+2)) --admin-addr 127.0.0.1:$((base+3)) 2>"$data/controller.log" &
pids+=($!)
until curl -sf "http://127.0.0.1:$((base+3))/ready" >/dev/null; do sleep 0.2; kill -0 "${pids[0]}" || { cat "$data/controller.log"; exit 1; }; done
bin/hello --addr 127.0.0.1:$((base+30)) 2>"$data/hello.log" &
pids+=($!)
common=(SINEW_PROXY_MODE=explicit SINEW_PROXY_LOG_FORMAT=text
  SINEW_PROXY_IDENTITY_SVC_ADDR=127.0.0.1:$base SINEW_PROXY_DESTINATION_SVC_ADDR=127.0.0.1:$((base+1))
  SINEW_PROXY_POLICY_SVC_ADDR=127.0.0.1:$((base+2)) SINEW_PROXY_IDENTITY_TRUST_ANCHORS_FILE="$data/cp/ca.crt")
env "${common[@]}" SINEW_PROXY_WORKLOAD=demo/hello \
  SINEW_PROXY_IDENTITY_LOCAL_NAME=spiffe://cluster.local/ns/demo/sa/hello \
  SINEW_PROXY_IDENTITY_TOKEN="$(bin/sinew-controller token --data-dir "$data/cp" --namespace demo --workload hello)" \
  SINEW_PROXY_INBOUND_LISTEN_ADDR=127.0.0.1:$((base+10)) SINEW_PROXY_ADMIN_LISTEN_ADDR=127.0.0.1:$((base+11)) \
  SINEW_PROXY_INBOUND_PORTS=8080=127.0.0.1:$((base+30)) bin/sinew-proxy 2>"$data/proxy-hello.log" &
pids+=($!)
env "${common[@]}" SINEW_PROXY_WORKLOAD=demo/client \
  SINEW_PROXY_IDENTITY_LOCAL_NAME=spiffe://cluster.local/ns/demo/sa/client \
  SINEW_PROXY_IDENTITY_TOKEN="$(bin/sinew-controller token --data-dir "$data/cp" --namespace demo --workload client)" \
  SINEW_PROXY_ADMIN_LISTEN_ADDR=127.0.0.1:$((base+21)) \
  SINEW_PROXY_OUTBOUND_PORTS=127.0.0.1:$((base+22))=hello.demo.svc.cluster.local:80 bin/sinew-proxy 2>"$data/proxy-client.log" &
pids+=($!)
for admin in $((base+11)) $((base+21)); do
  until curl -sf "http://127.0.0.1:$admin/ready" >/dev/null; do sleep 0.2; done
done
cat <<MSG

sinew local mesh is up (logs in $data).

  Call the hello service through the mesh (client sidecar -> mTLS -> hello's sidecar -> app):
    curl http://127.0.0.1:$((base+22))/
  Metrics of the client's sidecar (look for tls="true" and server_id):
    curl -s http://127.0.0.1:$((base+21))/metrics | grep -E '^(request|response)_total'
  What the client's sidecar knows about hello:
    curl -s http://127.0.0.1:$((base+21))/debug/config
  The control plane's model:
    curl -s http://127.0.0.1:$((base+3))/debug/model

Ctrl-C stops everything.
MSG
curl -s "http://127.0.0.1:$((base+22))/"
wait -n "${pids[@]}" || true
echo "a process exited; see the logs in $data" >&2
