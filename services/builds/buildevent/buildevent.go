// Package buildevent is the contract of the builds component's lifecycle
// events, slipway.builds.build.<verb>: what the builds service publishes
// and what the deployments and jobs services read to run built artifacts.
// One definition, so that producer and consumers cannot drift apart.
package buildevent

import (
	"time"

	"github.com/slipwayhq/slipway/pkg/events"
)

// The verbs. Deployments and jobs record a build on Succeeded and forget
// it on Deleted (its artifact was removed); notifications deliver them all.
const (
	Queued    = "queued"
	Started   = "started"
	Succeeded = "succeeded"
	Failed    = "failed"
	Aborted   = "aborted"
	Deleted   = "deleted"
)

// Subject is the NATS subject of verb's events.
func Subject(verb string) string { return events.SubjectFor("builds", "build", verb) }

// The owners of builds (Data.Kind).
const (
	KindService = "service"
	KindJob     = "job"
)

// Artifact is what a successful build produced: an image (docker driver),
// or an app tree and its start command (process driver; no command when
// the buildpack found none).
type Artifact struct {
	Image   string   `json:"image,omitempty"`
	Path    string   `json:"path,omitempty"`
	Command []string `json:"command,omitempty"`
	Stack   string   `json:"stack,omitempty"`
}

// Data is the data of a builds.build.* event. Kind says whose build it
// is: a service's (ServiceID set) or a job's (JobID set).
type Data struct {
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
	// Artifact is set on succeeded and deleted events.
	Artifact *Artifact `json:"artifact,omitempty"`
}

// Built is the event's artifact, or none.
func (d Data) Built() Artifact {
	if d.Artifact == nil {
		return Artifact{}
	}
	return *d.Artifact
}

// Owner is the id of the build's service or job.
func (d Data) Owner() string {
	if d.Kind == KindJob {
		return d.JobID
	}
	return d.ServiceID
}
