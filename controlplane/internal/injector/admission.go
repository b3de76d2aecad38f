package injector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/sinewmesh/sinew/controlplane/inject"
	"github.com/sinewmesh/sinew/internal/names"
)

// Event reasons.
const (
	EventInjected        = "Injected"
	EventInjectionFailed = "InjectionFailed"
	// EventInjectionSkipped: the pod opted in but cannot be meshed (another mesh's sidecar); it runs without sinew.
	EventInjectionSkipped = "InjectionSkipped"
)

// maxWarning keeps an admission warning under what the API server passes on untruncated.
const maxWarning = 250

// Handler serves AdmissionReview v1 requests (POST, any path).
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(s.serveReview)
}

func (s *Server) serveReview(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	s.metrics.requests.Inc()
	defer func() { s.metrics.duration.Observe(time.Since(start).Seconds()) }()
	if r.Method != http.MethodPost {
		http.Error(w, "POST an AdmissionReview", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxReviewBytes+1))
	if err == nil && len(body) > maxReviewBytes {
		err = fmt.Errorf("more than %d bytes", maxReviewBytes)
	}
	var review admissionv1.AdmissionReview
	if err == nil {
		err = json.Unmarshal(body, &review)
	}
	if err == nil && review.Request == nil {
		err = errors.New("no request in the AdmissionReview")
	}
	if err != nil {
		// nothing to answer to: the API server applies the webhook's failurePolicy (Ignore lets the pod in)
		s.metrics.responses.WithLabelValues(resultFailed, failDecode).Inc()
		s.log.Error("undecodable admission review", "err", err, "remote", r.RemoteAddr)
		http.Error(w, "bad AdmissionReview: "+err.Error(), http.StatusBadRequest)
		return
	}
	resp := s.review(r.Context(), review.Request)
	resp.UID = review.Request.UID
	out := admissionv1.AdmissionReview{TypeMeta: review.TypeMeta, Response: resp}
	if out.APIVersion == "" {
		out.APIVersion, out.Kind = admissionv1.SchemeGroupVersion.String(), "AdmissionReview"
	}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(out); err != nil {
		s.log.Debug("writing the admission response", "err", err)
	}
}

var podResource = metav1.GroupVersionResource{Version: "v1", Resource: "pods"}

// review answers one request. It always allows the pod; the patch is there only when the proxy was injected.
func (s *Server) review(ctx context.Context, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	allow := &admissionv1.AdmissionResponse{Allowed: true}
	log := s.log.With("namespace", req.Namespace, "uid", string(req.UID))
	if req.Resource != podResource || req.SubResource != "" || req.Operation != admissionv1.Create {
		s.metrics.responses.WithLabelValues(resultNotApplicable, "").Inc()
		log.Warn("review of something other than a pod creation; allowed unchanged (check the webhook's rules)",
			"resource", req.Resource.String(), "subResource", req.SubResource, "operation", req.Operation)
		return allow
	}
	var pod corev1.Pod
	if err := json.Unmarshal(req.Object.Raw, &pod); err != nil {
		s.fail(req, nil, allow, failDecode, fmt.Errorf("the pod does not decode: %w", err))
		return allow
	}
	log = log.With("pod", podName(&pod))

	nsAnn, err := s.cache.namespaceAnnotations(ctx, req.Namespace)
	if err != nil {
		s.fail(req, &pod, allow, failNamespace, fmt.Errorf("reading the namespace's annotations: %w", err))
		return allow
	}
	cfg := s.cfg.Inject
	cfg.TrustAnchorsPEM = s.cache.anchors()
	in := inject.Input{Pod: &pod, Namespace: req.Namespace, NamespaceAnnotations: nsAnn, Owner: inject.OwnerOf(&pod)}
	in.ServerPorts, in.ServersKnown = s.servers.portsFor(req.Namespace, pod.Labels)

	// whether to inject does not depend on the workload's annotations (and most pods are not injected): decide
	// first, then read them
	res, err := inject.Inject(in, cfg)
	switch {
	case err == nil && res.Skipped == inject.SkipOtherMesh:
		// the pod asked for sinew but is in another mesh: say so where its owner looks, as for a failure
		s.metrics.responses.WithLabelValues(resultSkipped, string(res.Skipped)).Inc()
		log.Warn("the pod is created without a proxy", "reason", res.Skipped, "detail", res.Detail)
		s.tell(req, &pod, allow, EventInjectionSkipped, "the pod "+res.Detail)
		return allow
	case err == nil && res.Skipped != "":
		s.metrics.responses.WithLabelValues(resultSkipped, string(res.Skipped)).Inc()
		log.Debug("not injected", "reason", res.Skipped, "detail", res.Detail)
		return allow
	case cfg.TrustAnchorsPEM == "":
		s.fail(req, &pod, allow, failNoTrustAnchors, fmt.Errorf("no trust anchors: ConfigMap %s/%s (key %s) is missing or invalid",
			cfg.ControlPlaneNamespace, names.TrustRootsConfigMap, names.TrustRootsKey))
		return allow
	case err != nil:
		s.fail(req, &pod, allow, failInvalidConfig, err)
		return allow
	}
	if wl := s.workloadAnnotations(ctx, log, req.Namespace, &pod); hasConfig(wl) {
		in.WorkloadAnnotations = wl
		if res, err = inject.Inject(in, cfg); err != nil {
			s.fail(req, &pod, allow, failInvalidConfig, err)
			return allow
		}
	}
	patch, err := json.Marshal(res.Patch)
	if err != nil {
		s.fail(req, &pod, allow, failPatch, fmt.Errorf("encoding the patch: %w", err))
		return allow
	}
	pt := admissionv1.PatchTypeJSONPatch
	allow.Patch, allow.PatchType = patch, &pt
	s.metrics.responses.WithLabelValues(resultInjected, "").Inc()
	if in.Owner.Name != "" {
		log = log.With("owner", in.Owner.Kind+"/"+in.Owner.Name)
	}
	log.Info("injected the proxy")
	if !isDryRun(req) {
		s.events.Eventf(eventTarget(req.Namespace, &pod), corev1.EventTypeNormal, EventInjected,
			"sinew proxy injected into pod %s", podName(&pod))
	}
	return allow
}

// fail lets the pod through unmodified and tells everyone why: a warning for the client, an Event on the pod's
// owner (or namespace), a log line and a metric.
func (s *Server) fail(req *admissionv1.AdmissionRequest, pod *corev1.Pod, resp *admissionv1.AdmissionResponse, reason string, err error) {
	s.metrics.responses.WithLabelValues(resultFailed, reason).Inc()
	name := ""
	if pod != nil {
		name = podName(pod)
	}
	s.log.Error("the pod is created without a proxy", "namespace", req.Namespace, "pod", name, "reason", reason, "err", err)
	s.tell(req, pod, resp, EventInjectionFailed, err.Error())
}

// tell says why the pod goes without a proxy: a warning for the client and, unless it is a dry run, a Warning
// Event with the given reason on the pod's owner (or namespace).
func (s *Server) tell(req *admissionv1.AdmissionRequest, pod *corev1.Pod, resp *admissionv1.AdmissionResponse, eventReason, why string) {
	why = strings.ReplaceAll(why, "\n", "; ")
	msg := "sinew: the proxy was not injected: " + why
	if len(msg) > maxWarning {
		msg = msg[:maxWarning-3] + "..."
	}
	resp.Warnings = append(resp.Warnings, msg)
	if !isDryRun(req) {
		name := ""
		if pod != nil {
			name = podName(pod)
		}
		s.events.Eventf(eventTarget(req.Namespace, pod), corev1.EventTypeWarning, eventReason,
			"pod %s created without the sinew proxy: %s", orUnnamed(name), why)
	}
}

func hasConfig(annotations map[string]string) bool {
	for k := range annotations {
		if strings.HasPrefix(k, names.ConfigPrefix) {
			return true
		}
	}
	return false
}

func isDryRun(req *admissionv1.AdmissionRequest) bool { return req.DryRun != nil && *req.DryRun }

// eventTarget is the pod's controller (the object a person looks at with kubectl describe), else its namespace:
// the pod itself does not exist yet.
func eventTarget(ns string, pod *corev1.Pod) *corev1.ObjectReference {
	if pod != nil {
		for _, ref := range pod.OwnerReferences {
			if ref.Controller != nil && *ref.Controller {
				return &corev1.ObjectReference{APIVersion: ref.APIVersion, Kind: ref.Kind, Name: ref.Name, UID: ref.UID, Namespace: ns}
			}
		}
	}
	return &corev1.ObjectReference{APIVersion: "v1", Kind: "Namespace", Name: ns, Namespace: ns}
}

func podName(pod *corev1.Pod) string {
	if pod.Name != "" {
		return pod.Name
	}
	if pod.GenerateName != "" {
		return pod.GenerateName + "*"
	}
	return ""
}

func orUnnamed(s string) string {
	if s == "" {
		return "(unnamed)"
	}
	return s
}

// ownerResources maps the kinds that own pods directly to their resources.
var ownerResources = map[schema.GroupKind]string{
	{Group: "apps", Kind: "ReplicaSet"}:        "replicasets",
	{Group: "apps", Kind: "StatefulSet"}:       "statefulsets",
	{Group: "apps", Kind: "DaemonSet"}:         "daemonsets",
	{Group: "batch", Kind: "Job"}:              "jobs",
	{Group: "", Kind: "ReplicationController"}: "replicationcontrollers",
}

// workloadAnnotations reads the annotations of the pod's controller, best effort: without them the namespace's and
// the pod's still apply. A ReplicaSet carries its Deployment's annotations (the deployment controller copies them).
func (s *Server) workloadAnnotations(ctx context.Context, log *slog.Logger, ns string, pod *corev1.Pod) map[string]string {
	if s.cfg.Metadata == nil {
		return nil
	}
	for _, ref := range pod.OwnerReferences {
		if ref.Controller == nil || !*ref.Controller {
			continue
		}
		gv, err := schema.ParseGroupVersion(ref.APIVersion)
		if err != nil {
			return nil
		}
		res, ok := ownerResources[schema.GroupKind{Group: gv.Group, Kind: ref.Kind}]
		if !ok {
			return nil
		}
		ctx, cancel := context.WithTimeout(ctx, ownerLookupTimeout)
		defer cancel()
		m, err := s.cfg.Metadata.Resource(gv.WithResource(res)).Namespace(ns).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			log.Debug("could not read the workload's annotations; using the namespace's and the pod's", "owner", ref.Kind+"/"+ref.Name, "err", err)
			return nil
		}
		if ref.UID != "" && m.UID != types.UID("") && m.UID != ref.UID {
			return nil // a namesake, not the owner
		}
		return m.Annotations
	}
	return nil
}
