package deployments

import (
	"context"
	"errors"

	"github.com/slipwayhq/slipway/pkg/apierr"
)

// ProjectsConsumer is the durable consumer through which the deployments
// service learns of deleted projects (component.ProjectDeletedConsumer).
const ProjectsConsumer = "deployments-projects"

// DeleteProjectServices deletes the services of a deleted project and
// stops their instances; the projects consumer calls it. It is idempotent:
// a redelivered event finds nothing left.
func (s *Server) DeleteProjectServices(ctx context.Context, teamID, projectID string) error {
	list, err := s.store.ProjectServices(ctx, teamID, projectID)
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

func isNotFound(err error) bool {
	e := apierr.From(err)
	return e != nil && e.Reason == apierr.ReasonNotFound
}
