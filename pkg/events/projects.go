package events

import "context"

// ProjectDeletedSubjects select the projects service's "project deleted"
// events, "slipway.projects.project.deleted", for a consumer's
// ConsumerConfig.Subjects. Every service holding resources inside projects
// consumes them to delete what it holds in a deleted project.
func ProjectDeletedSubjects() []string {
	return []string{SubjectFor("projects", "project", "deleted")}
}

// ProjectDeletedHandler is the handler of a service's deleted-project
// consumer: it reads the team and project ids ({teamId, id}) of each
// "project deleted" event and calls deleteProject with them, which
// deletes what the service holds in that project. deleteProject must be
// idempotent: an event may be delivered again, and must then find nothing
// left. An event naming no team or no project is acknowledged and skipped
// (the projects service never emits one, and redelivering it would not
// help); data of another JSON shape is an error, so the consumer logs it
// and tries the event again, as it does when deleteProject fails.
func ProjectDeletedHandler(deleteProject func(ctx context.Context, teamID, projectID string) error) Handler {
	return func(ctx context.Context, ev Event) error {
		var data struct {
			TeamID string `json:"teamId"`
			ID     string `json:"id"`
		}
		if err := ev.Decode(&data); err != nil {
			return err // Decode names the event and what is wrong with it
		}
		if data.TeamID == "" || data.ID == "" {
			return nil
		}
		return deleteProject(ctx, data.TeamID, data.ID)
	}
}
