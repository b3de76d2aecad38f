package gateway

import (
	"github.com/sinewmesh/sinew/controlplane/internal/model"
)

// refPermitted reports whether a ReferenceGrant in namespace toNamespace allows objects of fromGroup/fromKind in
// fromNamespace to refer to the object toGroup/toKind named toName there (Gateway API: a grant's to.name, when
// set, names the one object it allows). References within a namespace need no grant; callers check only
// those across namespaces.
func refPermitted(snap *model.Snapshot, fromGroup, fromKind, fromNamespace, toGroup, toKind, toNamespace, toName string) bool {
	for _, g := range snap.ReferenceGrants() {
		if g.Namespace != toNamespace {
			continue
		}
		from := false
		for _, f := range g.Spec.From {
			from = from || (string(f.Group) == fromGroup && string(f.Kind) == fromKind && string(f.Namespace) == fromNamespace)
		}
		if !from {
			continue
		}
		for _, t := range g.Spec.To {
			if coreGroup(string(t.Group)) == coreGroup(toGroup) && string(t.Kind) == toKind && (t.Name == nil || string(*t.Name) == toName) {
				return true
			}
		}
	}
	return false
}

// coreGroup spells the core group one way: "" (some write "core").
func coreGroup(g string) string {
	if g == "core" {
		return ""
	}
	return g
}
