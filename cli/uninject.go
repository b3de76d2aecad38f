package cli

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/sinewmesh/sinew/cli/internal/manifests"
	"github.com/sinewmesh/sinew/cli/internal/yamledit"
	"github.com/sinewmesh/sinew/controlplane/inject"
	"github.com/sinewmesh/sinew/internal/names"
)

func newUninjectCmd(env *Env) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "uninject FILE|DIR|URL|- ...",
		Short: "Remove the sinew proxy from Kubernetes manifests",
		Long: `Remove what sinew inject added to Kubernetes manifests and print them: the sinew.dev/inject annotation
(enabled or ingress; disabled stays), and what --manual wrote: the sinew-init and sinew-proxy containers, the
sinew-identity-token volume, and the sinew.dev labels and annotations the injector adds. config.sinew.dev/*
annotations stay. Input and output as for inject: every other byte is kept.`,
		Example: `  kubectl get -n emojivoto deploy -o yaml | sinew uninject - | kubectl apply -f -`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runUninject(cmd.Context(), env, output, args)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: yaml or json (default: as the input)")
	return cmd
}

func runUninject(ctx context.Context, env *Env, output string, args []string) error {
	if err := checkOutput(output); err != nil {
		return err
	}
	srcs, err := manifests.Read(ctx, args, env.Stdin, &http.Client{Timeout: 30 * time.Second})
	if err != nil {
		return err
	}
	return writeManifests(env, srcs, output, uninject)
}

// uninject removes from one object what inject (either mode) adds.
func uninject(o *manifests.Object) (string, error) {
	var base []string
	if o.Kind != "Namespace" {
		tp, ok := templatePaths[o.Kind]
		if !ok {
			return "skipped", nil
		}
		if t := o.Get(tp...); t == nil || t.Kind != yamledit.Map {
			return "skipped (no pod template)", nil
		}
		base = tp
	}
	u := &uninjecter{o: o, base: base}
	if o.Kind != "Namespace" {
		for _, list := range []string{"initContainers", "containers"} {
			u.removeItems([]string{"spec", list}, list != "containers", func(n *yamledit.Node) bool {
				return inject.IsInjectedContainer(n.Get("name").Str())
			})
		}
		u.removeItems([]string{"spec", "volumes"}, true, func(n *yamledit.Node) bool {
			return n.Get("name").Str() == names.TokenVolume
		})
		u.removeKeys([]string{"metadata", "labels"}, inject.IsInjectedLabel)
	}
	u.removeKeys([]string{"metadata", "annotations"}, func(k string) bool {
		if k == names.InjectAnnotation {
			v := u.at("metadata", "annotations", k).Str()
			return v == names.InjectEnabled || v == names.InjectIngress
		}
		for _, a := range inject.InjectedAnnotations {
			if k == a {
				return true
			}
		}
		return false
	})
	if u.emptied && len(base) > 0 {
		// a pod template whose metadata held only what inject added
		if m := u.at("metadata"); m != nil && m.Empty() {
			u.remove([]string{"metadata"})
		}
	}
	if u.err != nil {
		return "", u.err
	}
	if !u.changed {
		return "skipped", nil
	}
	return "uninjected", nil
}

// uninjecter removes things below base, remembering whether it changed anything and the first error.
type uninjecter struct {
	o                *manifests.Object
	base             []string
	changed, emptied bool
	err              error
}

func (u *uninjecter) path(rel ...string) []string {
	return append(append([]string(nil), u.base...), rel...)
}

func (u *uninjecter) at(rel ...string) *yamledit.Node { return u.o.Get(u.path(rel...)...) }

func (u *uninjecter) remove(rel []string) {
	if u.err == nil {
		u.err = u.o.Remove(u.path(rel...))
		u.changed = true
	}
}

// removeItems removes the sequence items that match; when prune is set and none is left, the key goes too.
func (u *uninjecter) removeItems(rel []string, prune bool, match func(*yamledit.Node) bool) {
	s := u.at(rel...)
	if s == nil || s.Kind != yamledit.Seq {
		return
	}
	removed := 0
	for i := len(s.Items) - 1; i >= 0; i-- {
		if match(s.Items[i]) {
			u.remove(append(append([]string(nil), rel...), strconv.Itoa(i)))
			removed++
		}
	}
	if prune && removed > 0 && removed == len(s.Items) {
		u.remove(rel)
		u.emptied = true
	}
}

// removeKeys removes the map keys that match; when none is left, the map goes too.
func (u *uninjecter) removeKeys(rel []string, match func(string) bool) {
	m := u.at(rel...)
	if m == nil || m.Kind != yamledit.Map {
		return
	}
	var keys []string
	for _, k := range m.Keys {
		if match(k.Value) {
			keys = append(keys, k.Value)
		}
	}
	for _, k := range keys {
		u.remove(append(append([]string(nil), rel...), k))
	}
	if len(keys) > 0 && len(keys) == len(m.Keys) {
		u.remove(rel)
		u.emptied = true
	}
}
