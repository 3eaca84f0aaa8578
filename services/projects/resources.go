package projects

import (
	"context"
	"fmt"
	"strings"

	"github.com/slipwayhq/slipway/pkg/events"
)

// ResourceSubjects are the events through which other services report the
// resources they create in a project: build and deployment services, jobs
// and addons. Their verbs are created, updated and deleted.
var ResourceSubjects = []string{
	"slipway.*.service.*",
	"slipway.jobs.job.*",
	"slipway.addons.addon.*",
}

// ResourceEventData is the part of a resource event's data the projects
// service reads. Every service that owns project resources puts these
// fields in its events' data.
type ResourceEventData struct {
	TeamID      string `json:"teamId"`
	ProjectID   string `json:"projectId"`
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Type is the service type ("combined", "build", "deployment"), job
	// type ("manual", "cron") or addon type ("postgresql", ...).
	Type string `json:"type,omitempty"`
}

// ResourceConsumer is the durable consumer name of the resource tracker.
const ResourceConsumer = "projects-resources"

// ResourceHandler keeps the store's record of project resources in step
// with their owners' events. Upserts and deletes are idempotent, so
// redelivery is harmless.
func ResourceHandler(store Store) events.Handler {
	return func(ctx context.Context, ev events.Event) error {
		parts := strings.Split(ev.NATSSubject(), ".")
		if len(parts) != 4 {
			return nil
		}
		kind := ResourceKind(parts[2])
		switch kind {
		case KindService, KindJob, KindAddon:
		default:
			return nil
		}
		var data ResourceEventData
		if err := ev.Decode(&data); err != nil {
			return fmt.Errorf("projects: decode %s: %w", ev.Type, err)
		}
		if data.TeamID == "" || data.ProjectID == "" || data.ID == "" {
			return nil // not a project resource
		}
		switch parts[3] {
		case "created", "updated":
			return store.PutResource(ctx, Resource{TeamID: data.TeamID, ProjectID: data.ProjectID, Kind: kind, ID: data.ID, Name: data.Name, Description: data.Description, Type: data.Type})
		case "deleted":
			return store.DeleteResource(ctx, data.TeamID, data.ProjectID, kind, data.ID)
		}
		return nil
	}
}
