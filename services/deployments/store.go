package deployments

import (
	"context"
	"time"

	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/overrides"
	"github.com/slipwayhq/slipway/pkg/paging"
	"github.com/slipwayhq/slipway/pkg/probe"
	"github.com/slipwayhq/slipway/pkg/vcs"
)

// Kind is a service's kind.
type Kind string

// Service kinds: a deployment service deploys an image, a command or
// another service's builds; a build service builds (the builds component
// runs its builds) and deploys nothing; a combined service deploys its own
// builds.
const (
	KindDeployment Kind = "deployment"
	KindCombined   Kind = "combined"
	KindBuild      Kind = "build"
)

// Builds reports whether services of kind k build from git.
func (k Kind) Builds() bool { return k == KindCombined || k == KindBuild }

// Deployment statuses (Northflank's §status.deployment.status) and the
// reason a rollout started: a release (Northflank's other reason,
// SCALING, is never given, since scaling makes no release and the
// controller reports only rollouts).
const (
	StatusPending    = "PENDING"
	StatusInProgress = "IN_PROGRESS"
	StatusCompleted  = "COMPLETED"
	StatusFailed     = "FAILED"

	ReasonDeploying = "DEPLOYING"
)

// Port is one port of a service.
type Port struct {
	Name     string `json:"name"`
	Port     int    `json:"port"`
	Protocol string `json:"protocol"`
	Public   bool   `json:"public,omitempty"`
}

// Deployable is what a release runs: everything whose change makes a new
// release (and only that: instance counts, pause and plan are not part of
// it).
type Deployable struct {
	// Overrides is the image (empty: a command on the process driver) and
	// Northflank's docker overrides.
	Overrides    overrides.Overrides `json:"overrides"`
	Ports        []Port              `json:"ports,omitempty"`
	HealthChecks []probe.HealthCheck `json:"healthChecks,omitempty"`
	// Env is the runtime environment; stores keep it encrypted at rest.
	Env map[string]string `json:"env,omitempty"`
	// Build is the build a service that deploys builds runs; nil for
	// other services, and until a build of what it follows exists.
	Build *BuildRef `json:"build,omitempty"`
}

// BuildRef is a deployable build as a release runs it.
type BuildRef struct {
	// Service is the build or combined service that built it.
	Service string `json:"service"`
	ID      string `json:"id"`
	SHA     string `json:"sha"`
	Branch  string `json:"branch,omitempty"`
	// Image is the built image (container engines); Path the app tree
	// and Command its start command (the process driver).
	Image   string   `json:"image,omitempty"`
	Path    string   `json:"path,omitempty"`
	Command []string `json:"command,omitempty"`
}

// Internal is what a deployment service asked to deploy of another
// service's builds (Northflank's deployment.internal).
type Internal struct {
	// ID is the build or combined service in the same project.
	ID     string `json:"id"`
	Branch string `json:"branch,omitempty"`
	// BuildSHA is a commit (or a prefix of at least 7 hex digits), or
	// "latest": the service follows Branch.
	BuildSHA string `json:"buildSHA,omitempty"`
	BuildID  string `json:"buildId,omitempty"`
	// Repository is the source service's repository URL when the source
	// was last resolved, for GET service.
	Repository string `json:"repository,omitempty"`
}

// Latest is the BuildSHA with which a service follows its branch.
const Latest = "latest"

// Follows reports whether the service deploys every new build of Branch.
func (in Internal) Follows() bool {
	return in.BuildID == "" && (in.BuildSHA == "" || in.BuildSHA == Latest)
}

// Credentials read a private repository (pkg/vcs).
type Credentials = vcs.Credentials

// SecretFile is a build (or runtime) secret file: base64 data.
type SecretFile struct {
	Data     string `json:"data"`
	Encoding string `json:"encoding,omitempty"`
}

// DeployableBuild is a succeeded build that services can deploy, as the
// builds component announced it.
type DeployableBuild struct {
	TeamID    string
	ProjectID string
	// ServiceID is the build or combined service that built it.
	ServiceID   string
	ID          string
	Branch      string
	SHA         string
	Image       string
	Path        string
	Command     []string
	ConcludedAt time.Time
	// Deleted: its artifact was removed; it can no longer be deployed.
	Deleted bool
}

// Ref is the form of b a release runs.
func (b DeployableBuild) Ref() *BuildRef {
	return &BuildRef{Service: b.ServiceID, ID: b.ID, SHA: b.SHA, Branch: b.Branch, Image: b.Image, Path: b.Path, Command: b.Command}
}

// BuildQuery selects the newest deployable build of a service: of a
// commit (SHA, a prefix of at least 7 hex digits) and/or of a branch.
type BuildQuery struct {
	SHA    string
	Branch string
}

// Strategy is a service's rollout strategy as the user gave it.
type Strategy struct {
	// Type is Northflank's strategy type ("" is rollout-steady).
	Type string `json:"type,omitempty"`
	// MaxSurge and MaxUnavailable are a custom strategy's numbers or
	// percentages ("25%").
	MaxSurge       string `json:"maxSurge,omitempty"`
	MaxUnavailable string `json:"maxUnavailable,omitempty"`
}

// Build is a build or combined service's git and build settings, kept as
// the API's JSON (protojson of VcsData without its credentials,
// BuildSettings, BuildConfiguration), with its secrets: credentials,
// build arguments and files (sealed at rest with the whole service). The
// builds component reads them through GetBuildSource.
type Build struct {
	BuildPlan     string `json:"buildPlan,omitempty"`
	VcsData       string `json:"vcsData,omitempty"`
	BuildSettings string `json:"buildSettings,omitempty"`
	BuildConfig   string `json:"buildConfiguration,omitempty"`
	// Credentials read a private repository; nil for a public one.
	Credentials *Credentials          `json:"credentials,omitempty"`
	Arguments   map[string]string     `json:"arguments,omitempty"`
	Files       map[string]SecretFile `json:"files,omitempty"`
	DisabledCI  bool                  `json:"disabledCI,omitempty"`
}

// Status is where a service's current rollout is.
type Status struct {
	// Status is a Status* constant; Reason a Reason* one.
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
	// Message says why the last rollout failed.
	Message string    `json:"message,omitempty"`
	At      time.Time `json:"at"`
}

// Service is the stored state of a service.
type Service struct {
	TeamID      string
	ProjectID   string
	ID          string
	Name        string
	Kind        Kind
	Description string
	Tags        []string
	// Plan is the deployment plan id; it sets instances' resources.
	Plan string
	// Deployable is what the next (or current) release runs.
	Deployable Deployable
	StorageMB  int32
	ShmMB      int32
	Instances  int
	Paused     bool
	Strategy   Strategy
	// GraceSeconds is the stop grace period.
	GraceSeconds int
	// Restart increases with every restart request.
	Restart int64
	Build   Build
	// Internal is the build source of a deployment service that deploys
	// another service's builds; nil otherwise (a combined service deploys
	// its own builds of its branch).
	Internal *Internal
	// ReleaseID is the release the service runs (or rolls out);
	// Releases counts the releases made, for the next id.
	ReleaseID string
	Releases  int64
	Status    Status
	// SecretsPrint fingerprints what the project's secret groups gave the
	// instances of the service's current restart generation: when the
	// groups give something else, every instance is restarted with it.
	SecretsPrint string
	CreatedAt    time.Time
	UpdatedAt    time.Time
	// Version increases with every write (optimistic concurrency).
	Version int64
}

// Release is one deployable version of a service.
type Release struct {
	TeamID    string
	ProjectID string
	ServiceID string
	// ID sorts by creation (see releaseID), so lists page by id.
	ID string
	// Cause is what made it ("create", "update", "deployment", "ports",
	// "health-checks", "runtime-environment", "rollback").
	Cause string
	// RolledBackFrom is the release a rollback copied.
	RolledBackFrom string
	// Deployable is fixed at creation; stores keep it encrypted at rest
	// (it holds the environment).
	Deployable Deployable
	// CreatedBy is the caller's principal.
	CreatedBy string
	CreatedAt time.Time
	// Status is PENDING until the controller reports on it, then a
	// Status* constant; Reason says why it failed.
	Status string
	Reason string
}

// LogLine is one stored line of a service's instance.
type LogLine struct {
	TeamID    string
	ProjectID string
	ServiceID string
	// Container is the instance's name.
	Container string
	Time      time.Time
	Stream    string
	Text      string
	// Seq orders lines with the same Time; set by the store on append
	// (increasing across the whole store).
	Seq int64
}

// LogSource is one workload of an instance of a service, whose lines a
// pump stores: the lines are the instance's (Container, its name), the
// count of consumed lines the workload's (a restarted instance keeps its
// name and runs a new workload, whose output starts afresh).
type LogSource struct {
	TeamID, ProjectID, ServiceID, Container string
	Workload                                string
}

// LogCap is how much of its logs a service keeps: its newest lines, at
// most Lines of them and Bytes of text.
type LogCap struct {
	Lines int
	Bytes int64
}

// LogQuery selects a service's stored lines.
type LogQuery struct {
	TeamID, ProjectID, ServiceID string
	// Container, when set, narrows to one instance.
	Container string
	// Lines with Start <= Time < End; zero bounds are open.
	Start, End time.Time
	// Backward reads newest first.
	Backward bool
	// After continues a read past the line with this (Time, Seq).
	AfterTime time.Time
	AfterSeq  int64
	// Limit is the most lines returned (> 0).
	Limit int
}

// Store errors (the shared store contract apierr.FromStore maps).
var (
	// ErrNotFound: the service or release does not exist.
	ErrNotFound = apierr.ErrNotFound
	// ErrAlreadyExists: the service's id is taken in its project.
	ErrAlreadyExists = apierr.ErrAlreadyExists
	// ErrConflict: an update kept losing its race with other writers.
	ErrConflict = apierr.ErrConflict
)

// Store persists services, their releases and their instances' logs,
// each within its team and project. Writes that change state take the
// events announcing them and commit them in the same transaction
// (outbox). Implementations keep environments (Service.Deployable.Env,
// Release.Deployable.Env) encrypted at rest.
type Store interface {
	// CreateService inserts s and its first release r (when r.ID is not
	// empty); ErrAlreadyExists when s's id is taken in the project.
	CreateService(ctx context.Context, s Service, r Release, evs ...events.Event) error
	// GetService returns a service or ErrNotFound.
	GetService(ctx context.Context, team, project, id string) (Service, error)
	// ListServices returns a page of a project's services ordered by id,
	// whether more follow, and how many services the project has.
	ListServices(ctx context.Context, team, project string, page paging.Page) ([]Service, bool, int, error)
	// ProjectServices returns every service of a project.
	ProjectServices(ctx context.Context, team, project string) ([]Service, error)
	// AllServices returns every service of every team (to apply them all
	// when the service starts).
	AllServices(ctx context.Context) ([]Service, error)
	// UpdateService reads the service, lets mutate change it and return
	// a new release to insert (nil for none) and events, and writes both
	// back in one transaction if nobody wrote in between (retrying mutate
	// on a fresh copy otherwise). Nothing is written when mutate changes
	// nothing and returns no release. Returns ErrNotFound, mutate's error
	// or ErrConflict.
	UpdateService(ctx context.Context, team, project, id string, mutate func(*Service) (*Release, []events.Event, error)) (Service, error)
	// DeleteService removes a service with its releases and logs.
	DeleteService(ctx context.Context, team, project, id string, evs ...events.Event) error

	// GetRelease returns a release of a service or ErrNotFound.
	GetRelease(ctx context.Context, team, project, service, id string) (Release, error)
	// ListReleases returns a service's releases newest first (page.After
	// is an id), whether more follow, and how many releases the service
	// has.
	ListReleases(ctx context.Context, team, project, service string, page paging.Page) ([]Release, bool, int, error)
	// SetReleaseStatus sets a release's status and reason, and lets
	// mutate change the service (its status) in the same transaction
	// with evs; ErrNotFound when either is gone.
	SetReleaseStatus(ctx context.Context, team, project, service, id, status, reason string, mutate func(*Service) []events.Event) error

	// AppendLogs stores lines of src in one transaction, drops the
	// service's oldest lines beyond keep, adds read to the count of src's
	// output lines consumed (see LinesRead), and returns the lines with
	// the Seq the store assigned; ErrNotFound (storing nothing) when the
	// service is gone.
	AppendLogs(ctx context.Context, src LogSource, read int, keep LogCap, lines []LogLine) ([]LogLine, error)
	// LinesRead returns how many lines of a workload's output were
	// consumed so far (stored or dropped by the pump), which a pump
	// resuming after a restart of Slipway skips: drivers replay a
	// workload's output from its start.
	LinesRead(ctx context.Context, src LogSource) (int, error)
	// ReadLogs returns up to q.Limit lines in q's direction, ordered by
	// (Time, Seq).
	ReadLogs(ctx context.Context, q LogQuery) ([]LogLine, error)

	// PutBuild records a deployable build; recording it again changes
	// nothing, and a build already marked deleted stays deleted.
	PutBuild(ctx context.Context, b DeployableBuild) error
	// DeleteBuild marks a build deleted (recording it when unknown, so
	// that a later PutBuild of it stays deleted).
	DeleteBuild(ctx context.Context, team, project, service, id string) error
	// GetBuild returns a build, deleted or not, or ErrNotFound.
	GetBuild(ctx context.Context, team, project, service, id string) (DeployableBuild, error)
	// FindBuild returns the newest (by ConcludedAt, then id) build of a
	// service that is not deleted and matches q, or ErrNotFound.
	FindBuild(ctx context.Context, team, project, service string, q BuildQuery) (DeployableBuild, error)
}
