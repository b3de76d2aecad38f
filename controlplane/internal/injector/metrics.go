package injector

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sinewmesh/sinew/controlplane/internal/promreg"
)

// Failure reasons (label "reason" of result="failed").
const (
	failDecode          = "decode"           // the AdmissionReview or the pod did not decode
	failInvalidConfig   = "invalid-config"   // a bad config.sinew.dev/* or sinew.dev/inject value
	failNamespace       = "namespace-lookup" // the pod's namespace could not be read
	failNoTrustAnchors  = "no-trust-anchors" // the trust-roots ConfigMap is missing or invalid
	failPatch           = "patch"            // the patch did not encode
	resultInjected      = "injected"
	resultSkipped       = "skipped"
	resultFailed        = "failed"
	resultNotApplicable = "not-applicable" // not a pod CREATE (a misconfigured webhook)
)

type metrics struct {
	requests         prometheus.Counter
	responses        *prometheus.CounterVec
	duration         prometheus.Histogram
	trustRootUpdates *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	return &metrics{
		requests: promreg.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "proxy_inject_admission_requests_total",
			Help: "Admission reviews received by the proxy injector.",
		})),
		responses: promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "proxy_inject_admission_responses_total",
			Help: "Admission reviews answered, by result (injected, skipped, failed, not-applicable) and reason. " +
				"Failed reviews let the pod through unmodified.",
		}, []string{"result", "reason"})),
		duration: promreg.Register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "proxy_inject_admission_duration_seconds",
			Help:    "Time to answer an admission review.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		})),
		trustRootUpdates: promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "proxy_inject_trust_root_updates_total",
			Help: "Changes of the trust-roots ConfigMap seen, by outcome (ok, invalid).",
		}, []string{"outcome"})),
	}
}
