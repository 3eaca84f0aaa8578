package jobs

import (
	"context"
	"errors"
)

// ProjectsConsumer is the durable consumer through which the jobs service
// learns of deleted projects (component.ProjectDeletedConsumer).
const ProjectsConsumer = "jobs-projects"

// DeleteProjectJobs deletes the jobs of a deleted project, aborting their
// active runs; the projects consumer calls it. It is idempotent: a
// redelivered event finds nothing left.
func (s *Service) DeleteProjectJobs(ctx context.Context, teamID, projectID string) error {
	list, err := s.store.ProjectJobs(ctx, teamID, projectID)
	if err != nil {
		return err
	}
	for _, j := range list {
		if err := s.deleteJob(ctx, j); err != nil && !errors.Is(err, ErrNotFound) && !isNotFound(err) {
			return err
		}
		s.log.Info("deleted a job of a deleted project", "job", j.ID, "project", j.ProjectID)
	}
	return nil
}
