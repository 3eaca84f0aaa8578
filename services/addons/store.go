package addons

import (
	"context"
	"time"

	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/paging"
)

// The store's sentinels are apierr's (the store contract every service
// shares); the aliases keep call sites short.
var (
	ErrNotFound      = apierr.ErrNotFound
	ErrAlreadyExists = apierr.ErrAlreadyExists
	ErrConflict      = apierr.ErrConflict
)

// Addon statuses (Northflank's strings) this service uses.
const (
	StatusPreDeployment = "preDeployment"
	StatusRunning       = "running"
	StatusPaused        = "paused"
	StatusBackup        = "backup"
	StatusRestore       = "restore"
	StatusUpgrading     = "upgrading"
	StatusResetting     = "resetting"
	StatusFailed        = "failed"
	StatusDeleting      = "deleting"
)

// Backup and restore statuses (Northflank's strings).
const (
	JobScheduled  = "scheduled"
	JobInProgress = "in-progress"
	JobCompleted  = "completed"
	JobAborting   = "aborting"
	JobAborted    = "aborted"
	JobFailed     = "failed"
)

// Verification statuses (a Slipway extension).
const (
	VerifyPending  = "pending"
	VerifyVerified = "verified"
	VerifyFailed   = "failed"
)

// Settings are an addon's client-set settings, kept as one JSON column
// because they are read and written together.
type Settings struct {
	Description  string     `json:"description,omitempty"`
	Tags         []string   `json:"tags,omitempty"`
	StageID      string     `json:"stageId,omitempty"`
	Version      string     `json:"version"`
	Plan         string     `json:"plan"`
	StorageMB    int        `json:"storageMB"`
	Replicas     int        `json:"replicas"`
	TLS          bool       `json:"tls,omitempty"`
	External     bool       `json:"external,omitempty"`
	DBName       string     `json:"dbName,omitempty"`
	Source       *Source    `json:"source,omitempty"`
	VersionLog   []Upgrade  `json:"versionLog,omitempty"`
	Architecture string     `json:"architecture,omitempty"`
	Extra        *ExtraJSON `json:"extra,omitempty"`
}

// ExtraJSON keeps the settings Slipway accepts for compatibility and
// gives back unchanged (typeSpecificSettings, metadata), as JSON text.
type ExtraJSON struct {
	TypeSpecific string `json:"typeSpecific,omitempty"`
	Metadata     string `json:"metadata,omitempty"`
}

// Source is the backup an addon was forked from.
type Source struct {
	ProjectID string `json:"projectId"`
	AddonID   string `json:"addonId"`
	BackupID  string `json:"backupId"`
}

// Upgrade is one version change of an addon.
type Upgrade struct {
	ID          string    `json:"id"`
	Status      string    `json:"status"`
	Type        string    `json:"type"`
	From        string    `json:"from"`
	To          string    `json:"to"`
	CreatedAt   time.Time `json:"createdAt"`
	CompletedAt time.Time `json:"completedAt"`
}

// Credentials are an addon's generated secrets; sealed at rest.
type Credentials struct {
	AdminUser     string `json:"adminUser"`
	AdminPassword string `json:"adminPassword"`
	User          string `json:"user"`
	Password      string `json:"password"`
}

// Addon is a stored addon.
type Addon struct {
	TeamID, ProjectID, ID string
	// InternalID names the addon's data directory and workload labels; it
	// never changes and is never reused, so a recreated addon of the same
	// name never meets the old one's data.
	InternalID    string
	Name          string
	Type          string
	Settings      Settings
	Status        string
	StatusMessage string
	Credentials   Credentials
	CreatedAt     time.Time
	UpdatedAt     time.Time
	// Version counts updates (optimistic concurrency): UpdateAddon
	// writes only over the version it read.
	Version int64
}

// Verification is what checking a backup found.
type Verification struct {
	Status     string         `json:"status"`
	Result     map[string]any `json:"result,omitempty"`
	Message    string         `json:"message,omitempty"`
	VerifiedAt time.Time      `json:"verifiedAt"`
	// Source is the addon's own check taken before the backup and, under
	// "after", the one taken after it when the addon changed meanwhile
	// (sourceCheckMap): the restored copy's check must equal the first,
	// or lie between the two.
	Source map[string]any `json:"source,omitempty"`
}

// Backup is a stored backup.
type Backup struct {
	TeamID, ProjectID, AddonID, ID string
	Name                           string
	// Type is "dump" or "snapshot"; Compression "gz" or "zstd" (dumps).
	Type, Compression string
	// SourceType: "sameAddon" (a dump taken of the addon), "snapshot",
	// "externalDump" (imported).
	SourceType    string
	Status        string
	StatusMessage string
	Size          int64
	// Checksum is the SHA-256 of the stored file, hex.
	Checksum      string
	AddonType     string
	AddonVersion  string
	DestinationID string
	// Key names the stored file in its destination.
	Key          string
	ScheduleID   string
	Retained     bool
	ExpiresAt    time.Time
	Verification Verification
	CreatedAt    time.Time
	CompletedAt  time.Time
	Version      int64
}

// Restore is a stored restore into an addon.
type Restore struct {
	TeamID, ProjectID, AddonID, ID string
	// The backup restored (possibly another addon's of the same team).
	BackupProjectID, BackupAddonID, BackupID string
	Status                                   string
	StatusMessage                            string
	CreatedAt, CompletedAt                   time.Time
	Version                                  int64
}

// Schedule is a stored backup schedule.
type Schedule struct {
	TeamID, ProjectID, AddonID, ID string
	// Interval is "hourly", "daily" or "weekly".
	Interval string
	// Minute, Hour and Day are Northflank's lists (Day 0 = Monday).
	Minute, Hour, Day []int
	BackupType        string
	Compression       string
	DestinationID     string
	RetentionDays     int
	// Status is "ok" or "failed" (its last run could not happen);
	// StatusMessage says why.
	Status, StatusMessage string
	LastRunAt, NextRunAt  time.Time
	CreatedAt, UpdatedAt  time.Time
}

// LogKind says what a log line belongs to.
type LogKind string

// The log kinds.
const (
	LogAddon   LogKind = "addon"
	LogBackup  LogKind = "backup"
	LogRestore LogKind = "restore"
)

// LogLine is one stored log line.
type LogLine struct {
	TeamID, ProjectID, AddonID string
	Kind                       LogKind
	// Ref is the backup or restore id (empty for the addon's own lines).
	Ref       string
	Seq       int64
	Time      time.Time
	Container string
	Stream    string
	Text      string
}

// LogQuery selects stored lines of one addon, backup or restore.
type LogQuery struct {
	TeamID, ProjectID, AddonID string
	Kind                       LogKind
	Ref                        string
	Container                  string
	// Start and End bound the time (End exclusive; zero: unbounded).
	Start, End time.Time
	// After continues from a line (exclusive), in the query's direction.
	AfterTime time.Time
	AfterSeq  int64
	Backward  bool
	Limit     int
}

// Store persists addons, backups, restores, schedules and log lines.
//
// Contract (storetest checks it on every engine): writes that carry
// events write them in the same transaction; Get* of a missing row is
// ErrNotFound; a create whose key exists is ErrAlreadyExists (for a
// schedule, also one with the same interval and backup type); Update*
// with a mutate callback retries on a lost race and stores Version+1,
// and ErrConflict means it kept losing. Deleting an addon deletes its backups, restores,
// schedules and log lines.
type Store interface {
	CreateAddon(ctx context.Context, a Addon, schedules []Schedule, evs ...events.Event) error
	GetAddon(ctx context.Context, team, project, id string) (Addon, error)
	// ListAddons returns a page of a project's addons ordered by id,
	// whether more follow, and how many addons the project has.
	ListAddons(ctx context.Context, team, project string, page paging.Page) ([]Addon, bool, int, error)
	// ProjectAddons is every addon of a project; AllAddons every addon.
	ProjectAddons(ctx context.Context, team, project string) ([]Addon, error)
	AllAddons(ctx context.Context) ([]Addon, error)
	// UpdateAddon reads an addon, lets mutate change it and writes it with
	// the events mutate returns, retrying when another writer came first;
	// an error from mutate is returned as it is and nothing is written.
	UpdateAddon(ctx context.Context, team, project, id string, mutate func(*Addon) ([]events.Event, error)) (Addon, error)
	DeleteAddon(ctx context.Context, team, project, id string, evs ...events.Event) error

	CreateBackup(ctx context.Context, b Backup, evs ...events.Event) error
	GetBackup(ctx context.Context, team, project, addon, id string) (Backup, error)
	// ListBackups pages through an addon's backups, newest (highest id)
	// first; it also says whether more follow and how many the addon has.
	ListBackups(ctx context.Context, team, project, addon string, page paging.Page) ([]Backup, bool, int, error)
	// AddonBackups is every backup of an addon.
	AddonBackups(ctx context.Context, team, project, addon string) ([]Backup, error)
	// ActiveBackups are the backups of every addon not yet concluded
	// (scheduled, in-progress, aborting) or whose verification is pending.
	ActiveBackups(ctx context.Context) ([]Backup, error)
	// DestinationBackups pages through a team's backups stored in a
	// backup destination, ordered by "<project>/<addon>/<id>", which
	// page.After is of the last one; it also says whether more follow and
	// how many backups of the team the destination holds.
	DestinationBackups(ctx context.Context, team, destination string, page paging.Page) ([]Backup, bool, int, error)
	// ExpiredBackups are the unretained backups whose ExpiresAt is set and
	// not after now.
	ExpiredBackups(ctx context.Context, now time.Time) ([]Backup, error)
	// UpdateBackup is UpdateAddon for a backup.
	UpdateBackup(ctx context.Context, team, project, addon, id string, mutate func(*Backup) ([]events.Event, error)) (Backup, error)
	DeleteBackup(ctx context.Context, team, project, addon, id string, evs ...events.Event) error

	CreateRestore(ctx context.Context, r Restore, evs ...events.Event) error
	GetRestore(ctx context.Context, team, project, addon, id string) (Restore, error)
	// ListRestores pages through an addon's restores, newest first; with
	// backup set, only those of that backup (of backupAddon in
	// backupProject); it also says whether more follow and how many
	// restores the list (backup applied) holds.
	ListRestores(ctx context.Context, team, project, addon string, backup *BackupRef, page paging.Page) ([]Restore, bool, int, error)
	// ActiveRestores are the restores of every addon not yet concluded.
	ActiveRestores(ctx context.Context) ([]Restore, error)
	// LastRestore is the newest restore of a backup, in any addon of the
	// team; ErrNotFound when it was never restored.
	LastRestore(ctx context.Context, team string, backup BackupRef) (Restore, error)
	// UpdateRestore is UpdateAddon for a restore.
	UpdateRestore(ctx context.Context, team, project, addon, id string, mutate func(*Restore) ([]events.Event, error)) (Restore, error)

	CreateSchedule(ctx context.Context, s Schedule, evs ...events.Event) error
	// ListSchedules returns a page of an addon's backup schedules ordered
	// by id, whether more follow, and how many the addon has.
	ListSchedules(ctx context.Context, team, project, addon string, page paging.Page) ([]Schedule, bool, int, error)
	// AddonSchedules is every schedule of an addon; AllSchedules every
	// schedule.
	AddonSchedules(ctx context.Context, team, project, addon string) ([]Schedule, error)
	AllSchedules(ctx context.Context) ([]Schedule, error)
	// ReplaceSchedules replaces an addon's schedules with list.
	ReplaceSchedules(ctx context.Context, team, project, addon string, list []Schedule, evs ...events.Event) error
	// UpdateSchedule stores a schedule's status and run times (the
	// last writer wins: only the scheduler writes them).
	UpdateSchedule(ctx context.Context, s Schedule, evs ...events.Event) error
	DeleteSchedule(ctx context.Context, team, project, addon, id string, evs ...events.Event) error

	// AppendLogs stores lines (their Seq is assigned) and returns them.
	AppendLogs(ctx context.Context, lines []LogLine) ([]LogLine, error)
	// ReadLogs returns up to q.Limit lines q selects, in its direction.
	ReadLogs(ctx context.Context, q LogQuery) ([]LogLine, error)
}

// BackupRef names a backup of a team's addon.
type BackupRef struct {
	ProjectID, AddonID, ID string
}
