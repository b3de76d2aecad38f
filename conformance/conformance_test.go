//go:build conformance

package conformance

// What the pinned suite (sigs.k8s.io/gateway-api/conformance v1.6.3) runs for a mesh:
//
//   - tests: tests/mesh/*.go (meshtests.MeshConformanceTests, 22 tests), each with its routes in tests/mesh/*.yaml;
//     every request is made from inside the mesh: the suite execs `client <url>` in the echo-v1 pod of
//     gateway-conformance-mesh (or of gateway-conformance-mesh-consumer) and reads the echo server's answer.
//   - workloads: mesh/manifests.yaml, namespaces gateway-conformance-mesh and gateway-conformance-mesh-consumer
//     with Deployments echo-v1 and echo-v2 and Services echo, echo-v1, echo-v2 (http 80→8080, http-alt 8080,
//     https 443→8443, tcp 9090, grpc 7070), all running registry.k8s.io/gateway-api/echo-advanced:v1.5.1.
//   - that image is gateway-api's docker/Dockerfile.echo-advanced, `FROM gcr.io/istio-release/app:1.21.2`: Istio
//     1.21.2's echo app, pkg/test/echo/cmd/server (entrypoint) and pkg/test/echo/cmd/client, Istio commit
//     ed90e14d3473bc3fe54f98298eb16664002d14d1 (Go pseudo-version v0.0.0-20240418224740-ed90e14d3473).
//     hack/conformance/images.sh builds it from that source under the same reference (pins in
//     hack/conformance/versions.env); the cluster pulls nothing.
//
// The suite's namespaces get sinew.dev/inject=enabled through the suite's NamespaceAnnotations, so both the
// client and the server side of every request are meshed.

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	gwconformance "sigs.k8s.io/gateway-api/conformance"
	confv1 "sigs.k8s.io/gateway-api/conformance/apis/v1"
	meshtests "sigs.k8s.io/gateway-api/conformance/tests/mesh"
	"sigs.k8s.io/gateway-api/conformance/utils/suite"
	"sigs.k8s.io/gateway-api/pkg/features"
	"sigs.k8s.io/yaml"

	"github.com/sinewmesh/sinew/internal/names"
	"github.com/sinewmesh/sinew/internal/version"
)

// TestMeshConformance runs every mesh test of the pinned suite with every mesh feature claimed, so that no test
// is left out as "not supported": a test sinew cannot pass fails, and `make conformance` with it. The suite's
// own flags (after -args) still apply: -run-test, -skip-tests, -debug, -cleanup-base-resources, and
// -supported-features / -conformance-profiles replace the defaults below when given.
func TestMeshConformance(t *testing.T) {
	opts := gwconformance.DefaultOptions(t)
	if !runsHere(t, opts, meshtests.MeshConformanceTests) {
		return
	}
	checkImages(t, "mesh/manifests.yaml", "SINEW_CONFORMANCE_ECHO_IMAGE", "ECHO_IMAGE")
	opts.ConformanceProfiles = ownProfiles(t, opts.ConformanceProfiles, []suite.ConformanceProfileName{
		suite.MeshHTTPConformanceProfileName, suite.MeshGRPCConformanceProfileName,
	})
	if len(opts.SupportedFeatures) == 0 && !opts.EnableAllSupportedFeatures {
		opts.SupportedFeatures = meshFeatures()
	}
	meshedAndNamed(t, &opts)
	t.Logf("profiles %v, features %v", opts.ConformanceProfiles, opts.SupportedFeatures)

	s, err := suite.NewConformanceTestSuite(opts)
	if err != nil {
		t.Fatalf("conformance suite: %v", err)
	}
	t.Cleanup(func() { writeReport(t, s, opts.ReportOutputPath, "sinew-report.yaml") })
	s.Setup(t, meshtests.MeshConformanceTests)
	if err := s.Run(t, meshtests.MeshConformanceTests); err != nil {
		t.Fatal(err)
	}
}

// meshFeatures is every feature a mesh test of the pinned suite needs: the mesh profiles' core and extended
// features and the HTTPRoute/GRPCRoute features the mesh tests also name (response header modification, parent
// ref ports, redirect status codes…), so that every mesh test runs. Gateway features are left out: sinew has no
// Gateway, and claiming one would make the suite set up its Gateway tests.
func meshFeatures() []features.FeatureName {
	set := features.SetsToNamesSet(features.MeshCoreFeatures, features.MeshExtendedFeatures)
	for _, p := range []suite.ConformanceProfile{suite.MeshHTTPConformanceProfile, suite.MeshGRPCConformanceProfile} {
		set.Insert(p.CoreFeatures.UnsortedList()...)
		set.Insert(p.ExtendedFeatures.UnsortedList()...)
	}
	for _, tc := range meshtests.MeshConformanceTests {
		set.Insert(tc.Features...)
	}
	set.Delete(features.SupportGateway)
	out := set.UnsortedList()
	slices.Sort(out)
	return out
}

// meshedAndNamed sets what every profile's run shares: the suite's namespaces are meshed (the injector gives the
// backends sidecars, as in production), and the report names sinew unless the suite's flags named something.
func meshedAndNamed(t *testing.T, opts *suite.ConformanceOptions) {
	t.Helper()
	if opts.NamespaceAnnotations == nil {
		opts.NamespaceAnnotations = map[string]string{}
	}
	opts.NamespaceAnnotations[names.InjectAnnotation] = names.InjectEnabled
	if opts.Implementation.Organization == "" {
		opts.Implementation = implementation()
	}
	if err := opts.Implementation.Validate(); err != nil {
		t.Fatalf("implementation details: %v", err)
	}
}

func implementation() confv1.Implementation {
	v := os.Getenv("SINEW_CONFORMANCE_VERSION")
	if v == "" {
		v = version.Version
	}
	return confv1.Implementation{
		Organization: "sinewmesh",
		Project:      "sinew",
		URL:          "https://github.com/sinewmesh/sinew",
		Version:      v,
		Contact:      []string{"https://github.com/sinewmesh/sinew/issues"},
	}
}

// checkImages fails early when the images the cluster was given (hack/conformance/versions.env, passed by
// hack/conformance/run.sh in env, comma separated) are not the ones the suite's manifest runs: the pods would
// wait for a pull that can never happen here. key is the versions.env key named in the message.
func checkImages(t *testing.T, manifest, env, key string) {
	t.Helper()
	v := os.Getenv(env)
	if v == "" {
		t.Logf("%s is not set: not checking the images of %s", env, manifest)
		return
	}
	want := strings.Split(v, ",")
	b, err := fs.ReadFile(&gwconformance.Manifests, manifest)
	if err != nil {
		t.Fatal(err)
	}
	var refs []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if ref, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "image:"); ok {
			refs = append(refs, strings.TrimSpace(ref))
		}
	}
	if len(refs) == 0 {
		t.Fatalf("the suite's %s names no image", manifest)
	}
	for _, ref := range refs {
		if !slices.Contains(want, ref) {
			t.Fatalf("the suite's %s runs %s, hack/conformance/versions.env builds %v: update %s "+
				"(docs/reference/conformance.md, upgrading the suite)", manifest, ref, want, key)
		}
	}
}

// runsHere says whether this test function has anything to run: with the suite's -run-test naming a test of the
// other kind (mesh or gateway), it has not, and skips.
func runsHere(t *testing.T, opts suite.ConformanceOptions, tests []suite.ConformanceTest) bool {
	t.Helper()
	if opts.RunTest == "" || slices.ContainsFunc(tests, func(c suite.ConformanceTest) bool { return c.ShortName == opts.RunTest }) {
		return true
	}
	t.Skipf("-run-test=%s is not one of this run's tests", opts.RunTest)
	return false
}

// ownProfiles is the profiles of this run among those -conformance-profiles names (all of own without it); a
// run none of whose profiles was asked for skips.
func ownProfiles(t *testing.T, asked, own []suite.ConformanceProfileName) []suite.ConformanceProfileName {
	t.Helper()
	if len(asked) == 0 {
		return own
	}
	var out []suite.ConformanceProfileName
	for _, p := range asked {
		if slices.Contains(own, p) {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		t.Skipf("-conformance-profiles=%v names none of %v", asked, own)
	}
	return out
}

// writeReport writes the suite's ConformanceReport, by default to reports/<Gateway API version of the installed
// CRDs>/<name> next to this file (upstream's layout), and logs a one-line summary per profile.
func writeReport(t *testing.T, s *suite.ConformanceTestSuite, path, name string) {
	t.Helper()
	report, err := s.Report()
	if err != nil {
		t.Errorf("conformance report: %v", err)
		return
	}
	if path == "" {
		v := report.GatewayAPIVersion
		if v == "" || strings.Contains(v, "UNDEFINED") || strings.ContainsAny(v, `/\`) {
			t.Errorf("conformance report: the cluster's Gateway API CRDs have no single bundle version (%q): "+
				"pass -args -report-output=FILE", v)
			return
		}
		path = filepath.Join("reports", v, name)
	}
	// The suite lists the profiles in map order; sorted, a report changes only when a result does.
	slices.SortFunc(report.ProfileReports, func(a, b confv1.ProfileReport) int { return strings.Compare(a.Name, b.Name) })
	b, err := yaml.Marshal(report)
	if err != nil {
		t.Errorf("conformance report: %v", err)
		return
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Errorf("conformance report: %v", err)
		return
	}
	if err := os.WriteFile(path, b, 0o644); err != nil { //nolint:gosec // a committed report, world-readable
		t.Errorf("conformance report: %v", err)
		return
	}
	for _, p := range report.ProfileReports {
		line := fmt.Sprintf("%s: %s, core %s (%d passed, %d failed, %d skipped)", p.Name, p.Summary, p.Core.Result,
			p.Core.Passed, p.Core.Failed, p.Core.Skipped)
		if p.Extended != nil {
			line += fmt.Sprintf(", extended %s (%d passed, %d failed, %d skipped)", p.Extended.Result,
				p.Extended.Passed, p.Extended.Failed, p.Extended.Skipped)
		}
		t.Log(line)
	}
	t.Logf("report written to %s", path)
}
