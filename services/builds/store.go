package builds

import (
	"context"
	"time"

	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/paging"
	"github.com/slipwayhq/slipway/services/builds/buildevent"
)

// Errors a Store returns.
var (
	// ErrNotFound: no such build or webhook.
	ErrNotFound = apierr.ErrNotFound
	// ErrConflict: the build is no longer in the state the change expects
	// (it concluded, or another replica took it).
	ErrConflict = apierr.ErrConflict
)

// Build statuses, Northflank's strings. A build goes QUEUED → CLONING →
// BUILDING → UPLOADING → SUCCESS, or ends FAILURE or ABORTED on the way.
const (
	StatusQueued    = "QUEUED"
	StatusCloning   = "CLONING"
	StatusBuilding  = "BUILDING"
	StatusUploading = "UPLOADING"
	StatusSuccess   = "SUCCESS"
	StatusFailure   = "FAILURE"
	StatusAborted   = "ABORTED"
)

// Concluded reports whether status is final.
func Concluded(status string) bool {
	return status == StatusSuccess || status == StatusFailure || status == StatusAborted
}

// Owner kinds: a build is of a service (build or combined) or of a job.
const (
	KindService = "service"
	KindJob     = "job"
)

// Build is one build of a service or a job.
type Build struct {
	TeamID, ProjectID string
	// Kind is KindService or KindJob ("" reads as KindService); ServiceID
	// is the service's or the job's id.
	Kind, ServiceID, ID string
	// Branch and PullRequest are what the build was asked to build (or
	// what the push that started it was to); SHA the exact commit, known
	// at once when asked for, else once cloned.
	Branch      string
	PullRequest int64
	SHA         string
	Status      string
	// Message says what happened, in words a user reads.
	Message string
	// Trigger says who started it: "api", "webhook", "poll" or "create"
	// (the first build of a new combined service or job).
	Trigger string
	// Overrides are the build's own settings (sealed at rest: build
	// arguments may be secrets).
	Overrides Overrides
	// The artifact, once built: an image (docker driver) or an app tree
	// and its start command (process driver). Removed is set once
	// retention (or deletion) removed it.
	Artifact Artifact
	Removed  bool
	// Owner is the replica running it.
	Owner string
	// AbortRequested is set by an abort the running replica has yet to
	// act on.
	AbortRequested bool
	CreatedAt      time.Time
	StartedAt      time.Time
	ConcludedAt    time.Time
}

// Overrides are one build's settings on top of its service's.
type Overrides struct {
	BuildArguments map[string]string `json:"buildArguments,omitempty"`
	DockerFilePath string            `json:"dockerFilePath,omitempty"`
	DockerWorkDir  string            `json:"dockerWorkDir,omitempty"`
	Target         string            `json:"target,omitempty"`
}

// Artifact is what a successful build produced.
type Artifact = buildevent.Artifact

// Transition is a change of a build's status.
type Transition struct {
	Status   string
	Message  string
	SHA      string
	Artifact Artifact
	At       time.Time
}

// LogLine is one stored line of a build.
type LogLine struct {
	TeamID, ProjectID, Kind, ServiceID string
	BuildID                            string    `json:"buildId"`
	Seq                                int64     `json:"seq"`
	Time                               time.Time `json:"ts"`
	Stream                             string    `json:"stream"`
	Text                               string    `json:"text"`
}

// LogQuery selects a service's stored build lines.
type LogQuery struct {
	TeamID, ProjectID, Kind, ServiceID string
	// BuildID, when set, selects one build's lines.
	BuildID string
	// Start and End bound the lines' times (zero: unbounded).
	Start, End time.Time
	// Backward reads newest first.
	Backward bool
	// AfterTime and AfterSeq continue a read after a line.
	AfterTime time.Time
	AfterSeq  int64
	Limit     int
}

// Webhook is a service's push webhook: its id is in the URL, its secret
// signs the events.
type Webhook struct {
	TeamID, ProjectID, Kind, ServiceID string
	ID                                 string
	Secret                             string
}

// Orphan is the artifact of a deleted build that a release still ran
// when the build was deleted.
type Orphan struct {
	BuildID  string
	Artifact Artifact
	Since    time.Time
}

// ServiceKey names the owner of builds: a service, or a job when Kind is
// KindJob ("" reads as KindService).
type ServiceKey struct{ TeamID, ProjectID, Kind, ServiceID string }

// OwnerKind is k's kind, KindService when unset.
func (k ServiceKey) OwnerKind() string { return ownerKind(k.Kind) }

func ownerKind(kind string) string {
	if kind == "" {
		return KindService
	}
	return kind
}

// Store keeps builds, their logs, webhooks, seen deliveries and the
// poller's view of remotes. Every status change is written with its
// builds.build.<verb> event in one transaction.
type Store interface {
	// CreateBuild stores a new QUEUED build (with its queued event).
	CreateBuild(ctx context.Context, b Build) (Build, error)
	// GetBuild returns a build (ErrNotFound).
	GetBuild(ctx context.Context, k ServiceKey, id string) (Build, error)
	// ListBuilds returns a page of a service's (or job's) builds, newest
	// first, whether more follow, and how many builds it has.
	ListBuilds(ctx context.Context, k ServiceKey, page paging.Page) ([]Build, bool, int, error)
	// Claim takes the oldest QUEUED build for owner, setting it CLONING
	// (with its started event); ok is false when none is queued.
	Claim(ctx context.Context, owner string, at time.Time) (b Build, ok bool, err error)
	// Transition moves a build that is not concluded to t.Status (with
	// the event of that status); ErrConflict when it has concluded.
	Transition(ctx context.Context, b Build, t Transition) (Build, error)
	// RequestAbort aborts a QUEUED build at once (returning it ABORTED) or
	// marks a running one for its owner to stop; ErrConflict when it has
	// concluded.
	RequestAbort(ctx context.Context, k ServiceKey, id string, at time.Time) (Build, error)
	// Running returns the builds not concluded and not QUEUED whose owner
	// is owner (all owners when owner is empty).
	Running(ctx context.Context, owner string) ([]Build, error)
	// Expired returns successful builds with an artifact beyond the newest
	// keep of their service, oldest first.
	Expired(ctx context.Context, keep int) ([]Build, error)
	// RemoveArtifact marks a build's artifact removed (with its deleted
	// event).
	RemoveArtifact(ctx context.Context, b Build) error
	// DeleteService deletes a service's builds, logs, webhook and poll
	// state, returning the builds that had artifacts (a deleted event for
	// each).
	DeleteService(ctx context.Context, k ServiceKey) ([]Build, error)
	// AddOrphan keeps the artifact of a deleted build that a release still
	// runs, to remove once nothing runs it (a second call is a no-op).
	AddOrphan(ctx context.Context, o Orphan) error
	// Orphans returns the artifacts waiting to be removed, oldest first.
	Orphans(ctx context.Context) ([]Orphan, error)
	// DeleteOrphan forgets a removed orphan.
	DeleteOrphan(ctx context.Context, buildID string) error
	// ProjectServices returns the services and jobs of a project that
	// have builds or a webhook.
	ProjectServices(ctx context.Context, team, project string) ([]ServiceKey, error)

	// AppendLogs stores lines of a build (setting their Seq), keeping at
	// most maxLines per build: past it they are counted, not stored.
	AppendLogs(ctx context.Context, b Build, lines []LogLine, maxLines int) ([]LogLine, error)
	// ReadLogs returns stored lines q selects.
	ReadLogs(ctx context.Context, q LogQuery) ([]LogLine, error)

	// Webhook returns a service's webhook, creating it with newSecret
	// when it has none.
	Webhook(ctx context.Context, k ServiceKey, newID, newSecret string) (Webhook, error)
	// RotateWebhook replaces a service's webhook secret.
	RotateWebhook(ctx context.Context, k ServiceKey, newID, newSecret string) (Webhook, error)
	// WebhookByID returns the webhook with id (ErrNotFound).
	WebhookByID(ctx context.Context, id string) (Webhook, error)
	// SeeDelivery records a delivery id of a webhook; first is false when
	// it was seen before (a replay). Ids older than before are forgotten.
	SeeDelivery(ctx context.Context, webhookID, deliveryID string, at, before time.Time) (first bool, err error)
	// ForgetDelivery forgets a delivery id SeeDelivery recorded, so that
	// a delivery whose handling failed after it was seen is handled when
	// it comes again.
	ForgetDelivery(ctx context.Context, webhookID, deliveryID string) error

	// PollState returns the heads the poller last saw of a service's
	// remote (ref name → sha).
	PollState(ctx context.Context, k ServiceKey) (map[string]string, error)
	// SetPollState replaces them.
	SetPollState(ctx context.Context, k ServiceKey, heads map[string]string) error

	// TakeLease takes the lease name for owner until until, or renews it,
	// in one atomic step: it is taken when nobody holds it, when owner
	// does, or when its holder's time has run out at now. held reports
	// whether owner holds it afterwards; of replicas taking it at once,
	// one holds it.
	TakeLease(ctx context.Context, name, owner string, now, until time.Time) (held bool, err error)
}
