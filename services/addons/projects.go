package addons

import (
	"context"
	"errors"
)

// ProjectsConsumer is the durable consumer through which the addons
// service learns of deleted projects (component.ProjectDeletedConsumer).
const ProjectsConsumer = "addons-projects"

// DeleteProjectAddons deletes the addons of a deleted project with their
// servers, data and backups; the projects consumer calls it. It is
// idempotent: a redelivered event finds nothing left.
func (s *Service) DeleteProjectAddons(ctx context.Context, teamID, projectID string) error {
	list, err := s.store.ProjectAddons(ctx, teamID, projectID)
	if err != nil {
		return err
	}
	for _, a := range list {
		if a.Status != StatusDeleting {
			if a, err = s.setStatus(ctx, a, StatusDeleting, ""); err != nil {
				if errors.Is(err, ErrNotFound) {
					continue
				}
				return err
			}
		}
		if err := s.destroy(ctx, a); err != nil {
			return err
		}
		s.log.Info("deleted an addon of a deleted project", "addon", a.ID, "project", a.ProjectID)
	}
	return nil
}
