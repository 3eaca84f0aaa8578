package addons

import "context"

var _ AddonConnections = (*Service)(nil)

// Connection implements AddonConnections for the secret groups with the
// addons server's Link: an addon's connection values, its socket
// directory and where a linked workload mounts it (the path its HOST
// names). apierr.ErrNotFound when the project has no such addon.
func (s *Service) Connection(ctx context.Context, team, project, addonID string) (SecretAddonConnection, error) {
	l, err := s.Link(ctx, team, project, addonID)
	if err != nil {
		return SecretAddonConnection{}, err
	}
	return SecretAddonConnection{Name: l.Name, Type: l.Type, Version: l.Version, Values: l.Values,
		SocketDir: l.SocketDir, MountTarget: l.MountPath}, nil
}
