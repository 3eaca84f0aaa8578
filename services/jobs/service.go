// Package jobs is the jobs service: manual and cron jobs, their runs on
// the workload runtime (pkg/runtime), and the runs' logs.
//
// A run belongs to the replica that supervises it (its owner, renewing a
// lease in the database). A replica that restarts takes its runs back at
// once; runs of a replica that died are taken over when its lease expires.
// Either way each run is reconciled with the runtime: the outcome of a
// workload that finished meanwhile is recorded, one still running is
// watched again, and a lost one counts as a failed attempt.
package jobs

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	addonsv1 "github.com/slipwayhq/slipway/gen/slipway/addons/v1"
	jobsv1 "github.com/slipwayhq/slipway/gen/slipway/jobs/v1"
	projectsv1 "github.com/slipwayhq/slipway/gen/slipway/projects/v1"
	"github.com/slipwayhq/slipway/pkg/catalog"
	"github.com/slipwayhq/slipway/pkg/paging"
	"github.com/slipwayhq/slipway/pkg/runtime"
)

// Options configure New.
type Options struct {
	// Store persists jobs, runs and logs.
	Store Store
	// Driver runs the workloads.
	Driver runtime.Driver
	// Projects answers whether a project exists; Internal marks a context
	// for an internal call (authz.Authorizer.Internal).
	Projects projectsv1.ProjectsServiceClient
	Internal func(context.Context) context.Context
	// Catalog gives plans their CPU and memory.
	Catalog *catalog.Catalog
	// NATS carries live log lines and abort requests between replicas.
	NATS *nats.Conn
	// Owner identifies this replica; it must be stable across restarts of
	// the same replica so that it takes its runs back at once.
	Owner  string
	Logger *slog.Logger
	// LeaseTTL is how long a replica's runs stay its own without renewal
	// (default 30 s); RetryBackoff is the delay before the first retry of a
	// failed attempt, doubling per retry up to 1 minute (default 1 s).
	LeaseTTL     time.Duration
	RetryBackoff time.Duration
	// LogLines and LogBytes cap the log lines a run stores (all its
	// attempts together; DefaultLogLines and DefaultLogBytes when zero):
	// past either, lines are counted, not stored, and one last line of the
	// attempt says how many were dropped.
	LogLines int
	LogBytes int64
	// LogDrainIdle is how long the logs of an exited workload are still
	// read while that makes no progress (no line from the runtime, no
	// batch stored; default 30 s): as long as it does, an attempt is
	// recorded only once its lines are all stored.
	LogDrainIdle time.Duration
	// Clock is for tests; time.Now by default.
	Clock func() time.Time
	// Cursors seal the list cursors; nil: under a random key, read back
	// only by this service until it stops (tests).
	Cursors *paging.Cursors
	// Secrets resolves what the project's secret groups give a run (the
	// addons component's SecretsService); nil: runs get no secret groups.
	Secrets addonsv1.SecretsServiceClient
	// FilesDir is the host directory under which each attempt's secret
	// files are laid out for its mounts (the data directory's
	// "jobs-files" in a component); required when Secrets is set.
	FilesDir string
}

// Service is the jobs service: its gRPC API, the run supervisor and the
// cron scheduler.
type Service struct {
	jobsv1.UnimplementedJobsServiceServer
	opts  Options
	store Store
	log   *slog.Logger

	mu sync.Mutex
	// supervised are the runs this replica is watching, by run key.
	supervised map[string]*supervision
	// ctx is the service's lifetime (set by Run); supervisors run in it.
	ctx context.Context
	wg  sync.WaitGroup
}

// New returns the service; Run starts its background work.
func New(opts Options) (*Service, error) {
	if opts.Store == nil || opts.Driver == nil || opts.Projects == nil || opts.Catalog == nil || opts.NATS == nil || opts.Owner == "" {
		return nil, errors.New("jobs: Store, Driver, Projects, Catalog, NATS and Owner are required")
	}
	if opts.Secrets != nil && opts.FilesDir == "" {
		return nil, errors.New("jobs: FilesDir is required with Secrets")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Internal == nil {
		opts.Internal = func(ctx context.Context) context.Context { return ctx }
	}
	if opts.LeaseTTL <= 0 {
		opts.LeaseTTL = 30 * time.Second
	}
	if opts.RetryBackoff <= 0 {
		opts.RetryBackoff = time.Second
	}
	if opts.LogLines <= 0 {
		opts.LogLines = DefaultLogLines
	}
	if opts.LogBytes <= 0 {
		opts.LogBytes = DefaultLogBytes
	}
	if opts.LogDrainIdle <= 0 {
		opts.LogDrainIdle = 30 * time.Second
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Cursors == nil {
		opts.Cursors = paging.EphemeralCursors()
	}
	return &Service{opts: opts, store: opts.Store, log: opts.Logger.With("service", "jobs"), supervised: map[string]*supervision{}}, nil
}

// now is the clock at millisecond precision (Northflank's timestamps).
func (s *Service) now() time.Time { return s.opts.Clock().UTC().Truncate(time.Millisecond) }

// Run supervises runs and fires schedules until ctx ends. Workloads keep
// running when it returns: the next start of this replica (or another,
// once the lease expires) takes them back.
func (s *Service) Run(ctx context.Context) error {
	s.mu.Lock()
	s.ctx = ctx
	s.mu.Unlock()
	sub, err := s.opts.NATS.Subscribe(abortSubject, s.onAbort)
	if err != nil {
		return err
	}
	defer func() { _ = sub.Unsubscribe() }()

	s.reconcile(ctx)
	leases := time.NewTicker(s.opts.LeaseTTL / 3)
	defer leases.Stop()
	orphans := time.NewTicker(s.opts.LeaseTTL / 2)
	defer orphans.Stop()
	ticks := time.NewTicker(time.Second)
	defer ticks.Stop()
	for {
		select {
		case <-ctx.Done():
			s.wg.Wait()
			return nil
		case <-leases.C:
			if err := s.store.RenewLeases(ctx, s.opts.Owner, s.opts.Clock().Add(s.opts.LeaseTTL)); err != nil && ctx.Err() == nil {
				s.log.Warn("renewing run leases", "error", err)
			}
		case <-orphans.C:
			s.reconcile(ctx)
		case <-ticks.C:
			s.fireDue(ctx)
		}
	}
}
