package builds

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/paging"
)

// CreatedConsumer is the durable consumer through which the builds
// service learns of new services.
const CreatedConsumer = "builds-created"

// CreatedSubjects are the events CreatedHandler takes.
var CreatedSubjects = []string{events.SubjectFor("deployments", "service", "created")}

// triggerCreated is the Trigger of the build that a new combined service
// started.
const triggerCreated = "create"

// CreatedHandler builds the head of a new combined service's branch, as
// Northflank does when one is created, so that the service deploys it:
// "push code, get a running app" must not wait for the next push (or the
// next poll, which only remembers the heads it sees first). A build
// service has no one branch to build and waits for a push or a start; so
// do jobs, which build when asked (a run before any build is 409
// NO_BUILD); a service with CI disabled builds only when asked. A
// redelivered event finds a build of the service already there and starts
// none, and one delivered twice at once (a redelivery while the first
// waits on the owner's service) starts one: its event id is recorded
// atomically (SeeDelivery) before the build starts.
func (s *Service) CreatedHandler() events.Handler {
	return func(ctx context.Context, ev events.Event) error {
		k, ok, err := ownerOf(ev, KindService)
		if err != nil || !ok {
			return err
		}
		return s.initialBuild(ctx, ev.ID, k)
	}
}

// createdDeliveries is the "webhook" under which the ids of the events
// CreatedHandler handled are recorded (SeeDelivery); no webhook has this
// id.
const createdDeliveries = "event:" + CreatedConsumer

// initialBuild queues the first build of k for the event eventID, if it is
// a combined service with CI on and has no build yet.
func (s *Service) initialBuild(ctx context.Context, eventID string, k ServiceKey) error {
	src, err := s.opts.Sources.Source(ctx, k)
	if err != nil {
		switch status.Code(err) {
		case codes.NotFound, codes.FailedPrecondition:
			return nil // gone since, or it does not build from git
		}
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		return err // the owner's service is unreachable: redelivered later
	}
	if src.Kind != "combined" || src.DisabledCI || src.Branch == "" {
		return nil
	}
	k.Kind = k.OwnerKind()
	existing, _, _, err := s.store.ListBuilds(ctx, k, paging.Page{Limit: 1})
	if err != nil {
		return err
	}
	if len(existing) > 0 {
		return nil
	}
	// Only one delivery of the event gets past this; a failure below lets
	// the next one through again.
	first, err := s.store.SeeDelivery(ctx, createdDeliveries, eventID, s.opts.Clock(), s.opts.Clock().Add(-replayWindow))
	if err != nil || !first {
		return err
	}
	if _, err = s.start(ctx, Build{TeamID: src.TeamID, ProjectID: src.ProjectID, Kind: k.Kind, ServiceID: src.ServiceID,
		Branch: src.Branch, Trigger: triggerCreated}); err != nil {
		if ferr := s.store.ForgetDelivery(context.WithoutCancel(ctx), createdDeliveries, eventID); ferr != nil {
			return errors.Join(err, ferr)
		}
		return err
	}
	return nil
}
