package builds

import (
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/services/builds/buildevent"
)

// The builds.build.<verb> events, whose contract is package buildevent.
const (
	VerbQueued    = buildevent.Queued
	VerbStarted   = buildevent.Started
	VerbSucceeded = buildevent.Succeeded
	VerbFailed    = buildevent.Failed
	VerbAborted   = buildevent.Aborted
	VerbDeleted   = buildevent.Deleted
)

// EventData is the data of a builds.build.* event.
type EventData = buildevent.Data

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
