//go:build conformance

package conformance

// What the pinned suite (sigs.k8s.io/gateway-api/conformance v1.6.3) runs for a Gateway implementation:
//
//   - tests: tests/*.go (tests.ConformanceTests, less the mesh tests it also holds), each with its Gateways and
//     routes in tests/*.yaml; every request is made by the test process itself, to the address in the Gateway's
//     status.addresses and the listener's port (kubernetes.WaitForGatewayAddress), so the node running `go test`
//     must reach that address.
//   - workloads: base/manifests.yaml, namespaces gateway-conformance-infra, -app-backend and -web-backend with the
//     backends (registry.k8s.io/gateway-api/echo-basic:v1.5.1, infra-backend-v3 :v1.6.0-dev.3), a CoreDNS
//     (registry.k8s.io/coredns/coredns:v1.12.2) and four Gateways of the class under test. Setup waits for all of
//     them to be ready and Programmed. hack/conformance/images.sh builds those images from source.
//
// sinew's gateway Services are LoadBalancer by default, and the local cluster has no load balancer: see
// loadBalancer.

import (
	"context"
	"slices"
	"testing"

	gwconformance "sigs.k8s.io/gateway-api/conformance"
	"sigs.k8s.io/gateway-api/conformance/tests"
	"sigs.k8s.io/gateway-api/conformance/utils/flags"
	"sigs.k8s.io/gateway-api/conformance/utils/suite"
	"sigs.k8s.io/gateway-api/pkg/features"

	"github.com/sinewmesh/sinew/internal/names"
)

// TestGatewayConformance runs the gateway tests of the pinned suite, profiles GATEWAY-HTTP and GATEWAY-GRPC, with
// the GatewayClass sinew and the features of gatewayFeatures claimed. As for the mesh, the suite's own flags
// (after -args) replace these defaults when given; -gateway-class keeps its meaning.
func TestGatewayConformance(t *testing.T) {
	opts := gwconformance.DefaultOptions(t)
	gatewayTests := slices.DeleteFunc(slices.Clone(tests.ConformanceTests), func(c suite.ConformanceTest) bool {
		return slices.Contains(c.Features, features.SupportMesh)
	})
	if !runsHere(t, opts, gatewayTests) {
		return
	}
	checkImages(t, "base/manifests.yaml", "SINEW_CONFORMANCE_BASE_IMAGES", "ECHO_BASIC_IMAGES and COREDNS_IMAGE")
	opts.ConformanceProfiles = ownProfiles(t, opts.ConformanceProfiles, []suite.ConformanceProfileName{
		suite.GatewayHTTPConformanceProfileName, suite.GatewayGRPCConformanceProfileName,
	})
	if opts.GatewayClassName == flags.DefaultGatewayClassName {
		opts.GatewayClassName = names.GatewayClass
	}
	if len(opts.SupportedFeatures) == 0 && !opts.EnableAllSupportedFeatures {
		opts.SupportedFeatures = gatewayFeatures()
	}
	// The backends are meshed: the gateway reaches them over mTLS with its own identity, as in production.
	meshedAndNamed(t, &opts)
	t.Logf("profiles %v, gateway class %s, features %v", opts.ConformanceProfiles, opts.GatewayClassName, opts.SupportedFeatures)

	ctx, cancel := context.WithCancel(context.Background())
	lbDone := make(chan struct{})
	go func() {
		defer close(lbDone)
		loadBalancer(ctx, t, opts.Clientset)
	}()
	// Registered before the suite's cleanups, so it runs after them: Gateways deleted at the end still had an
	// address while the suite waited on them.
	t.Cleanup(func() { cancel(); <-lbDone })

	s, err := suite.NewConformanceTestSuite(opts)
	if err != nil {
		t.Fatalf("conformance suite: %v", err)
	}
	t.Cleanup(func() { writeReport(t, s, opts.ReportOutputPath, "sinew-gateway-report.yaml") })
	s.Setup(t, gatewayTests)
	if err := s.Run(t, gatewayTests); err != nil {
		t.Fatal(err)
	}
}

// gatewayFeatures is what sinew's gateway claims: the core features of GATEWAY-HTTP and GATEWAY-GRPC and the
// extended features whose tests pass. Left out (docs/reference/conformance.md says more):
//
//   - GatewayHTTPSListenerDetectMisdirectedRequests: the gateway does not answer 421 to a request whose host
//     name belongs to another HTTPS listener than the connection's server name;
//   - HTTPRouteBackendProtocolH2C: a backend port's appProtocol kubernetes.io/h2c is not carried to the
//     gateway, which sends HTTP/1.1 to backends (the echo's h2c port answers 400);
//   - HTTPRouteRetry, HTTPRouteRetryBackendTimeout, HTTPRouteRetryConnectionError: HTTPRoute's retry field is in
//     the experimental channel's CRDs only, and sinew installs the standard channel: the API server drops the
//     field, so nothing is retried;
//   - GatewayStaticAddresses, GatewayAddressEmpty: spec.addresses is not supported (UnsupportedAddress);
//   - HTTPRouteCORS, BackendTLSPolicy*, GatewayFrontendClientCertificateValidation*, ListenerSet, TLSRoute,
//     TCPRoute, UDPRoute: not implemented.
func gatewayFeatures() []features.FeatureName {
	out := []features.FeatureName{
		// core
		features.SupportGateway,
		features.SupportReferenceGrant,
		features.SupportHTTPRoute,
		features.SupportGRPCRoute,

		// Gateway, extended
		features.SupportGatewayPort8080,
		features.SupportGatewayHTTPListenerIsolation,
		features.SupportGatewayInfrastructure,

		// HTTPRoute, extended
		features.SupportHTTPRouteDestinationPortMatching,
		features.SupportHTTPRouteBackendRequestHeaderModification,
		features.SupportHTTPRouteQueryParamMatching,
		features.SupportHTTPRouteMethodMatching,
		features.SupportHTTPRouteResponseHeaderModification,
		features.SupportHTTPRoutePortRedirect,
		features.SupportHTTPRouteSchemeRedirect,
		features.SupportHTTPRoutePathRedirect,
		features.SupportHTTPRouteHostRewrite,
		features.SupportHTTPRoutePathRewrite,
		features.SupportHTTPRouteRequestMirror,
		features.SupportHTTPRouteRequestMultipleMirrors,
		features.SupportHTTPRouteRequestPercentageMirror,
		features.SupportHTTPRouteRequestTimeout,
		features.SupportHTTPRouteBackendTimeout,
		features.SupportHTTPRouteParentRefPort,
		features.SupportHTTPRouteBackendProtocolWebSocket,
		features.SupportHTTPRouteNamedRouteRule,
		features.SupportHTTPRoute303RedirectStatusCode,
		features.SupportHTTPRoute307RedirectStatusCode,
		features.SupportHTTPRoute308RedirectStatusCode,

		// GRPCRoute, extended
		features.SupportGRPCRouteNamedRouteRule,
	}
	slices.Sort(out)
	return out
}
