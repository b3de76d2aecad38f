package check

import (
	"context"
	"fmt"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sinewmesh/sinew/internal/names"
)

// VersionLabel is the label every control-plane object carries with the version it runs.
const VersionLabel = "app.kubernetes.io/version"

// ControlPlaneVersion returns the version the control plane's deployments run ("" when none is installed). It
// fails when the deployments disagree, naming each one's version.
func ControlPlaneVersion(ctx context.Context, env *Env) (string, error) {
	deps, err := env.Kube.AppsV1().Deployments(env.Namespace).List(ctx, metav1.ListOptions{LabelSelector: names.ControlPlaneNSLabel})
	if err != nil {
		return "", err
	}
	versions := map[string][]string{}
	for _, d := range deps.Items {
		if v := d.Labels[VersionLabel]; v != "" {
			versions[v] = append(versions[v], d.Name)
		}
	}
	switch len(versions) {
	case 0:
		return "", nil
	case 1:
		for v := range versions {
			return v, nil
		}
	}
	var parts []string
	for v, names := range versions {
		sort.Strings(names)
		parts = append(parts, fmt.Sprintf("%s (%s)", v, strings.Join(names, ", ")))
	}
	sort.Strings(parts)
	return "", fmt.Errorf("the control plane's deployments run different versions: %s", strings.Join(parts, "; "))
}

// Version checks that the CLI and the control plane are the same version.
func Version() Category {
	return Category{ID: "sinew-version", Checks: []Check{{
		ID: "version-control-plane", Description: "control plane and CLI versions match", Severity: Warning,
		Run: func(ctx context.Context, env *Env) error {
			v, err := ControlPlaneVersion(ctx, env)
			if err != nil {
				return err
			}
			if v == "" {
				return fmt.Errorf("found no control-plane deployment with a %s label", VersionLabel)
			}
			if v != env.ClientVersion {
				return fmt.Errorf("the control plane runs %s, this CLI is %s: upgrade one to the other (`sinew upgrade` moves the control plane to the CLI's version)", v, env.ClientVersion)
			}
			return nil
		},
	}}}
}
