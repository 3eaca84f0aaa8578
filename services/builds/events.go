package builds

import (
	"time"

	"github.com/slipwayhq/slipway/pkg/events"
)

// The builds.build.<verb> events. Deployments roll out on succeeded and
// forget an artifact on deleted; notifications (later) deliver them all.
const (
	VerbQueued    = "queued"
	VerbStarted   = "started"
	VerbSucceeded = "succeeded"
	VerbFailed    = "failed"
	VerbAborted   = "aborted"
	VerbDeleted   = "deleted"
)

// EventData is the data of a builds.build.* event.
type EventData struct {
	TeamID        string    `json:"teamId"`
	ProjectID     string    `json:"projectId"`
	ServiceID     string    `json:"serviceId"`
	BuildID       string    `json:"buildId"`
	Branch        string    `json:"branch,omitempty"`
	SHA           string    `json:"sha,omitempty"`
	PullRequestID int64     `json:"pullRequestId,omitempty"`
	Status        string    `json:"status"`
	Message       string    `json:"message,omitempty"`
	Trigger       string    `json:"trigger,omitempty"`
	ConcludedAt   time.Time `json:"concludedAt,omitzero"`
	Artifact      *Artifact `json:"artifact,omitempty"`
}

// verbOf is the event a build's status announces ("" for none: the steps
// between started and the outcome are visible on the build, not as
// events).
func verbOf(status string) string {
	switch status {
	case StatusQueued:
		return VerbQueued
	case StatusCloning:
		return VerbStarted
	case StatusSuccess:
		return VerbSucceeded
	case StatusFailure:
		return VerbFailed
	case StatusAborted:
		return VerbAborted
	}
	return ""
}

// buildEvent is the event verb announces about b.
func buildEvent(b Build, verb string) (events.Event, error) {
	data := EventData{
		TeamID: b.TeamID, ProjectID: b.ProjectID, ServiceID: b.ServiceID, BuildID: b.ID,
		Branch: b.Branch, SHA: b.SHA, PullRequestID: b.PullRequest, Status: b.Status, Message: b.Message,
		Trigger: b.Trigger, ConcludedAt: b.ConcludedAt,
	}
	if (verb == VerbSucceeded || verb == VerbDeleted) && (b.Artifact.Image != "" || b.Artifact.Path != "") {
		a := b.Artifact
		data.Artifact = &a
	}
	return events.New("builds", "build", verb, b.TeamID+"/"+b.ProjectID+"/"+b.ServiceID+"/"+b.ID, data)
}
