#!/usr/bin/env bash
# Regenerates the Go code of the proxy <-> control-plane contract from api/proto. Plugins are pinned by go.mod
# tool directives; protoc comes from Debian's protobuf-compiler.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v protoc >/dev/null || { echo "protoc not found: apt-get install -y protobuf-compiler" >&2; exit 1; }
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/protoc-gen-go" google.golang.org/protobuf/cmd/protoc-gen-go
go build -o "$bin/protoc-gen-go-grpc" google.golang.org/grpc/cmd/protoc-gen-go-grpc
find api -name '*.pb.go' -delete
PATH="$bin:$PATH" protoc -I api/proto \
  --go_out=. --go_opt=module=github.com/sinewmesh/sinew \
  --go-grpc_out=. --go-grpc_opt=module=github.com/sinewmesh/sinew \
  $(find api/proto -name '*.proto' | sort)
