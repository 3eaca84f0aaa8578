package jobs

import (
	"context"
	"errors"
	"fmt"

	"github.com/slipwayhq/slipway/pkg/events"
)

// ProjectsConsumer is the durable consumer through which the jobs service
// learns of deleted projects.
const ProjectsConsumer = "jobs-projects"

// ProjectSubjects are the events ProjectHandler handles.
var ProjectSubjects = []string{events.SubjectFor("projects", "project", "deleted")}

// ProjectHandler deletes the jobs of a deleted project, aborting their
// active runs. It is idempotent: a redelivered event finds nothing left.
func (s *Service) ProjectHandler() events.Handler {
	return func(ctx context.Context, ev events.Event) error {
		var data struct {
			TeamID string `json:"teamId"`
			ID     string `json:"id"`
		}
		if err := ev.Decode(&data); err != nil {
			return fmt.Errorf("jobs: decode %s: %w", ev.Type, err)
		}
		if data.TeamID == "" || data.ID == "" {
			return nil
		}
		list, err := s.store.ProjectJobs(ctx, data.TeamID, data.ID)
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
}
