package check

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// MinKubernetes is the oldest Kubernetes sinew supports: native sidecars (restartPolicy Always on init
// containers) are on by default from 1.29.
const MinKubernetes = "1.29"

// KubernetesAPI checks that the cluster can be reached; it fills env.Kube and env.APIExt for what follows.
func KubernetesAPI() Category {
	return Category{ID: "kubernetes-api", Checks: []Check{
		{
			ID: "k8s-api-client", Description: "can initialize the client", Severity: Fatal,
			Run: func(_ context.Context, env *Env) error {
				if env.Kube != nil {
					return nil
				}
				if env.Clients == nil {
					return errors.New("no cluster configured")
				}
				c, err := env.Clients()
				if err != nil {
					return err
				}
				env.Kube, env.APIExt = c.Kube, c.APIExt
				return nil
			},
		},
		{
			ID: "k8s-api-reachable", Description: "can query the Kubernetes API", Severity: Fatal, Retry: true,
			Run: func(ctx context.Context, env *Env) error {
				_, err := env.Kube.Discovery().ServerVersion()
				return err
			},
		},
		{
			ID: "k8s-version", Description: "is running Kubernetes " + MinKubernetes + " or newer", Severity: Error,
			Run: func(ctx context.Context, env *Env) error {
				v, err := env.Kube.Discovery().ServerVersion()
				if err != nil {
					return err
				}
				major, minor, err := parseVersion(v.Major, v.Minor, v.GitVersion)
				if err != nil {
					return err
				}
				wantMajor, wantMinor, _ := parseVersion("", "", MinKubernetes)
				if major < wantMajor || (major == wantMajor && minor < wantMinor) {
					return fmt.Errorf("the cluster runs Kubernetes %d.%d (%s); sinew needs %s or newer for native sidecars", major, minor, v.GitVersion, MinKubernetes)
				}
				return nil
			},
		},
	}}
}

// parseVersion reads major.minor from the version info's fields, falling back to the git version (v1.32.4-eks).
func parseVersion(major, minor, git string) (int, int, error) {
	clean := func(s string) string { return strings.TrimRight(s, "+") }
	if ma, err := strconv.Atoi(clean(major)); err == nil {
		if mi, err := strconv.Atoi(clean(minor)); err == nil {
			return ma, mi, nil
		}
	}
	parts := strings.SplitN(strings.TrimPrefix(git, "v"), ".", 3)
	if len(parts) >= 2 {
		ma, err1 := strconv.Atoi(parts[0])
		mi, err2 := strconv.Atoi(strings.TrimRightFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' }))
		if err1 == nil && err2 == nil {
			return ma, mi, nil
		}
	}
	return 0, 0, fmt.Errorf("cannot read the Kubernetes version from %q", git)
}
