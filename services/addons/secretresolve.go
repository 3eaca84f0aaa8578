package addons

import (
	"cmp"
	"context"
	"maps"
	"slices"

	addonsv1 "github.com/slipwayhq/slipway/gen/slipway/addons/v1"
)

// ResolveEnvironment implements SecretsService: what a starting job run
// or service instance gets from its project's secret groups.
//
// The groups injected at runtime ("environment" and
// "environment-arguments") that apply to the workload (restrictions) are
// merged from the lowest priority to the highest, so the higher priority
// wins a key; groups of equal priority merge by id. Within a group, its
// linked addons' values come first and its own variables last (what a
// group says explicitly beats what a link derives). Every linked addon's
// socket directory is returned to be mounted read-only where its
// connection values say it is (under SecretAddonMountDir). The caller merges the workload's own
// runtime environment last, over all of this.
func (s *SecretsServer) ResolveEnvironment(ctx context.Context, req *addonsv1.ResolveEnvironmentRequest) (*addonsv1.ResolveEnvironmentResponse, error) {
	all, err := s.store.ProjectSecretGroups(ctx, req.GetTeamId(), req.GetProjectId())
	if err != nil {
		return nil, err
	}
	var groups []SecretGroup
	for _, g := range all {
		if g.SecretType == "arguments" || !secretApplies(g.Restrictions, req.GetKind(), req.GetId(), req.GetTags()) {
			continue
		}
		groups = append(groups, g)
	}
	slices.SortStableFunc(groups, func(a, b SecretGroup) int {
		return cmp.Or(cmp.Compare(a.Priority, b.Priority), cmp.Compare(a.ID, b.ID))
	})
	out := &addonsv1.ResolveEnvironmentResponse{Variables: map[string]string{}, Files: map[string]*addonsv1.SecretFile{}}
	mounts := map[string]SecretAddonConnection{}
	for _, g := range groups {
		linked, err := s.linkedValues(ctx, g)
		if err != nil {
			return nil, err
		}
		for _, l := range linked {
			maps.Copy(out.Variables, l.variables)
			if l.conn.SocketDir != "" {
				mounts[l.id] = l.conn
			}
		}
		maps.Copy(out.Variables, g.Variables)
		for p, f := range g.Files {
			out.Files[p] = &addonsv1.SecretFile{Data: f.Data, Encoding: f.Encoding}
		}
		out.Groups = append(out.Groups, g.ID)
	}
	for _, id := range slices.Sorted(maps.Keys(mounts)) {
		c := mounts[id]
		target := c.MountTarget
		if target == "" {
			target = SecretAddonMountDir + "/" + id
		}
		out.AddonMounts = append(out.AddonMounts, &addonsv1.SecretAddonMount{AddonId: id, Source: c.SocketDir, Target: target})
	}
	return out, nil
}
