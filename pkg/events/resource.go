package events

import (
	"errors"
	"fmt"
	"strings"
)

// resourceName is the resource token of every project-resource event:
// "slipway.<service>.resource.<verb>". Because it is the same for every
// service, a consumer takes every service's project resources with one
// subject (ProjectResourceSubjects) and needs to know none of them.
const resourceName = "resource"

// ResourceKind is the kind of a resource a project holds. It is part of
// the message rather than of the subject, so that one service may own
// several kinds (builds: build and combined services) and a new service
// needs no new subject on the consumer's side.
type ResourceKind string

// The kinds of project resources. A project lists each kind separately
// (services, jobs, addons in GET /v1/projects/{id}).
const (
	// ResourceService is a build, deployment or combined service.
	ResourceService ResourceKind = "service"
	// ResourceJob is a manual or cron job.
	ResourceJob ResourceKind = "job"
	// ResourceAddon is an addon (database, cache, ...).
	ResourceAddon ResourceKind = "addon"
	// ResourceSecret is a secret group.
	ResourceSecret ResourceKind = "secret"
)

// Valid reports whether k is one of the declared kinds.
func (k ResourceKind) Valid() bool {
	switch k {
	case ResourceService, ResourceJob, ResourceAddon, ResourceSecret:
		return true
	}
	return false
}

// ResourceVerb is what happened to a project resource.
type ResourceVerb string

// The verbs of project-resource events.
const (
	// ResourceCreated: the resource now exists.
	ResourceCreated ResourceVerb = "created"
	// ResourceUpdated: its name, description or type may have changed.
	ResourceUpdated ResourceVerb = "updated"
	// ResourceDeleted: the resource is gone.
	ResourceDeleted ResourceVerb = "deleted"
)

// ProjectResource is the data of a project-resource event: what the
// projects service needs to list the resource on its project and to refuse
// deleting a project that still holds it. Every service that creates
// resources inside projects emits it, next to its own lifecycle events.
type ProjectResource struct {
	TeamID      string       `json:"teamId"`
	ProjectID   string       `json:"projectId"`
	Kind        ResourceKind `json:"kind"`
	ID          string       `json:"id"`
	Name        string       `json:"name"`
	Description string       `json:"description,omitempty"`
	// Type is the kind's own type: the service type ("combined", "build",
	// "deployment"), job type ("manual", "cron"), addon type
	// ("postgresql", ...) or secret group type ("secret", "config").
	Type string `json:"type,omitempty"`
}

// check rejects data a consumer could not file under a project.
func (r ProjectResource) check() error {
	switch {
	case r.TeamID == "" || r.ProjectID == "" || r.ID == "":
		return errors.New("project resource needs teamId, projectId and id")
	case !r.Kind.Valid():
		return fmt.Errorf("project resource kind %q is not one of service, job, addon, secret", r.Kind)
	}
	return nil
}

// ProjectResourceSubjects select every service's project-resource events,
// "slipway.*.resource.*", for a consumer's ConsumerConfig.Subjects.
func ProjectResourceSubjects() []string {
	return []string{SubjectFor("*", resourceName, "*")}
}

// NewProjectResource builds the event "slipway.<service>.resource.<verb>"
// announcing that service created, updated or deleted r. A service
// enqueues it in the same transaction as the change (and as its own
// lifecycle event for it), like any other event.
func NewProjectResource(service string, verb ResourceVerb, r ProjectResource) (Event, error) {
	switch verb {
	case ResourceCreated, ResourceUpdated, ResourceDeleted:
	default:
		return Event{}, fmt.Errorf("events: project resource verb %q is not created, updated or deleted", verb)
	}
	if err := r.check(); err != nil {
		return Event{}, fmt.Errorf("events: %w", err)
	}
	return New(service, resourceName, string(verb), r.TeamID+"/"+r.ProjectID+"/"+string(r.Kind)+"/"+r.ID, r)
}

// ParseProjectResource reads a project-resource event. ok is false for an
// event that is not one (another resource token or verb) or whose data
// names no project resource (no ids, an unknown kind: NewProjectResource
// never builds such an event, and redelivering it would not help), which
// a consumer acknowledges and skips. err reports data that is not even
// JSON of the right shape.
func ParseProjectResource(ev Event) (verb ResourceVerb, r ProjectResource, ok bool, err error) {
	parts := strings.Split(ev.Type, ".")
	if len(parts) != 4 || parts[0] != subjectRoot || parts[2] != resourceName {
		return "", ProjectResource{}, false, nil
	}
	switch verb = ResourceVerb(parts[3]); verb {
	case ResourceCreated, ResourceUpdated, ResourceDeleted:
	default:
		return "", ProjectResource{}, false, nil
	}
	if err := ev.Decode(&r); err != nil {
		return "", ProjectResource{}, false, err
	}
	if r.check() != nil {
		return "", ProjectResource{}, false, nil
	}
	return verb, r, true, nil
}
