package builds

import (
	"context"
	"fmt"

	"github.com/slipwayhq/slipway/pkg/events"
)

// Consumers through which the builds service learns of deleted projects,
// services and jobs.
const (
	ProjectsConsumer = "builds-projects"
	ServicesConsumer = "builds-services"
	JobsConsumer     = "builds-jobs"
)

// ServiceSubjects and JobSubjects are the events ServiceHandler and
// JobHandler take (deleted projects come through
// component.ProjectDeletedConsumer).
var (
	ServiceSubjects = []string{events.SubjectFor("deployments", "service", "deleted")}
	JobSubjects     = []string{events.SubjectFor("jobs", "job", "deleted")}
)

// DeleteProjectBuilds deletes the builds, logs and artifacts of a deleted
// project's services; the projects consumer calls it. It is idempotent: a
// redelivered event finds nothing left.
func (s *Service) DeleteProjectBuilds(ctx context.Context, teamID, projectID string) error {
	keys, err := s.store.ProjectServices(ctx, teamID, projectID)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := s.deleteService(ctx, k); err != nil {
			return err
		}
	}
	return nil
}

// ServiceHandler deletes a deleted service's builds, logs and artifacts.
func (s *Service) ServiceHandler() events.Handler { return s.ownerHandler(KindService) }

// JobHandler deletes a deleted job's builds, logs and artifacts.
func (s *Service) JobHandler() events.Handler { return s.ownerHandler(KindJob) }

// ownerHandler deletes the builds of a deleted service or job (kind), whose
// event names it as {teamId, projectId, id}.
func (s *Service) ownerHandler(kind string) events.Handler {
	return func(ctx context.Context, ev events.Event) error {
		k, ok, err := ownerOf(ev, kind)
		if err != nil || !ok {
			return err
		}
		return s.deleteService(ctx, k)
	}
}

// ownerOf is the service or job (kind) an event of the deployments or
// jobs service names as {teamId, projectId, id}; false when it names
// none.
func ownerOf(ev events.Event, kind string) (ServiceKey, bool, error) {
	var data struct {
		TeamID    string `json:"teamId"`
		ProjectID string `json:"projectId"`
		ID        string `json:"id"`
	}
	if err := ev.Decode(&data); err != nil {
		return ServiceKey{}, false, fmt.Errorf("builds: decode %s: %w", ev.Type, err)
	}
	if data.TeamID == "" || data.ProjectID == "" || data.ID == "" {
		return ServiceKey{}, false, nil
	}
	return ServiceKey{TeamID: data.TeamID, ProjectID: data.ProjectID, Kind: kind, ServiceID: data.ID}, true, nil
}

// deleteService stops the service's running builds and deletes
// everything it built.
func (s *Service) deleteService(ctx context.Context, k ServiceKey) error {
	k.Kind = k.OwnerKind()
	running, err := s.store.Running(ctx, "")
	if err != nil {
		return err
	}
	for _, b := range running {
		if b.key() == k {
			s.cancel(b.ID)
			_ = s.opts.NATS.Publish(abortSubject, []byte(b.ID))
		}
	}
	gone, err := s.store.DeleteService(ctx, k)
	if err != nil {
		return err
	}
	for _, b := range gone {
		// Another service may still run this build (it deployed it with
		// internal): its artifact is kept until nothing runs it.
		if err := s.opts.Engine.RemoveUnused(ctx, b.Artifact); err != nil {
			if err := s.store.AddOrphan(ctx, Orphan{BuildID: b.ID, Artifact: b.Artifact, Since: s.opts.Clock()}); err != nil {
				return err
			}
			s.log.Info("a deleted build's artifact is still in use: removed once nothing runs it", "build", b.ID, "error", err)
		}
	}
	if err := s.opts.Engine.ResetCache(ctx, k); err != nil {
		s.log.Warn("removing a deleted service's build cache", "service", k.ServiceID, "error", err)
	}
	if len(gone) > 0 {
		s.log.Info("deleted the builds of a deleted service", "service", k.ServiceID, "project", k.ProjectID, "artifacts", len(gone))
	}
	return nil
}
