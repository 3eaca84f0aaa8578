package projects

import (
	"context"
	"errors"
	"time"

	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/paging"

	"github.com/slipwayhq/slipway/pkg/events"
)

// Project is the stored state of a project.
type Project struct {
	// TeamID is the owning team; ids are unique within a team.
	TeamID      string
	ID          string
	Name        string
	Description string
	Color       string
	Region      string
	CreatedAt   time.Time
	UpdatedAt   time.Time
	// Version increases with every write; updates are conditional on it
	// (optimistic concurrency).
	Version int64
}

// ResourceKind is the kind of a resource a project holds; the kinds are
// declared once, in the event contract other services report them by.
type ResourceKind = events.ResourceKind

// The kinds of resources other services report through events.
const (
	KindService = events.ResourceService
	KindJob     = events.ResourceJob
	KindAddon   = events.ResourceAddon
	KindSecret  = events.ResourceSecret
)

// Resource is a project's view of a resource another service owns: enough
// to list it on the project and to refuse deleting a non-empty project.
type Resource struct {
	TeamID      string
	ProjectID   string
	Kind        ResourceKind
	ID          string
	Name        string
	Description string
	// Type is the service type, job type or addon type.
	Type string
}

// Page selects a slice of a list: after a cursor (an id) when After is
// set, else at an offset.
type Page struct {
	paging.Page
	// Only, when not empty, limits the list to these ids (a token's
	// project restriction).
	Only []string
}

// Store errors. Implementations return them (possibly wrapped) so that the
// server can map them without knowing the engine. The first three are the
// store contract every service shares, which apierr.FromStore maps; they
// keep their names here so a store's contract reads on its own.
var (
	// ErrNotFound: the project does not exist in the team.
	ErrNotFound = apierr.ErrNotFound
	// ErrAlreadyExists: the project's id is taken in the team.
	ErrAlreadyExists = apierr.ErrAlreadyExists
	// ErrConflict: an update kept losing its race with other writers.
	ErrConflict = apierr.ErrConflict
	// ErrNotEmpty: a delete without force of a project holding resources.
	ErrNotEmpty = errors.New("project has resources")
)

// Store persists projects, each within its team: no method reads or
// writes across teams. Every write that changes state takes the events
// announcing it and commits them in the same transaction (outbox), so an
// event is published if and only if its change was committed.
type Store interface {
	// Create inserts p. It returns ErrAlreadyExists when p.ID is taken in
	// p.TeamID.
	Create(ctx context.Context, p Project, evs ...events.Event) error

	// Get returns the project with the given id or ErrNotFound.
	Get(ctx context.Context, team, id string) (Project, error)

	// GetWithResources returns the project with the given id and its
	// resources (as Resources orders them) in one read, or ErrNotFound.
	// Reading a project is the API's most frequent call: one round trip to
	// the database instead of two.
	GetWithResources(ctx context.Context, team, id string) (Project, []Resource, error)

	// List returns a page of projects ordered by id, whether more follow,
	// and how many projects the whole list (page.Only applied) holds.
	List(ctx context.Context, team string, page Page) ([]Project, bool, int, error)

	// Update reads the project, lets mutate change it and return the events
	// to emit, and writes it back only if nobody else wrote in between,
	// retrying mutate on a fresh copy otherwise. It returns ErrNotFound,
	// mutate's error, or ErrConflict when retries are exhausted. When
	// mutate leaves the project as it was, nothing is written.
	Update(ctx context.Context, team, id string, mutate func(*Project) ([]events.Event, error)) (Project, error)

	// Delete removes the project. Unless force is set it returns
	// ErrNotEmpty while the project holds resources; with force the
	// resource records go too (their owners delete the resources
	// themselves on the deletion event).
	Delete(ctx context.Context, team, id string, force bool, evs ...events.Event) error

	// Resources lists the resources a project holds, ordered by kind and id.
	Resources(ctx context.Context, team, projectID string) ([]Resource, error)

	// PutResource records or refreshes a resource. It is a no-op when the
	// project does not exist (the project was deleted first).
	PutResource(ctx context.Context, r Resource) error

	// DeleteResource forgets a resource; forgetting an unknown one is a no-op.
	DeleteResource(ctx context.Context, team, projectID string, kind ResourceKind, id string) error
}
