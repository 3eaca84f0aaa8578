package deployments

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/services/builds/buildevent"
)

// BuildsConsumer is the durable consumer through which the deployments
// service learns of succeeded and deleted builds.
const BuildsConsumer = "deployments-builds"

// BuildSubjects are the events BuildHandler handles.
var BuildSubjects = []string{
	buildevent.Subject(buildevent.Succeeded),
	buildevent.Subject(buildevent.Deleted),
}

// BuildHandler records succeeded builds as deployable and rolls out the
// services that follow the built branch; a deleted build can no longer be
// deployed. It is idempotent: a build is recorded once, and a service
// already running the newest build of its branch is left alone. A job's
// build (kind "job") is the jobs service's: it is not deployable here.
func (s *Server) BuildHandler() events.Handler {
	return func(ctx context.Context, ev events.Event) error {
		var data buildevent.Data
		if err := ev.Decode(&data); err != nil {
			return fmt.Errorf("deployments: decode %s: %w", ev.Type, err)
		}
		if data.Kind != "" && data.Kind != "service" {
			return nil
		}
		if data.TeamID == "" || data.ProjectID == "" || data.ServiceID == "" || data.BuildID == "" {
			s.log.Warn("a build event without its build's key", "event", ev.ID, "type", ev.Type)
			return nil
		}
		if ev.Type == buildevent.Subject(buildevent.Deleted) {
			return s.store.DeleteBuild(ctx, data.TeamID, data.ProjectID, data.ServiceID, data.BuildID)
		}
		concluded := data.ConcludedAt
		if concluded.IsZero() {
			concluded = ev.Time
		}
		art := data.Built()
		b := DeployableBuild{
			TeamID: data.TeamID, ProjectID: data.ProjectID, ServiceID: data.ServiceID, ID: data.BuildID,
			Branch: data.Branch, SHA: strings.ToLower(data.SHA), Image: art.Image, Path: art.Path,
			Command: art.Command, ConcludedAt: concluded.UTC(),
		}
		if err := s.store.PutBuild(ctx, b); err != nil {
			return err
		}
		return s.rollForward(ctx, b)
	}
}

// rollForward resolves again every service of b's project that follows
// b's service and branch: each whose newest build changed rolls it out.
func (s *Server) rollForward(ctx context.Context, b DeployableBuild) error {
	list, err := s.store.ProjectServices(ctx, b.TeamID, b.ProjectID)
	if err != nil {
		return err
	}
	for _, sv := range list {
		src, ok := followOf(sv)
		if !ok || src.ID != b.ServiceID || !src.Follows() || src.Branch != b.Branch {
			continue
		}
		_, err := s.changeIn(ctx, sv.TeamID, sv.ProjectID, sv.ID, "build:"+b.ID, func(sv *Service) (string, string, error) {
			return "build", "", s.resolve(ctx, sv)
		}, nil)
		if err != nil && !errors.Is(err, ErrNotFound) {
			if e := apierr.From(err); e == nil || e.Reason == apierr.ReasonUnavailable || e.Reason == apierr.ReasonInternal || e.Reason == apierr.ReasonConcurrentModification {
				return err // worth another try
			}
			// The service cannot take the build (its source changed
			// meanwhile): it keeps what it runs.
			s.log.Warn("a service following a branch did not take its new build", "service", sv.ID, "project", sv.ProjectID, "build", b.ID, "error", err)
			continue
		}
		s.log.Info("a new build of a followed branch", "service", sv.ID, "project", sv.ProjectID, "build", b.ID)
	}
	return nil
}
