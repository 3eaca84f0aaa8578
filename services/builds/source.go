package builds

import (
	"context"
	"time"

	"github.com/slipwayhq/slipway/pkg/runtime"
	"github.com/slipwayhq/slipway/pkg/vcs"
)

// Source is what a service (or a job) builds, as the deployments service
// (the registry of services) or the jobs service keeps it. Credentials and Args are secrets: they
// live in memory for the length of a build and are never stored here,
// logged or put in an event.
type Source struct {
	ServiceKey
	// Kind is the service's type, "build" or "combined", or "job" for a
	// job (ServiceKey.Kind is then KindJob).
	Kind string
	// URL is the repository; Branch the service's own branch (a combined
	// service builds only it; a build service builds any branch its
	// restrictions allow, and Branch is the default).
	URL         string
	Credentials Credentials
	Branch      string
	// Exactly one of Dockerfile and Buildpack is set.
	Dockerfile *Dockerfile
	Buildpack  *Buildpack
	Config     Config
	Args       map[string]string
	// DisabledCI: pushes do not build (manual builds still do).
	DisabledCI bool
	// Resources are the build plan's limits.
	Resources runtime.Resources
}

// Credentials reach a private repository: Slipway's one model of them
// (vcsData.credentials), which the builder takes as they are.
type Credentials = vcs.Credentials

// Dockerfile says where a Dockerfile build finds its Dockerfile.
type Dockerfile struct {
	// Path is the Dockerfile's path in the repository ("/Dockerfile");
	// WorkDir the build context's ("/").
	Path, WorkDir string
}

// Buildpack says where a buildpack build finds the app.
type Buildpack struct {
	// Context is the app's directory in the repository ("/").
	Context string
}

// Config is a service's buildConfiguration.
type Config struct {
	BranchRestrictions   []string
	PRRestrictions       []string
	PathIgnoreRules      []string
	IsAllowList          bool
	CIIgnoreFlagsEnabled bool
	CIIgnoreFlags        []string
	DockerfileTarget     string
	IncludeGitFolder     bool
	FullGitClone         bool
	EnableGitLFS         bool
}

// Sources reads build sources: services' from the deployments service,
// jobs' from the jobs service (by the key's kind).
type Sources interface {
	// Source returns a service's (or job's) source: apierr NotFound when
	// there is no such service, FailedPrecondition when it does not build.
	Source(ctx context.Context, k ServiceKey) (Source, error)
	// All returns every service and job that builds, for the poller.
	All(ctx context.Context) ([]Source, error)
}

// Job is one build for the engine: the service's source with the
// build's commit and overrides applied.
type Job struct {
	Build  Build
	Source Source
	// Log receives the build's output, a line at a time.
	Log func(stream, line string)
	// Phase is called as the build moves on (StatusBuilding,
	// StatusUploading).
	Phase func(status string)
	// Timeout bounds the whole build.
	Timeout time.Duration
}

// Output is what a successful build made.
type Output struct {
	SHA      string
	Artifact Artifact
}

// Ref is a branch or pull request head on a remote.
type Ref struct {
	// Name is the branch name (empty for a pull request).
	Name        string
	SHA         string
	PullRequest int64
	// Ref is the full ref name on the remote (refs/heads/main,
	// refs/pull/3/head), to fetch the head by name.
	Ref string
}

// Engine clones and builds (services/builds/builder does it for real).
type Engine interface {
	// Build builds job; its error says why in words a user reads (no
	// internals, no credentials).
	Build(ctx context.Context, job Job) (Output, error)
	// Refs lists the remote's branches and pull requests.
	Refs(ctx context.Context, src Source) ([]Ref, error)
	// Messages reads the commit messages of heads Refs listed, by SHA; a
	// head whose commit could not be read (it moved meanwhile) is
	// missing.
	Messages(ctx context.Context, src Source, heads []Ref) (map[string]string, error)
	// Remove removes an artifact.
	Remove(ctx context.Context, a Artifact) error
	// RemoveUnused removes an artifact unless a workload still uses it
	// (an image a container runs), which is then an error: retention
	// tries again later.
	RemoveUnused(ctx context.Context, a Artifact) error
	// ResetCache clears a service's build cache.
	ResetCache(ctx context.Context, k ServiceKey) error
	// Discard removes what a build interrupted by a crash left running
	// or on disk.
	Discard(ctx context.Context, b Build) error
}
