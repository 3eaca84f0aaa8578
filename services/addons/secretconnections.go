package addons

import (
	"context"
	"maps"

	"github.com/slipwayhq/slipway/services/addons/engine"
)

var _ AddonConnections = (*Service)(nil)

// Connection implements AddonConnections for the secret groups: an
// addon's connection values (its credentials' envs and secrets, the keys
// GET …/credentials shows) and its socket directory, which a linked
// workload mounts read-only where those values say (engine.LinkPath).
// apierr.ErrNotFound when the project has no such addon.
func (s *Service) Connection(ctx context.Context, team, project, addonID string) (SecretAddonConnection, error) {
	a, err := s.store.GetAddon(ctx, team, project, addonID)
	if err != nil {
		return SecretAddonConnection{}, err
	}
	secrets, envs, err := s.Credentials(ctx, a)
	if err != nil {
		return SecretAddonConnection{}, err
	}
	values := maps.Clone(envs)
	if values == nil {
		values = map[string]string{}
	}
	maps.Copy(values, secrets)
	ea := s.engineAddon(a)
	return SecretAddonConnection{Name: a.Name, Type: a.Type, Version: a.Settings.Version, Values: values,
		SocketDir: ea.RunDir, MountTarget: engine.LinkPath(ea)}, nil
}
