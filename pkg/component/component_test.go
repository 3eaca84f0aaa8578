package component

import (
	"context"
	"slices"
	"testing"

	"github.com/slipwayhq/slipway/pkg/events"
)

// TestProjectDeletedConsumer: the consumer keeps the durable name it is
// given, takes the projects service's "project deleted" events and hands
// each deleted project's team and id to the component.
func TestProjectDeletedConsumer(t *testing.T) {
	var got []string
	c := ProjectDeletedConsumer("jobs-projects", func(ctx context.Context, teamID, projectID string) error {
		got = append(got, teamID, projectID)
		return nil
	})
	if c.Config.Durable != "jobs-projects" || !slices.Equal(c.Config.Subjects, []string{"slipway.projects.project.deleted"}) {
		t.Fatalf("config %+v", c.Config)
	}
	ev, err := events.New("projects", "project", "deleted", "acme/web", map[string]string{"teamId": "acme", "id": "web"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Handler(t.Context(), ev); err != nil || !slices.Equal(got, []string{"acme", "web"}) {
		t.Fatalf("handled: %v, deleted %v", err, got)
	}
}
