package charts

// VizValues are the values of the sinew-viz chart (its values.yaml documents each).
// TestVizValuesMatchValuesYAML keeps the two in step.
type VizValues struct {
	InstallNamespace        bool   `json:"installNamespace"`
	ControlPlaneNamespace   string `json:"controlPlaneNamespace"`
	ClusterDomain           string `json:"clusterDomain"`
	TrustDomain             string `json:"trustDomain"`
	IdentityTrustAnchorsPEM string `json:"identityTrustAnchorsPEM"`
	PrometheusURL           string `json:"prometheusUrl"`
	EnforcedHostRegex       string `json:"enforcedHostRegex"`

	Image            VizImage `json:"image"`
	ImagePullSecrets []any    `json:"imagePullSecrets"`

	LogLevel  string         `json:"logLevel"`
	LogFormat string         `json:"logFormat"`
	UID       int64          `json:"uid"`
	Resources map[string]any `json:"resources"`

	PodLabels      map[string]string `json:"podLabels"`
	PodAnnotations map[string]string `json:"podAnnotations"`
	NodeSelector   map[string]string `json:"nodeSelector"`
	Tolerations    []any             `json:"tolerations"`

	Prometheus VizPrometheus `json:"prometheus"`
}

// VizImage is the sinew-viz image: <registry>/<name>:<tag>.
type VizImage struct {
	Registry   string `json:"registry"`
	Name       string `json:"name"`
	Tag        string `json:"tag"`
	PullPolicy string `json:"pullPolicy"`
}

// VizPrometheus is the Prometheus the chart deploys unless prometheusUrl is set.
type VizPrometheus struct {
	Image          string         `json:"image"`
	PullPolicy     string         `json:"pullPolicy"`
	Retention      string         `json:"retention"`
	ScrapeInterval string         `json:"scrapeInterval"`
	Discovery      string         `json:"discovery"`
	HTTPSDURL      string         `json:"httpSDURL"`
	UID            int64          `json:"uid"`
	Resources      map[string]any `json:"resources"`
}

// DecodeVizValues decodes vals strictly (DecodeValues); vals must be complete (merged over DefaultValues(Viz)).
func DecodeVizValues(vals map[string]any) (*VizValues, error) {
	var v VizValues
	if err := DecodeValues(vals, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// Map is v as the map Helm renders.
func (v *VizValues) Map() (map[string]any, error) { return ValuesMap(v) }
