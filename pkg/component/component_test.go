package component

import (
	"context"
	"slices"
	"testing"

	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/sqldb"
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

// TestServes: components with an API or a database serve gRPC to other
// processes; an HTTP-only one (the gateway) does not, even with a
// database of its own.
func TestServes(t *testing.T) {
	db := []sqldb.Migrations{{Name: "x"}}
	for _, c := range []struct {
		c    Component
		want bool
	}{
		{Component{Name: "api", API: &API{}}, true},
		{Component{Name: "db", Migrations: db}, true},
		{Component{Name: "none"}, false},
		{Component{Name: "gateway", Migrations: db, HTTPOnly: true}, false},
	} {
		if got := c.c.Serves(); got != c.want {
			t.Errorf("%s: Serves() = %v, want %v", c.c.Name, got, c.want)
		}
	}
}
