package check

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The Gateway API's group and the annotations its CRDs carry (the same as the charts package's; check does not
// import charts).
const (
	gatewayAPIGroup         = "gateway.networking.k8s.io"
	gatewayAPIVersionAnnot  = "gateway.networking.k8s.io/bundle-version"
	gatewayAPIChannelAnnot  = "gateway.networking.k8s.io/channel"
	gatewayAPIRoutesMissing = "routes (HTTPRoute, GRPCRoute) cannot be used until they are"
)

// GatewayAPIRouteCRDs are the Gateway API CRDs sinew's routing reads.
var GatewayAPIRouteCRDs = []string{"httproutes." + gatewayAPIGroup, "grpcroutes." + gatewayAPIGroup}

// GatewayAPICRD is one installed Gateway API CRD.
type GatewayAPICRD struct {
	Name    string // httproutes.gateway.networking.k8s.io
	Kind    string // HTTPRoute
	Version string // bundle version, e.g. v1.6.3; "" when not annotated
	Channel string // standard or experimental; "" when not annotated
}

// GatewayAPICRDs picks the Gateway API's CRDs out of crds, sorted by name.
func GatewayAPICRDs(crds []apiextv1.CustomResourceDefinition) []GatewayAPICRD {
	var out []GatewayAPICRD
	for _, c := range crds {
		if c.Spec.Group != gatewayAPIGroup {
			continue
		}
		out = append(out, GatewayAPICRD{
			Name: c.Name, Kind: c.Spec.Names.Kind,
			Version: c.Annotations[gatewayAPIVersionAnnot], Channel: c.Annotations[gatewayAPIChannelAnnot],
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// CompareVersions compares two Gateway API bundle versions (v1.6.3, v1.3.0-rc.1): -1, 0 or 1, and false when
// either is not such a version. A pre-release is older than its release.
func CompareVersions(a, b string) (int, bool) {
	pa, ok1 := parseBundleVersion(a)
	pb, ok2 := parseBundleVersion(b)
	if !ok1 || !ok2 {
		return 0, false
	}
	for i := range 3 {
		if pa.n[i] != pb.n[i] {
			if pa.n[i] < pb.n[i] {
				return -1, true
			}
			return 1, true
		}
	}
	switch {
	case pa.pre == pb.pre:
		return 0, true
	case pa.pre == "":
		return 1, true
	case pb.pre == "":
		return -1, true
	case pa.pre < pb.pre:
		return -1, true
	}
	return 1, true
}

type semver struct {
	n   [3]int
	pre string
}

func parseBundleVersion(v string) (semver, bool) {
	var s semver
	rest, ok := strings.CutPrefix(v, "v")
	if !ok {
		return s, false
	}
	rest, s.pre, _ = strings.Cut(rest, "-")
	parts := strings.Split(rest, ".")
	if len(parts) != 3 {
		return s, false
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return s, false
		}
		s.n[i] = n
	}
	return s, true
}

// gatewayAPICheck reports the Gateway API CRDs found and their bundle versions. It warns, without failing the run,
// when the route CRDs are missing or older than the version this CLI installs: sinew works without routes.
func gatewayAPICheck() Check {
	return Check{
		ID: "gateway-api-crds", Severity: Warning,
		Description: "the Gateway API CRDs that routes need are installed",
		Run: func(ctx context.Context, env *Env) error {
			list, err := env.APIExt.ApiextensionsV1().CustomResourceDefinitions().List(ctx, metav1.ListOptions{})
			if err != nil {
				return err
			}
			found := GatewayAPICRDs(list.Items)
			byName := map[string]GatewayAPICRD{}
			for _, c := range found {
				byName[c.Name] = c
			}
			var missing, older []string
			for _, n := range GatewayAPIRouteCRDs {
				c, ok := byName[n]
				if !ok {
					missing = append(missing, n)
					continue
				}
				if env.GatewayAPIVersion == "" {
					continue
				}
				if cmp, ok := CompareVersions(c.Version, env.GatewayAPIVersion); !ok || cmp < 0 {
					v := c.Version
					if v == "" {
						v = "no bundle version"
					}
					older = append(older, fmt.Sprintf("%s (%s)", n, v))
				}
			}
			summary := summarizeGatewayAPI(found)
			fix := "install them with `sinew install --crds | kubectl apply -f -`"
			switch {
			case len(missing) > 0:
				msg := fmt.Sprintf("missing: %s; %s: %s", strings.Join(missing, ", "), gatewayAPIRoutesMissing, fix)
				if summary != "" {
					msg += "\nfound: " + summary
				}
				return fmt.Errorf("%s", msg)
			case len(older) > 0:
				return fmt.Errorf("older than %s: %s; routes using newer fields are rejected: upgrade them with `sinew install --crds | kubectl apply -f -`\nfound: %s",
					env.GatewayAPIVersion, strings.Join(older, ", "), summary)
			}
			return Note("found: " + summary)
		},
	}
}

// summarizeGatewayAPI lists the kinds found by bundle version: "v1.6.3 (standard): GRPCRoute, HTTPRoute".
func summarizeGatewayAPI(found []GatewayAPICRD) string {
	byVersion := map[string][]string{}
	var versions []string
	for _, c := range found {
		v := c.Version
		if v == "" {
			v = "no bundle version"
		}
		if c.Channel != "" {
			v += " (" + c.Channel + ")"
		}
		if _, ok := byVersion[v]; !ok {
			versions = append(versions, v)
		}
		byVersion[v] = append(byVersion[v], c.Kind)
	}
	sort.Strings(versions)
	parts := make([]string, 0, len(versions))
	for _, v := range versions {
		kinds := byVersion[v]
		sort.Strings(kinds)
		parts = append(parts, v+": "+strings.Join(kinds, ", "))
	}
	return strings.Join(parts, "; ")
}
