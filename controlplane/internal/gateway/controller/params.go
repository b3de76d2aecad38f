package controller

import (
	"fmt"
	"maps"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// What a Gateway may say about its infrastructure. sinew reads no parameters objects: a Gateway's
// spec.infrastructure.annotations (or, for convenience, its own metadata.annotations; the infrastructure's win)
// carry these, and every spec.infrastructure label and annotation also goes on what is created for it.
const (
	// AnnReplicas is the number of gateway proxies (default 1).
	AnnReplicas = "sinew.dev/gateway-replicas"
	// AnnServiceType is the type of the gateway's Service: LoadBalancer (the default), NodePort or ClusterIP.
	AnnServiceType = "sinew.dev/gateway-service-type"
)

// Defaults of a Gateway's infrastructure.
const (
	DefaultReplicas    = 1
	DefaultServiceType = corev1.ServiceTypeLoadBalancer
)

// params are a Gateway's infrastructure settings.
type params struct {
	replicas    int32
	serviceType corev1.ServiceType
	// labels and annotations are spec.infrastructure's, for everything created.
	labels, annotations map[string]string
}

// gatewayParams reads a Gateway's infrastructure settings. The error is the Accepted condition's InvalidParameters
// message: a parametersRef (sinew reads none), or a bad annotation value.
func gatewayParams(gw *gatewayv1.Gateway) (params, error) {
	p := params{replicas: DefaultReplicas, serviceType: DefaultServiceType}
	settings := map[string]string{}
	for _, k := range []string{AnnReplicas, AnnServiceType} {
		if v, ok := gw.Annotations[k]; ok {
			settings[k] = v
		}
	}
	if infra := gw.Spec.Infrastructure; infra != nil {
		if ref := infra.ParametersRef; ref != nil {
			return p, fmt.Errorf("spec.infrastructure.parametersRef (%s %s): sinew reads no parameters objects; use the annotations %s and %s in spec.infrastructure.annotations",
				kindOf(string(ref.Group), string(ref.Kind)), ref.Name, AnnReplicas, AnnServiceType)
		}
		if len(infra.Labels) > 0 {
			p.labels = make(map[string]string, len(infra.Labels))
			for k, v := range infra.Labels {
				p.labels[string(k)] = string(v)
			}
		}
		if len(infra.Annotations) > 0 {
			p.annotations = make(map[string]string, len(infra.Annotations))
			for k, v := range infra.Annotations {
				p.annotations[string(k)] = string(v)
			}
		}
		for _, k := range []string{AnnReplicas, AnnServiceType} {
			if v, ok := p.annotations[k]; ok {
				settings[k] = v
			}
		}
	}
	if v, ok := settings[AnnReplicas]; ok {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 32)
		if err != nil || n < 0 {
			return p, fmt.Errorf("annotation %s=%q: want a number of replicas, 0 or more", AnnReplicas, v)
		}
		p.replicas = int32(n)
	}
	if v, ok := settings[AnnServiceType]; ok {
		switch t := corev1.ServiceType(strings.TrimSpace(v)); t {
		case corev1.ServiceTypeLoadBalancer, corev1.ServiceTypeNodePort, corev1.ServiceTypeClusterIP:
			p.serviceType = t
		default:
			return p, fmt.Errorf("annotation %s=%q: want LoadBalancer, NodePort or ClusterIP", AnnServiceType, v)
		}
	}
	return p, nil
}

// kindOf names a group and kind for messages: "ConfigMap", "example.com/Params".
func kindOf(group, kind string) string {
	if group == "" || group == "core" {
		return kind
	}
	return group + "/" + kind
}

// merged is base with over's entries added; over wins.
func merged(base, over map[string]string) map[string]string {
	out := maps.Clone(base)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, over)
	return out
}
