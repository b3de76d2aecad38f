# sinew — developer entry points. `make demo` runs the local mesh; `make test` is what CI runs.
GO ?= go
BIN := bin
BINARIES := sinew-proxy sinew-controller emojivoto

.PHONY: all build gen gen-check test test-race fuzz bench bench-full demo clean lint

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ $(addprefix ./cmd/,$(BINARIES))

# Regenerate the gRPC contract (api/) from api/proto.
gen:
	./hack/gen-proto.sh

# CI: the committed generated code must match what `make gen` produces.
gen-check: gen
	@git diff --exit-code -- api/ examples/emojivoto/gen/ || { echo "generated code is stale: run 'make gen' and commit" >&2; exit 1; }
	@test -z "$$(git status --porcelain -- api/ examples/emojivoto/gen/)" || { echo "make gen created files that are not committed" >&2; exit 1; }

test: build
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 12m ./...

# Short fuzzing pass over every fuzz target (the committed corpus always runs as part of `make test`).
fuzz:
	./hack/fuzz.sh 20s

bench: build
	$(GO) run ./bench/cmd/sinew-bench -quick -out bench/RESULTS.md

bench-full: build
	$(GO) run ./bench/cmd/sinew-bench -out bench/RESULTS.md

# The local mesh on loopback (no Kubernetes, no root). Ctrl-C stops it.
demo:
	./hack/demo.sh

clean:
	rm -rf $(BIN)
