package deployments

import (
	"context"
	"errors"

	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/services/deployments/rollout"
)

var _ rollout.Hooks = (*Server)(nil)

// Rollout implements rollout.Hooks: it records a rollout's progress as
// the release's status and the service's deployment status, with a
// deployments.release.<status> event, in one transaction. A failed
// rollout that restored an earlier release makes that release the one the
// service runs again, so that a restart of Slipway applies the healthy
// release rather than retrying the failed one.
func (s *Server) Rollout(ctx context.Context, o rollout.Outcome) {
	teamID, project, id, ok := parseControllerID(o.ServiceID)
	if !ok {
		s.log.Warn("rollout outcome for an unknown service", "service", o.ServiceID)
		return
	}
	status := o.Status
	switch status {
	case rollout.RolloutInProgress:
		status = StatusInProgress
	case rollout.RolloutCompleted:
		status = StatusCompleted
	case rollout.RolloutFailed:
		status = StatusFailed
	}
	at := s.now()
	err := s.store.SetReleaseStatus(ctx, teamID, project, id, o.ReleaseID, status, o.Reason, func(sv *Service) []events.Event {
		if sv.ReleaseID != o.ReleaseID {
			// A report on a release the service has moved on from: the
			// release keeps its status, the service's is the newer one's.
			return releaseEvents(sv, o.ReleaseID, status, o.Reason, s)
		}
		sv.Status = Status{Status: status, Reason: ReasonDeploying, Message: o.Reason, At: at}
		if status == StatusFailed && o.RestoredID != "" {
			if r, err := s.store.GetRelease(ctx, teamID, project, id, o.RestoredID); err == nil {
				sv.ReleaseID, sv.Deployable = r.ID, cloneDeployable(r.Deployable)
			}
		}
		return releaseEvents(sv, o.ReleaseID, status, o.Reason, s)
	})
	if err != nil && !errors.Is(err, ErrNotFound) && ctx.Err() == nil {
		s.log.Warn("recording a rollout outcome", "service", o.ServiceID, "release", o.ReleaseID, "error", err)
	}
}

// releaseEvents is the event announcing a release's new status.
func releaseEvents(sv *Service, releaseID, status, reason string, s *Server) []events.Event {
	verb := map[string]string{StatusInProgress: "in_progress", StatusCompleted: "completed", StatusFailed: "failed"}[status]
	if verb == "" {
		return nil
	}
	ev, err := releaseEvent(verb, Release{TeamID: sv.TeamID, ProjectID: sv.ProjectID, ServiceID: sv.ID, ID: releaseID, Status: status, Reason: reason})
	if err != nil {
		s.log.Warn("making a release event", "error", err)
		return nil
	}
	return []events.Event{ev}
}
