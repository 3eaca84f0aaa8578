package deployments

import (
	"context"
	"errors"
	"fmt"

	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/events"
)

// ProjectsConsumer is the durable consumer through which the deployments
// service learns of deleted projects.
const ProjectsConsumer = "deployments-projects"

// ProjectSubjects are the events ProjectHandler handles.
var ProjectSubjects = []string{events.SubjectFor("projects", "project", "deleted")}

// ProjectHandler deletes the services of a deleted project and stops their
// instances. It is idempotent: a redelivered event finds nothing left.
func (s *Server) ProjectHandler() events.Handler {
	return func(ctx context.Context, ev events.Event) error {
		var data struct {
			TeamID string `json:"teamId"`
			ID     string `json:"id"`
		}
		if err := ev.Decode(&data); err != nil {
			return fmt.Errorf("deployments: decode %s: %w", ev.Type, err)
		}
		if data.TeamID == "" || data.ID == "" {
			return nil
		}
		list, err := s.store.ProjectServices(ctx, data.TeamID, data.ID)
		if err != nil {
			return err
		}
		for _, sv := range list {
			if err := s.deleteService(ctx, sv); err != nil && !errors.Is(err, ErrNotFound) && !isNotFound(err) {
				return err
			}
			s.log.Info("deleted a service of a deleted project", "service", sv.ID, "project", sv.ProjectID)
		}
		return nil
	}
}

func isNotFound(err error) bool {
	e := apierr.From(err)
	return e != nil && e.Reason == apierr.ReasonNotFound
}
