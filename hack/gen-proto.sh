#!/usr/bin/env bash
# Regenerates the Go code of the proxy <-> control-plane contract (api/proto) and of the sample app's gRPC API
# (examples/emojivoto/proto). Plugins are pinned by go.mod
# tool directives; protoc comes from Debian's protobuf-compiler.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v protoc >/dev/null || { echo "protoc not found: apt-get install -y protobuf-compiler" >&2; exit 1; }
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/protoc-gen-go" google.golang.org/protobuf/cmd/protoc-gen-go
go build -o "$bin/protoc-gen-go-grpc" google.golang.org/grpc/cmd/protoc-gen-go-grpc
find api examples/emojivoto/gen -name '*.pb.go' -delete 2>/dev/null || true
for root in api/proto examples/emojivoto/proto; do
  PATH="$bin:$PATH" protoc -I "$root" \
    --go_out=. --go_opt=module=github.com/sinewmesh/sinew \
    --go-grpc_out=. --go-grpc_opt=module=github.com/sinewmesh/sinew \
    $(find "$root" -name '*.proto' | sort)
done
