package addons

import (
	"context"
	"maps"

	"github.com/slipwayhq/slipway/services/addons/engine"
)

// Connection implements AddonConnections: what a secret group that links
// the addon gives the workloads of its project. Its values are the
// credentials' (secrets and envs together, hosts being the socket
// directory as a linked workload sees it), and the socket directory is
// mounted read-only where those values point.
func (s *Service) Connection(ctx context.Context, teamID, projectID, addonID string) (SecretAddonConnection, error) {
	a, err := s.store.GetAddon(ctx, teamID, projectID, addonID)
	if err != nil {
		return SecretAddonConnection{}, err
	}
	secrets, envs, err := s.Credentials(ctx, a)
	if err != nil {
		return SecretAddonConnection{}, err
	}
	values := maps.Clone(envs)
	maps.Copy(values, secrets)
	ea := s.engineAddon(a)
	return SecretAddonConnection{
		Name: a.Name, Type: a.Type, Version: a.Settings.Version,
		Values: values, SocketDir: ea.RunDir, LinkTarget: engine.LinkPath(ea),
	}, nil
}
