package cmd

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apiextfake "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset/fake"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"

	"github.com/sinewmesh/sinew/cli/check"
	"github.com/sinewmesh/sinew/cli/cmdenv"
	goldenfile "github.com/sinewmesh/sinew/internal/golden"
	"github.com/sinewmesh/sinew/internal/names"
	"github.com/sinewmesh/sinew/internal/version"
)

// testVersion is the version the tests run as, so that golden files do not depend on build flags.
const testVersion = "v0.0.0-test"

func TestMain(m *testing.M) {
	version.Version = testVersion
	os.Exit(m.Run())
}

// fixture reads testdata/<name>; ca.crt is the trust anchors of package cli's install fixtures.
func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// cluster is a fake cluster for a test.
type cluster struct {
	kube *fake.Clientset
	ext  *apiextfake.Clientset
}

func newCluster(objs ...runtime.Object) *cluster {
	return &cluster{kube: fake.NewSimpleClientset(objs...), ext: apiextfake.NewSimpleClientset()}
}

// installed is a fake cluster holding what viz install reads of a control plane installed in namespace sinew: its
// values (trust domain and cluster domain, cluster.local when empty) and its trust anchors (testdata/ca.crt). Package
// cli's TestVizInstallOverInstalledControlPlane checks the same output over a real `sinew install`.
func installed(t testing.TB, trustDomain, clusterDomain string) *cluster {
	t.Helper()
	values := map[string]any{"clusterDomain": names.DefaultClusterDomain, "identity": map[string]any{"trustDomain": names.DefaultTrustDomain}}
	if trustDomain != "" {
		values["identity"] = map[string]any{"trustDomain": trustDomain}
	}
	if clusterDomain != "" {
		values["clusterDomain"] = clusterDomain
	}
	vb, err := yaml.Marshal(values)
	if err != nil {
		t.Fatal(err)
	}
	ns := names.ControlPlaneNamespace
	return newCluster(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: names.ConfigMap}, Data: map[string]string{"values": string(vb)}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: names.TrustRootsConfigMap},
			Data: map[string]string{names.TrustRootsKey: string(fixture(t, "ca.crt"))}},
	)
}

// testEnv runs commands against c (nil: no cluster reachable), with an empty environment.
func testEnv(t testing.TB, c *cluster) *cmdenv.Env {
	return &cmdenv.Env{
		Stdin: strings.NewReader(""), Getenv: func(string) string { return "" }, ControlPlaneNS: cmdenv.DefaultNamespace,
		Kube: func() (*check.Clients, error) {
			if c == nil {
				return nil, fmt.Errorf("no cluster in this test")
			}
			return &check.Clients{Kube: c.kube, APIExt: c.ext}, nil
		},
	}
}

type result struct {
	code           int
	stdout, stderr string
}

// run runs `sinew viz args...` as package cli's Main does: a failure is one "Error:" line, unless it was reported
// already (cmdenv.ErrSilent).
func run(t testing.TB, env *cmdenv.Env, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	env.Stdout, env.Stderr = &out, &errb
	root := &cobra.Command{Use: "sinew", SilenceUsage: true, SilenceErrors: true}
	root.SetOut(&out)
	root.SetErr(&errb)
	root.AddCommand(NewCmd(env))
	root.SetArgs(append([]string{"viz"}, args...))
	code := 0
	if err := root.ExecuteContext(context.Background()); err != nil {
		if err != cmdenv.ErrSilent {
			fmt.Fprintln(&errb, "Error:", err)
		}
		code = 1
	}
	return result{code, out.String(), errb.String()}
}

func mustRun(t testing.TB, env *cmdenv.Env, args ...string) string {
	t.Helper()
	r := run(t, env, args...)
	if r.code != 0 {
		t.Fatalf("sinew viz %s: exit %d\n%s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}

// goldenYAML compares a YAML stream with testdata/install/<name> document by document (go test -update rewrites
// the file).
func goldenYAML(t *testing.T, name, got string) {
	t.Helper()
	goldenfile.CheckYAML(t, filepath.Join("testdata", "install", name), got)
}

// decodeAll decodes every object strictly into its Kubernetes type: a field the type does not have, or a value of
// the wrong type, fails.
func decodeAll(t *testing.T, stream string) []runtime.Object {
	t.Helper()
	s := runtime.NewScheme()
	if err := scheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	dec := serializer.NewCodecFactory(s, serializer.EnableStrict).UniversalDeserializer()
	var objs []runtime.Object
	for i, d := range goldenfile.SplitYAML(stream) {
		obj, gvk, err := dec.Decode([]byte(d), nil, nil)
		if err != nil {
			t.Fatalf("document %d does not decode into its type: %v\n%s", i+1, err, d)
		}
		if gvk.Kind == "" {
			t.Fatalf("document %d has no kind", i+1)
		}
		objs = append(objs, obj)
	}
	return objs
}
