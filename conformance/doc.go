// Package conformance runs the Gateway API conformance suite (go.mod's sigs.k8s.io/gateway-api/conformance) against
// sinew on a real cluster: the mesh profiles MESH-HTTP and MESH-GRPC (TestMeshConformance) and the gateway profiles
// GATEWAY-HTTP and GATEWAY-GRPC with the GatewayClass sinew (TestGatewayConformance), and keeps the suite's reports
// under reports/<Gateway API version>/. The harness carries the build tag conformance, so `go test ./...` does not
// run it; `make conformance` builds everything, starts the local cluster, installs sinew and runs it
// (docs/reference/conformance.md). It holds no mesh logic and nothing imports it.
package conformance
