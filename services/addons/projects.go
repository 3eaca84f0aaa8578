package addons

import (
	"context"
	"errors"
	"fmt"

	"github.com/slipwayhq/slipway/pkg/events"
)

// ProjectsConsumer is the durable consumer through which the addons
// service learns of deleted projects.
const ProjectsConsumer = "addons-projects"

// ProjectSubjects are the events ProjectHandler handles.
var ProjectSubjects = []string{events.SubjectFor("projects", "project", "deleted")}

// ProjectHandler deletes the addons of a deleted project with their
// servers, data and backups. It is idempotent: a redelivered event finds
// nothing left.
func (s *Service) ProjectHandler() events.Handler {
	return func(ctx context.Context, ev events.Event) error {
		var data struct {
			TeamID string `json:"teamId"`
			ID     string `json:"id"`
		}
		if err := ev.Decode(&data); err != nil {
			return fmt.Errorf("addons: decode %s: %w", ev.Type, err)
		}
		if data.TeamID == "" || data.ID == "" {
			return nil
		}
		list, err := s.store.ProjectAddons(ctx, data.TeamID, data.ID)
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
}
