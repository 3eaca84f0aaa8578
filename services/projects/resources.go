package projects

import (
	"context"
	"fmt"

	"github.com/slipwayhq/slipway/pkg/events"
)

// ResourceSubjects are the events through which other services report the
// resources they create in a project: every service's project-resource
// events (events.ProjectResource), whichever service sends them, so a new
// service needs no change here.
var ResourceSubjects = events.ProjectResourceSubjects()

// ResourceConsumer is the durable consumer name of the resource tracker.
// It is kept from when the tracker listened to each service's own
// subjects: the durable's filter is updated in place at start-up, and its
// position in the stream is kept.
const ResourceConsumer = "projects-resources"

// ResourceHandler keeps the store's record of project resources in step
// with their owners' events. Upserts and deletes are idempotent, so
// redelivery is harmless.
func ResourceHandler(store Store) events.Handler {
	return func(ctx context.Context, ev events.Event) error {
		verb, r, ok, err := events.ParseProjectResource(ev)
		if err != nil {
			return fmt.Errorf("projects: %w", err)
		}
		if !ok {
			return nil // not a project resource
		}
		switch verb {
		case events.ResourceCreated, events.ResourceUpdated:
			return store.PutResource(ctx, Resource{TeamID: r.TeamID, ProjectID: r.ProjectID, Kind: r.Kind, ID: r.ID, Name: r.Name, Description: r.Description, Type: r.Type})
		case events.ResourceDeleted:
			return store.DeleteResource(ctx, r.TeamID, r.ProjectID, r.Kind, r.ID)
		}
		return nil
	}
}
