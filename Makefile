# sinew — developer entry points. `make demo` runs the local mesh; `make test` is what CI runs.
GO ?= go
BIN := bin
BINARIES := sinew sinew-proxy sinew-controller sinew-init sinew-viz emojivoto
# The build's version: internal/version.Version unless given. Binaries and images get the same one, so a CLI
# installs the images it was built with.
VERSION ?= $(shell sed -n 's/^var Version = "\(.*\)"$$/\1/p' internal/version/version.go)
VERSION_LDFLAGS := -X github.com/sinewmesh/sinew/internal/version.Version=$(VERSION)
# Build tags of every binary we ship. grpcnotrace leaves out grpc's golang.org/x/net/trace (and with it html/template
# and text/template), which nothing here turns on: 2.2 MB less binary, and less of it mapped by every sidecar.
GO_TAGS := grpcnotrace
IMAGES := sinew-proxy sinew-controller sinew-init sinew-viz emojivoto
CLUSTER_WORKDIR ?= /tmp/sinew-cluster
# The local cluster's Prometheus (it has no internet to pull prom/prometheus): Debian's binary in an image of ours.
PROMETHEUS_IMAGE ?= ghcr.io/sinewmesh/prometheus-debian:$(shell dpkg-query -W -f='$${Version}' prometheus 2>/dev/null | tr '+~:' '___')

.PHONY: all build gateway-api-crds gen gen-check test test-race fuzz bench bench-full demo clean lint images cluster-up cluster-down cluster-load e2e ingress-images conformance-images conformance

all: build

build: gateway-api-crds
	@mkdir -p $(BIN)
	$(GO) build -tags $(GO_TAGS) -ldflags "$(VERSION_LDFLAGS)" -o $(BIN)/ $(addprefix ./cmd/,$(BINARIES))

# The Gateway API standard CRDs of go.mod's sigs.k8s.io/gateway-api, copied from the module cache into the
# sinew-crds chart (which the CLI embeds) for `sinew install --crds`. Upstream's files: gitignored, never committed.
gateway-api-crds:
	$(GO) run ./hack/gatewayapi -out charts/sinew-crds/gateway-api

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

# Static checks (.golangci.yml: errcheck, staticcheck, revive, gosec, bodyclose, govet, unused, ineffassign), with
# the e2e-tagged files included. golangci-lint is pinned as a go.mod tool, so this needs nothing installed.
lint:
	$(GO) tool golangci-lint run ./...

# Short fuzzing pass over every fuzz target (the committed corpus always runs as part of `make test`).
fuzz:
	./hack/fuzz.sh 20s

bench: build
	$(GO) run ./bench/cmd/sinew-bench -quick -out bench/RESULTS.md

bench-full: build
	$(GO) run ./bench/cmd/sinew-bench -out bench/RESULTS.md

# The local mesh on loopback (no Kubernetes, no root): emojivoto with a proxy per process. Ctrl-C stops it.
# DEMO_FLAGS passes flags through, e.g. make demo DEMO_FLAGS="--port-base 18000 --no-traffic".
demo: build
	$(BIN)/sinew demo $(DEMO_FLAGS)

# Image tarballs bin/images/<name>.tar (ghcr.io/sinewmesh/<name>:$(VERSION)) from static binaries; no Docker needed.
images: gateway-api-crds
	@mkdir -p $(BIN)/static $(BIN)/images
	CGO_ENABLED=0 $(GO) build -tags $(GO_TAGS) -trimpath -ldflags "-s -w $(VERSION_LDFLAGS)" -o $(BIN)/static/ $(addprefix ./cmd/,$(IMAGES))
	$(GO) run ./hack/images mesh -version $(VERSION) -bin $(BIN)/static -out $(BIN)/images $(IMAGES)
	@# a test fixture of the e2e suite: the file server that serves a JWKS in the cluster
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o $(BIN)/static/sinew-e2e-fileserver ./test/e2e/fileserver
	$(GO) run ./hack/images mesh -version $(VERSION) -bin $(BIN)/static -out $(BIN)/images sinew-e2e-fileserver
	$(GO) run ./hack/images prometheus -name $(PROMETHEUS_IMAGE) -o $(BIN)/images/prometheus.tar

# A real single-node Kubernetes cluster on this machine (root; see docs/operations/local-cluster.md).
cluster-up:
	WORKDIR=$(CLUSTER_WORKDIR) ./hack/cluster/up.sh

cluster-down:
	WORKDIR=$(CLUSTER_WORKDIR) ./hack/cluster/down.sh

# Import bin/images/*.tar into the cluster's containerd.
cluster-load: images
	./hack/cluster/load-images.sh $(BIN)/images

# End-to-end: the user's journey on the local cluster (brings it up, or reuses it, and leaves it running).
e2e: build images ingress-images
	WORKDIR=$(CLUSTER_WORKDIR) ./hack/cluster/up.sh
	./hack/cluster/load-images.sh $(BIN)/images
	KUBECONFIG=$(CLUSTER_WORKDIR)/etc/kubeconfig/admin.conf SINEW_E2E_BIN=$(abspath $(BIN)) SINEW_E2E_VERSION=$(VERSION) \
	  SINEW_E2E_PROMETHEUS_IMAGE=$(PROMETHEUS_IMAGE) \
	  $(GO) test -tags e2e -count=1 -v -timeout 40m ./test/e2e
	SINEW_E2E_KUBECONFIG=$(CLUSTER_WORKDIR)/etc/kubeconfig/admin.conf $(GO) test -tags e2e -count=1 -timeout 10m \
	  -run 'TestE2E|TestCRDValidationOnAPIServer' ./cmd/sinew-controller ./controlplane/internal/injector ./cli

# The ingress controller that e2e meshes (Traefik, pinned in hack/ingress/versions.env), built from source into
# $(BIN)/images/traefik.tar, where e2e loads it from; skipped while the tarball is newer than the pins.
ingress-images:
	GO=$(GO) ./hack/ingress/images.sh $(BIN)/images/traefik.tar

# The Gateway API conformance suite's images (the mesh tests' echo, Istio's; the gateway tests' echo-basic and CoreDNS;
# pinned in hack/conformance/versions.env), built from source into $(BIN)/images under the references the suite's
# manifests use.
conformance-images:
	GO=$(GO) ./hack/conformance/images.sh $(BIN)/images

# Gateway API conformance on the local cluster (brings it up, or reuses it, and leaves it running): the mesh profiles
# MESH-HTTP and MESH-GRPC with every mesh feature, and the gateway profiles GATEWAY-HTTP and GATEWAY-GRPC with the
# GatewayClass sinew and the features it claims. Writes conformance/reports/<Gateway API version>/sinew-report.yaml
# (mesh) and sinew-gateway-report.yaml (gateway); fails when a test fails. CONFORMANCE_ARGS passes the suite's flags,
# e.g. CONFORMANCE_ARGS="-run-test=MeshBasic" (docs/reference/conformance.md).
conformance: build images conformance-images
	WORKDIR=$(CLUSTER_WORKDIR) ./hack/cluster/up.sh
	./hack/cluster/load-images.sh $(BIN)/images
	KUBECONFIG=$(CLUSTER_WORKDIR)/etc/kubeconfig/admin.conf SINEW_BIN=$(abspath $(BIN)) SINEW_VERSION=$(VERSION) GO=$(GO) \
	  ./hack/conformance/run.sh $(if $(CONFORMANCE_ARGS),-args $(CONFORMANCE_ARGS))

clean:
	rm -rf $(BIN)
