package jobs

import (
	"context"
	"time"

	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/overrides"
	"github.com/slipwayhq/slipway/pkg/paging"
	"github.com/slipwayhq/slipway/pkg/vcs"
)

// Type is a job's type.
type Type string

// Job types.
const (
	TypeManual Type = "manual"
	TypeCron   Type = "cron"
)

// Concurrency policies of cron jobs (Kubernetes' CronJob semantics).
const (
	PolicyAllow   = "allow"
	PolicyForbid  = "forbid"
	PolicyReplace = "replace"
)

// Deployment is what a job (or one run of it) runs.
type Deployment struct {
	// Image to run; empty runs Command as a local process.
	Image string `json:"image,omitempty"`
	// ConfigType is Northflank's docker override type: "default",
	// "customEntrypoint", "customCommand", "customEntrypointCustomCommand".
	ConfigType       string `json:"configType,omitempty"`
	CustomEntrypoint string `json:"customEntrypoint,omitempty"`
	CustomCommand    string `json:"customCommand,omitempty"`
	// StorageMB and ShmMB are the ephemeral disk and /dev/shm sizes.
	StorageMB int32 `json:"storageMB,omitempty"`
	ShmMB     int32 `json:"shmMB,omitempty"`
	// Internal, when set, is a build service's build the job runs
	// (deployment.internal).
	Internal *InternalRef `json:"internal,omitempty"`
}

// InternalRef names a build of a build or combined service of the job's
// project: ID exactly, else a commit (SHA or a prefix of it: its newest
// build), else the newest build of Branch ("latest").
type InternalRef struct {
	Service  string `json:"service"`
	Branch   string `json:"branch,omitempty"`
	BuildSHA string `json:"buildSHA,omitempty"`
	BuildID  string `json:"buildId,omitempty"`
}

// Overrides is what the deployment runs, for pkg/overrides.
func (d Deployment) Overrides() overrides.Overrides {
	return overrides.Overrides{Image: d.Image, ConfigType: d.ConfigType, CustomEntrypoint: d.CustomEntrypoint, CustomCommand: d.CustomCommand}
}

// Job is the stored state of a job.
type Job struct {
	TeamID      string
	ProjectID   string
	ID          string
	Name        string
	Description string
	Tags        []string
	Type        Type
	// Plan is the deployment plan id; it sets runs' resource limits.
	Plan       string
	Deployment Deployment
	// Env is the runtime environment. Stores keep it encrypted at rest.
	Env                   map[string]string
	BackoffLimit          int32
	ActiveDeadlineSeconds int64 // 0: none
	RunOnSourceChange     string
	// Cron jobs only.
	Schedule          string
	ConcurrencyPolicy string
	Suspended         bool
	// NextRunAt is when a cron job's schedule fires next; zero when it
	// does not (manual, suspended, or no schedule).
	NextRunAt time.Time
	// Build, when set, is the git source the job builds from: its runs run
	// the newest successful build of its branch. Stores keep it encrypted
	// at rest (credentials and build arguments are secrets).
	Build     *Build
	CreatedAt time.Time
	UpdatedAt time.Time
	// Version increases with every write (optimistic concurrency).
	Version int64
}

// Build is how a job builds from git: the API's JSON of its repository
// (without credentials), build engine and options, as the deployments
// service keeps a combined service's.
type Build struct {
	VcsData       string `json:"vcsData"`
	BuildSettings string `json:"buildSettings"`
	BuildConfig   string `json:"buildConfiguration,omitempty"`
	BuildPlan     string `json:"buildPlan,omitempty"`
	// Credentials read a private repository; nil for a public one.
	Credentials *vcs.Credentials  `json:"credentials,omitempty"`
	Arguments   map[string]string `json:"arguments,omitempty"`
	// DisabledCI: pushes do not build (builds started through the API
	// still do).
	DisabledCI bool `json:"disabledCI,omitempty"`
}

// JobBuild is a successful build, as the builds component announced it,
// that runs of a job may run: one of the job's own (JobID set) or of a
// build or combined service of its project (ServiceID set; jobs with
// deployment.internal).
type JobBuild struct {
	TeamID, ProjectID, JobID string
	ServiceID                string
	ID                       string
	Branch, SHA              string
	// Image (docker driver) or Path and Command (process driver).
	Image       string
	Path        string
	Command     []string
	ConcludedAt time.Time
}

// Artifact is the build a run runs (in its RunSpec).
type Artifact struct {
	BuildID string   `json:"buildId"`
	SHA     string   `json:"sha,omitempty"`
	Image   string   `json:"image,omitempty"`
	Path    string   `json:"path,omitempty"`
	Command []string `json:"command,omitempty"`
}

// RunStatus is where a run is.
type RunStatus string

// Run statuses, Northflank's.
const (
	RunRunning RunStatus = "RUNNING"
	RunSuccess RunStatus = "SUCCESS"
	RunFailed  RunStatus = "FAILED"
)

// Reasons a run failed.
const (
	ReasonError    = "Error"            // an attempt exited non-zero and no retry was left
	ReasonDeadline = "DeadlineExceeded" // activeDeadlineSeconds passed
	ReasonAborted  = "Aborted"          // DELETE .../runs/{runId}, a replace tick, or the job's deletion
	ReasonLost     = "Lost"             // the runtime lost the workload and no retry was left
	ReasonStart    = "StartFailed"      // the runtime refused to start it
)

// RunSpec is what every attempt of a run starts: the job's settings with
// the run's overrides applied, fixed when the run is created.
type RunSpec struct {
	Deployment Deployment        `json:"deployment"`
	Env        map[string]string `json:"env,omitempty"`
	Plan       string            `json:"plan,omitempty"`
	MilliCPU   int64             `json:"milliCPU,omitempty"`
	MemoryMB   int64             `json:"memoryMB,omitempty"`
	// Artifact, for a job that builds from git, is the build the run runs.
	Artifact *Artifact `json:"artifact,omitempty"`
	// Files are the secret groups' files by the path the run sees them
	// at (base64 content), and AddonMounts the socket directories of the
	// addons its groups link: both resolved when the run was made, like
	// Env, which already holds the groups' variables.
	Files       map[string]RunFile `json:"files,omitempty"`
	AddonMounts []AddonMount       `json:"addonMounts,omitempty"`
}

// RunFile is a secret file's content, base64.
type RunFile struct {
	Data string `json:"data"`
}

// AddonMount is a linked addon's socket directory (Source, on the host)
// and where the run sees it, read-only.
type AddonMount struct {
	Source string `json:"source"`
	Target string `json:"target"`
}

// Run is the stored state of a run.
type Run struct {
	TeamID    string
	ProjectID string
	JobID     string
	// ID sorts by creation time (newest last), so lists page by id.
	ID     string
	Name   string
	Status RunStatus
	Reason string
	// Spec is fixed at creation; stores keep it encrypted at rest (it
	// holds the environment).
	Spec         RunSpec
	BackoffLimit int32
	// Attempts counts attempts started; Failed those that failed.
	Attempts  int32
	Failed    int32
	Succeeded int32
	// Active is whether an attempt is running now (WorkloadID names it).
	Active     bool
	WorkloadID string
	ExitCode   *int32
	// Deadline, when not zero, is when the run is killed.
	Deadline time.Time
	// RetryAt, when not zero, is when the next attempt starts.
	RetryAt time.Time
	// Owner is the jobs replica supervising the run; LeaseUntil is when
	// another replica may take it over (the owner renews it while alive).
	Owner       string
	LeaseUntil  time.Time
	StartedAt   time.Time
	ConcludedAt time.Time
	Version     int64
}

// Concluded reports whether the run has ended.
func (r Run) Concluded() bool { return r.Status != RunRunning }

// LogLine is one stored line of a run.
type LogLine struct {
	TeamID    string
	ProjectID string
	JobID     string
	RunID     string
	// Container is "<runName>-<attempt>".
	Container string
	Time      time.Time
	Stream    string
	Text      string
	// Seq orders lines with the same Time; set by the store on append
	// (increasing across the whole store).
	Seq int64
}

// LogQuery selects a job's stored lines.
type LogQuery struct {
	TeamID, ProjectID, JobID string
	// RunID and Container, when set, narrow to one run or container.
	RunID     string
	Container string
	// Lines with Start <= Time < End; zero bounds are open.
	Start, End time.Time
	// Backward reads newest first.
	Backward bool
	// After continues a read past the line with this (Time, Seq), in the
	// read's direction; zero starts at the beginning (or end).
	AfterTime time.Time
	AfterSeq  int64
	// Limit is the most lines returned (> 0).
	Limit int
}

// Store errors: the store contract every service shares, which
// apierr.FromStore maps. Implementations return them (possibly wrapped);
// they keep their names here so a store's contract reads on its own.
var (
	// ErrNotFound: the job or run (or, for a new run, its job) does not
	// exist.
	ErrNotFound = apierr.ErrNotFound
	// ErrAlreadyExists: the job's or run's id is taken.
	ErrAlreadyExists = apierr.ErrAlreadyExists
	// ErrConflict: an update kept losing its race with other writers.
	ErrConflict = apierr.ErrConflict
)

// Store persists jobs, runs and run logs, each within its team and
// project. Writes that change state take the events announcing them and
// commit them in the same transaction (outbox). Implementations keep
// environments (Job.Env, Run.Spec) encrypted at rest.
type Store interface {
	// CreateJob inserts j; ErrAlreadyExists when its id is taken in the
	// project.
	CreateJob(ctx context.Context, j Job, evs ...events.Event) error
	// GetJob returns a job or ErrNotFound.
	GetJob(ctx context.Context, team, project, id string) (Job, error)
	// ListJobs returns a page of a project's jobs ordered by id, whether
	// more follow, and how many jobs the project has.
	ListJobs(ctx context.Context, team, project string, page paging.Page) ([]Job, bool, int, error)
	// ProjectJobs returns every job of a project.
	ProjectJobs(ctx context.Context, team, project string) ([]Job, error)
	// UpdateJob reads the job, lets mutate change it and return events,
	// and writes it back if nobody wrote in between (retrying mutate on a
	// fresh copy otherwise). Nothing is written when mutate changes
	// nothing. Returns ErrNotFound, mutate's error or ErrConflict.
	UpdateJob(ctx context.Context, team, project, id string, mutate func(*Job) ([]events.Event, error)) (Job, error)
	// BuildingJobs returns every job that builds from git (Build set),
	// across all teams, ordered by team, project and id.
	BuildingJobs(ctx context.Context) ([]Job, error)
	// DeleteJob removes a job with its runs, logs and recorded builds.
	DeleteJob(ctx context.Context, team, project, id string, evs ...events.Event) error

	// DueCronJobs returns cron jobs whose NextRunAt is set and not after
	// now, across all teams.
	DueCronJobs(ctx context.Context, now time.Time, limit int) ([]Job, error)
	// ClaimTick moves a cron job's NextRunAt from due to next if it is
	// still due, and reports whether this caller moved it: of several
	// replicas racing for one tick exactly one gets true.
	ClaimTick(ctx context.Context, team, project, id string, due, next time.Time) (bool, error)

	// CreateRun inserts r.
	CreateRun(ctx context.Context, r Run, evs ...events.Event) error
	// GetRun returns a run of a job or ErrNotFound.
	GetRun(ctx context.Context, team, project, job, id string) (Run, error)
	// ListRuns returns a job's runs newest first (by id, descending;
	// page.After is an id), whether more follow, and how many runs the job
	// has.
	ListRuns(ctx context.Context, team, project, job string, page paging.Page) ([]Run, bool, int, error)
	// ActiveRuns returns a job's runs that have not concluded.
	ActiveRuns(ctx context.Context, team, project, job string) ([]Run, error)
	// UpdateRun is UpdateJob for a run.
	UpdateRun(ctx context.Context, team, project, job, id string, mutate func(*Run) ([]events.Event, error)) (Run, error)
	// OrphanedRuns returns unconcluded runs that owner must supervise:
	// its own, and those whose owner's lease expired before now.
	OrphanedRuns(ctx context.Context, owner string, now time.Time) ([]Run, error)
	// RenewLeases extends the lease of every unconcluded run owner holds.
	RenewLeases(ctx context.Context, owner string, until time.Time) error

	// PutJobBuild records a successful build of a job, once (a repeat is
	// a no-op); nothing is recorded when the job does not exist (it was
	// deleted meanwhile).
	PutJobBuild(ctx context.Context, b JobBuild) error
	// DeleteJobBuild forgets a build (its artifact was removed).
	DeleteJobBuild(ctx context.Context, team, project, job, id string) error
	// LatestJobBuild returns the newest recorded build of a job's branch,
	// or ErrNotFound.
	LatestJobBuild(ctx context.Context, team, project, job, branch string) (JobBuild, error)
	// PutServiceBuild records a successful build of a service (once).
	PutServiceBuild(ctx context.Context, b JobBuild) error
	// DeleteServiceBuild forgets a service's build.
	DeleteServiceBuild(ctx context.Context, team, project, service, id string) error
	// FindServiceBuild returns the build of a service ref names, or
	// ErrNotFound.
	FindServiceBuild(ctx context.Context, team, project string, ref InternalRef) (JobBuild, error)

	// AppendLogs stores lines in one transaction and returns them with
	// the Seq the store assigned.
	AppendLogs(ctx context.Context, lines []LogLine) ([]LogLine, error)
	// ReadLogs returns up to q.Limit lines in q's direction, ordered by
	// (Time, Seq).
	ReadLogs(ctx context.Context, q LogQuery) ([]LogLine, error)
}
