package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/sinewmesh/sinew/cli/check"
	"github.com/sinewmesh/sinew/cli/cmdenv"
	"github.com/sinewmesh/sinew/internal/names"
	"github.com/sinewmesh/sinew/internal/version"
)

// vizUpQuery counts the proxies Prometheus scrapes with the sinew-proxy job.
const vizUpQuery = `up{job="sinew-proxy"}`

func newCheckCmd(env *cmdenv.Env) *cobra.Command {
	var (
		wait   time.Duration
		output string
	)
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Check the viz extension: its namespace, pods, API and Prometheus",
		Long: `Check the viz extension and print each check's result like sinew check does:
✔ passed, × failed, ‼ warning. A failed check prints why and where its fix is explained. Checks of things that
become true on their own (pods starting, the first scrapes) are retried until --wait runs out.`,
		Example: `  sinew viz check
  sinew viz check --wait 3m -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ce := &check.Env{
				Clients:       env.KubeClients,
				Namespace:     env.ControlPlaneNS,
				ClientVersion: version.Version,
				Now:           env.Now,
			}
			vc := &vizChecker{namespace: vizExtNamespace, apiGet: forwardedAPIGet(env)}
			return cmdenv.RunChecks(cmd, env, ce, []check.Category{check.KubernetesAPI(), vc.category()}, wait, output)
		},
	}
	cmd.Flags().DurationVar(&wait, "wait", 5*time.Minute, "how long checks that can become true (pods starting, first scrapes) may keep failing")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	return cmd
}

// vizChecker holds what the viz checks find out for the ones after them.
type vizChecker struct {
	namespace string
	// direct fetches a Prometheus URL that is not a Service of the cluster (nil: net/http with a timeout).
	direct func(ctx context.Context, u string) ([]byte, error)
	// apiGet fetches a path of the sinew-viz API the way the viz commands reach it (a port-forward to the
	// Service), and says how it got there.
	apiGet func(ctx context.Context, path string) (where string, body []byte, err error)
}

// forwardedAPIGet reaches the sinew-viz API like the viz commands do: through a port-forward to its Service. (The
// API server's pod proxy would not do: the API refuses the Host header it sends.)
func forwardedAPIGet(env *cmdenv.Env) func(ctx context.Context, path string) (string, []byte, error) {
	return func(ctx context.Context, path string) (string, []byte, error) {
		f, err := forwardViz(ctx, env, "127.0.0.1", 0)
		if err != nil {
			return "a port-forward", nil, err
		}
		defer func() { _ = f.Close() }()
		where := fmt.Sprintf("a port-forward to pod %s port %s", f.Pod, vizExtAPIPort)
		body, err := vizHTTPGet(ctx, "http://127.0.0.1:"+strconv.Itoa(f.Local)+path)
		return where, body, err
	}
}

// category is the sinew-viz category of `sinew viz check` (hints: docs/operations/check.md#sinew-viz).
func (v *vizChecker) category() check.Category {
	return check.Category{ID: "sinew-viz", Checks: []check.Check{
		{
			ID: "viz-ns-exists", Description: "sinew-viz namespace exists", Severity: check.Fatal,
			Run: func(ctx context.Context, env *check.Env) error {
				_, err := env.Kube.CoreV1().Namespaces().Get(ctx, v.namespace, metav1.GetOptions{})
				if apierrors.IsNotFound(err) {
					return fmt.Errorf("the namespace %q does not exist: install the extension with `sinew viz install | kubectl apply -f -`", v.namespace)
				}
				return err
			},
		},
		{
			ID: "viz-pods-ready", Description: "viz pods are ready", Severity: check.Error, Retry: true,
			Run: func(ctx context.Context, env *check.Env) error {
				deps, err := v.deployments(ctx, env)
				if err != nil {
					return err
				}
				var problems []string
				for _, d := range deps {
					pods, err := vizPodsOf(ctx, env, &d)
					if err != nil {
						return err
					}
					want := int32(1)
					if d.Spec.Replicas != nil {
						want = *d.Spec.Replicas
					}
					var ready int32
					var notReady []string
					for _, p := range pods {
						if check.PodReady(&p) {
							ready++
						} else {
							notReady = append(notReady, p.Name+" "+check.NotReadyReason(&p))
						}
					}
					switch {
					case len(pods) == 0:
						problems = append(problems, fmt.Sprintf("deployment %s has no pod (kubectl -n %s describe deploy %s)", d.Name, v.namespace, d.Name))
					case ready < want:
						problems = append(problems, fmt.Sprintf("deployment %s: %d of %d pods ready; not ready: %s", d.Name, ready, want, strings.Join(notReady, ", ")))
					}
				}
				if len(problems) > 0 {
					return errors.New(strings.Join(problems, "\n"))
				}
				return nil
			},
		},
		{
			ID: "viz-api-ready", Description: "the sinew-viz API answers /ready", Severity: check.Error, Retry: true,
			Run: func(ctx context.Context, env *check.Env) error {
				if _, err := v.readyVizPod(ctx, env); err != nil {
					return err
				}
				where, body, err := v.apiGet(ctx, "/ready")
				if err != nil {
					return fmt.Errorf("GET /ready from sinew-viz's API (%s): %v %s", where, err, vizClipBody(body))
				}
				return nil
			},
		},
		{
			ID: "viz-prometheus-reachable", Description: "Prometheus answers queries", Severity: check.Error, Retry: true,
			Run: func(ctx context.Context, env *check.Env) error {
				_, err := v.queryUp(ctx, env)
				return err
			},
		},
		{
			ID: "viz-prometheus-scrapes", Description: "Prometheus scrapes the proxies", Severity: check.Error, Retry: true,
			Run: func(ctx context.Context, env *check.Env) error {
				meshed, err := vizMeshedPods(ctx, env, v.namespace)
				if err != nil {
					return err
				}
				if len(meshed) == 0 {
					return check.ErrSkip // nothing to scrape yet
				}
				up, err := v.queryUp(ctx, env)
				if err != nil {
					return err
				}
				if len(up.targets) == 0 {
					return fmt.Errorf("Prometheus at %s has no %s series although %d pods are meshed (%s): its scrape configuration lacks the sinew-proxy job of docs/observability/viz.md, or it cannot list pods", up.url, vizUpQuery, len(meshed), check.ClipList(meshed, 3))
				}
				if up.upCount == 0 {
					return fmt.Errorf("Prometheus at %s cannot scrape any of the %d proxy targets it knows (every %s is 0): can it reach the pods' port 4191?", up.url, len(up.targets), vizUpQuery)
				}
				return nil
			},
		},
	}}
}

// deployments are the extension's deployments; sinew-viz must be one of them.
func (v *vizChecker) deployments(ctx context.Context, env *check.Env) ([]appsv1.Deployment, error) {
	list, err := env.Kube.AppsV1().Deployments(v.namespace).List(ctx, metav1.ListOptions{LabelSelector: vizSelector})
	if err != nil {
		return nil, err
	}
	deps := list.Items
	sort.Slice(deps, func(i, j int) bool { return deps[i].Name < deps[j].Name })
	for _, d := range deps {
		if d.Name == vizExtDeployment {
			return deps, nil
		}
	}
	return nil, fmt.Errorf("no deployment %s in namespace %s: re-run `sinew viz install | kubectl apply -f -`", vizExtDeployment, v.namespace)
}

func (v *vizChecker) vizDeployment(ctx context.Context, env *check.Env) (*appsv1.Deployment, error) {
	d, err := env.Kube.AppsV1().Deployments(v.namespace).Get(ctx, vizExtDeployment, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("no deployment %s in namespace %s: re-run `sinew viz install | kubectl apply -f -`", vizExtDeployment, v.namespace)
	}
	return d, err
}

func (v *vizChecker) readyVizPod(ctx context.Context, env *check.Env) (string, error) {
	d, err := v.vizDeployment(ctx, env)
	if err != nil {
		return "", err
	}
	pods, err := vizPodsOf(ctx, env, d)
	if err != nil {
		return "", err
	}
	for _, p := range pods {
		if check.PodReady(&p) {
			return p.Name, nil
		}
	}
	return "", fmt.Errorf("no ready pod of deployment %s", vizExtDeployment)
}

// vizUpResult is what Prometheus said to vizUpQuery.
type vizUpResult struct {
	url     string
	targets []string // namespace/pod of each series
	upCount int      // series whose value is 1
}

// queryUp asks the Prometheus sinew-viz reads (its --prometheus-url) for vizUpQuery: through the API server's service
// proxy when the URL names a Service of the cluster, else directly.
func (v *vizChecker) queryUp(ctx context.Context, env *check.Env) (vizUpResult, error) {
	d, err := v.vizDeployment(ctx, env)
	if err != nil {
		return vizUpResult{}, err
	}
	promURL := vizPrometheusURL(d)
	if promURL == "" {
		return vizUpResult{}, fmt.Errorf("the deployment %s has no --prometheus-url argument: re-run `sinew viz install | kubectl apply -f -`", vizExtDeployment)
	}
	res := vizUpResult{url: promURL}
	u, err := url.Parse(promURL)
	if err != nil {
		return res, fmt.Errorf("sinew-viz's --prometheus-url %q: %w", promURL, err)
	}
	var body []byte
	if svc, ns, port, ok := vizClusterService(u); ok {
		path := strings.TrimSuffix(u.Path, "/") + "/api/v1/query"
		body, err = env.Kube.CoreV1().Services(ns).ProxyGet(u.Scheme, svc, port, path, map[string]string{"query": vizUpQuery}).DoRaw(ctx)
		if err != nil {
			return res, fmt.Errorf("Prometheus at %s (through the API server's service proxy) did not answer: %v %s", promURL, err, vizClipBody(body))
		}
	} else {
		q := *u
		q.Path = strings.TrimSuffix(u.Path, "/") + "/api/v1/query"
		q.RawQuery = url.Values{"query": {vizUpQuery}}.Encode()
		get := v.direct
		if get == nil {
			get = vizHTTPGet
		}
		if body, err = get(ctx, q.String()); err != nil {
			return res, fmt.Errorf("Prometheus at %s did not answer from here (%v %s); if only the cluster reaches it, check it from a pod", promURL, err, vizClipBody(body))
		}
	}
	var ans struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  []any             `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &ans); err != nil || ans.Status == "" {
		return res, fmt.Errorf("Prometheus at %s answered something that is not its query API: %s", promURL, vizClipBody(body))
	}
	if ans.Status != "success" {
		return res, fmt.Errorf("Prometheus at %s refused %s: %s", promURL, vizUpQuery, ans.Error)
	}
	for _, r := range ans.Data.Result {
		res.targets = append(res.targets, r.Metric["namespace"]+"/"+r.Metric["pod"])
		if len(r.Value) == 2 && r.Value[1] == "1" {
			res.upCount++
		}
	}
	return res, nil
}

// vizPrometheusURL reads the --prometheus-url argument of sinew-viz's container.
func vizPrometheusURL(d *appsv1.Deployment) string {
	for _, c := range d.Spec.Template.Spec.Containers {
		for _, a := range c.Args {
			if v, ok := strings.CutPrefix(a, "--prometheus-url="); ok {
				return v
			}
		}
	}
	return ""
}

// vizClusterService recognizes http://<svc>.<ns>.svc[.<domain>][:port] and returns the service, its namespace and
// port (default 80 or 443).
func vizClusterService(u *url.URL) (svc, ns, port string, ok bool) {
	parts := strings.Split(strings.TrimSuffix(u.Hostname(), "."), ".")
	if len(parts) < 3 || parts[2] != "svc" {
		return "", "", "", false
	}
	port = u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	return parts[0], parts[1], port, true
}

func vizHTTPGet(ctx context.Context, u string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return b, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return b, nil
}

// vizPodsOf lists the pods of a deployment that are not being deleted.
func vizPodsOf(ctx context.Context, env *check.Env, d *appsv1.Deployment) ([]corev1.Pod, error) {
	sel := labels.SelectorFromSet(d.Spec.Selector.MatchLabels).String()
	list, err := env.Kube.CoreV1().Pods(d.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, err
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// vizMeshedPods lists the running pods with a sinew proxy outside the extension's namespace.
func vizMeshedPods(ctx context.Context, env *check.Env, skipNS string) ([]string, error) {
	list, err := env.Kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range list.Items {
		if p.Namespace == skipNS || p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
			continue
		}
		for _, c := range append(append([]corev1.Container{}, p.Spec.InitContainers...), p.Spec.Containers...) {
			if c.Name == names.ProxyContainer {
				out = append(out, p.Namespace+"/"+p.Name)
				break
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

func vizClipBody(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
