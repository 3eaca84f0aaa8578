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

// EventData is the data of a builds.build.* event. Kind says whose build
// it is: a service's (ServiceID set) or a job's (JobID set).
type EventData struct {
	TeamID        string    `json:"teamId"`
	ProjectID     string    `json:"projectId"`
	Kind          string    `json:"kind"`
	ServiceID     string    `json:"serviceId,omitempty"`
	JobID         string    `json:"jobId,omitempty"`
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
		TeamID: b.TeamID, ProjectID: b.ProjectID, Kind: ownerKind(b.Kind), BuildID: b.ID,
		Branch: b.Branch, SHA: b.SHA, PullRequestID: b.PullRequest, Status: b.Status, Message: b.Message,
		Trigger: b.Trigger, ConcludedAt: b.ConcludedAt,
	}
	if data.Kind == KindJob {
		data.JobID = b.ServiceID
	} else {
		data.ServiceID = b.ServiceID
	}
	if (verb == VerbSucceeded || verb == VerbDeleted) && (b.Artifact.Image != "" || b.Artifact.Path != "") {
		a := b.Artifact
		data.Artifact = &a
	}
	return events.New("builds", "build", verb, b.TeamID+"/"+b.ProjectID+"/"+b.ServiceID+"/"+b.ID, data)
}
