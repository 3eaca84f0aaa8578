package builds

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	buildsv1 "github.com/slipwayhq/slipway/gen/slipway/builds/v1"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/paging"
)

// Defaults of Options.
const (
	DefaultConcurrency  = 2
	DefaultTimeout      = 30 * time.Minute
	DefaultKeep         = 10
	DefaultPollInterval = time.Minute
	DefaultLogLines     = 50_000
	// replayWindow is how long a webhook delivery id is remembered: a
	// replay after it is refused by the signature's freshness on GitHub
	// and Gitea only if the host re-signs, so it is kept for a week,
	// longer than any host retries.
	replayWindow = 7 * 24 * time.Hour
	// checkEvery is how often the queue is looked at without a wake-up
	// (builds queued through another replica) and running builds are
	// checked for an abort asked through another replica.
	checkEvery = 2 * time.Second
)

// Options configure the builds service.
type Options struct {
	Store   Store
	Sources Sources
	Engine  Engine
	// NATS carries live log lines and abort signals between replicas.
	NATS *nats.Conn
	// Owner identifies this replica: it takes its own interrupted builds
	// back at start-up (they end FAILURE, never stay BUILDING).
	Owner string
	// Concurrency is how many builds this replica runs at once (the
	// rest wait QUEUED); Timeout bounds one build; Keep is how many
	// successful builds' artifacts a service keeps (older ones are
	// removed, so they can no longer be deployed).
	Concurrency int
	Timeout     time.Duration
	Keep        int
	// PollInterval is how often services' remotes are polled for new
	// commits; zero or less: never.
	PollInterval time.Duration
	// LogLines is the most lines one build stores.
	LogLines int
	// PublicURL is the API's public base URL, for webhook URLs.
	PublicURL string
	Logger    *slog.Logger
	Cursors   *paging.Cursors
	Clock     func() time.Time
}

// Service is the builds service.
type Service struct {
	buildsv1.UnimplementedBuildsServiceServer
	opts  Options
	store Store
	log   *slog.Logger

	wake chan struct{}

	mu      sync.Mutex
	running map[string]context.CancelCauseFunc
}

// errAborted is the cause of a build's context when it was aborted.
var errAborted = errors.New("aborted")

// New returns the service; Run starts its workers.
func New(opts Options) (*Service, error) {
	if opts.Store == nil || opts.Sources == nil || opts.Engine == nil || opts.NATS == nil {
		return nil, errors.New("builds: Store, Sources, Engine and NATS are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Keep <= 0 {
		opts.Keep = DefaultKeep
	}
	if opts.LogLines <= 0 {
		opts.LogLines = DefaultLogLines
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Cursors == nil {
		opts.Cursors = paging.EphemeralCursors()
	}
	return &Service{opts: opts, store: opts.Store, log: opts.Logger, wake: make(chan struct{}, 1),
		running: map[string]context.CancelCauseFunc{}}, nil
}

// newID returns a build id: time-ordered (so that ids sort newest last
// and a list pages by id) and unguessable.
func newID(at time.Time) string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%013x", at.UnixMicro()) + hex.EncodeToString(b[:])
}

// randomSecret returns n random bytes, hex-encoded.
func randomSecret(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// abortSubject tells every replica to stop a build it runs.
var abortSubject = events.LiveSubject("builds", "abort")

// Run runs the queue until ctx ends: it first ends the builds this
// replica was running when it stopped, then takes queued builds as slots
// free up, removes expired artifacts and polls remotes.
func (s *Service) Run(ctx context.Context) error {
	if err := s.recoverInterrupted(ctx); err != nil {
		return err
	}
	sub, err := s.opts.NATS.Subscribe(abortSubject, func(m *nats.Msg) { s.cancel(string(m.Data)) })
	if err != nil {
		return err
	}
	defer func() { _ = sub.Unsubscribe() }()
	if s.opts.PollInterval > 0 {
		go s.pollLoop(ctx)
	}
	slots := make(chan struct{}, s.opts.Concurrency)
	var wg sync.WaitGroup
	defer wg.Wait()
	tick := time.NewTicker(checkEvery)
	defer tick.Stop()
	lastExpire := time.Time{}
	for {
		// Take queued builds while there is room.
		for {
			select {
			case slots <- struct{}{}:
			default:
				goto wait
			}
			b, ok, err := s.store.Claim(ctx, s.opts.Owner, s.opts.Clock())
			if err != nil || !ok {
				<-slots
				if err != nil && ctx.Err() == nil {
					s.log.Warn("taking a queued build", "error", err)
				}
				goto wait
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-slots; s.kick() }()
				s.run(ctx, b)
			}()
		}
	wait:
		if time.Since(lastExpire) > time.Minute {
			lastExpire = time.Now()
			s.expire(ctx)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
		case <-tick.C:
			s.checkAborts(ctx)
			s.removeOrphans(ctx)
		}
	}
}

// kick wakes the queue.
func (s *Service) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// recoverInterrupted ends the builds this replica ran when it stopped:
// their workloads went with it, so they cannot finish. They end FAILURE
// with the reason, never stay BUILDING.
func (s *Service) recoverInterrupted(ctx context.Context) error {
	list, err := s.store.Running(ctx, s.opts.Owner)
	if err != nil {
		return fmt.Errorf("builds: interrupted builds: %w", err)
	}
	for _, b := range list {
		if err := s.opts.Engine.Discard(ctx, b); err != nil {
			s.log.Warn("removing what an interrupted build left", "build", b.ID, "error", err)
		}
		t := Transition{Status: StatusFailure, Message: "Interrupted: Slipway stopped while this build ran; start it again", At: s.opts.Clock()}
		if b.AbortRequested {
			t = Transition{Status: StatusAborted, Message: "Aborted", At: s.opts.Clock()}
		}
		if _, err := s.store.Transition(ctx, b, t); err != nil && !errors.Is(err, ErrConflict) {
			return fmt.Errorf("builds: ending interrupted build %s: %w", b.ID, err)
		}
		s.log.Warn("a build was interrupted by a restart", "build", b.ID, "service", b.ServiceID)
	}
	return nil
}

// cancel stops a build this replica runs.
func (s *Service) cancel(id string) {
	s.mu.Lock()
	stop := s.running[id]
	s.mu.Unlock()
	if stop != nil {
		stop(errAborted)
	}
}

// checkAborts stops running builds an abort was asked for (through
// another replica whose signal this one may have missed).
func (s *Service) checkAborts(ctx context.Context) {
	s.mu.Lock()
	n := len(s.running)
	s.mu.Unlock()
	if n == 0 {
		return
	}
	list, err := s.store.Running(ctx, s.opts.Owner)
	if err != nil {
		return
	}
	for _, b := range list {
		if b.AbortRequested {
			s.cancel(b.ID)
		}
	}
}

// run runs one claimed build to its end.
func (s *Service) run(parent context.Context, b Build) {
	ctx, stop := context.WithCancelCause(parent)
	defer stop(nil)
	s.mu.Lock()
	s.running[b.ID] = stop
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.running, b.ID)
		s.mu.Unlock()
	}()
	// Transitions outlive a cancelled build: its end must be written.
	bg := context.WithoutCancel(ctx)
	finish := func(status, message string, out Output) {
		t := Transition{Status: status, Message: message, SHA: out.SHA, Artifact: out.Artifact, At: s.opts.Clock()}
		done, err := s.store.Transition(bg, b, t)
		if err != nil {
			if !errors.Is(err, ErrConflict) && !errors.Is(err, ErrNotFound) {
				s.log.Error("recording a build's end", "build", b.ID, "error", err)
			}
			// Nothing records the artifact (the service was deleted, or
			// the build aborted meanwhile): it would never be removed.
			if err := s.opts.Engine.Remove(bg, out.Artifact); err != nil {
				s.log.Warn("removing an unrecorded artifact", "build", b.ID, "error", err)
			}
			return
		}
		s.log.Info("build ended", "build", b.ID, "service", b.ServiceID, "status", done.Status)
		if status == StatusSuccess {
			s.expire(bg)
		}
	}
	logs := newLogWriter(s, b)
	defer logs.close()
	// An abort asked between the claim and now.
	if cur, err := s.store.GetBuild(bg, b.key(), b.ID); err == nil && cur.AbortRequested {
		finish(StatusAborted, "Aborted", Output{})
		return
	}
	src, err := s.opts.Sources.Source(ctx, b.key())
	if err != nil {
		finish(StatusFailure, "The service's build settings could not be read: "+userMessage(err), Output{})
		return
	}
	applyOverrides(&src, b.Overrides)
	logs.line("stdout", fmt.Sprintf("Building %s of %s (%s)", describeRef(b), redactURL(src.URL), b.Trigger))
	timeout := s.opts.Timeout
	bctx, cancel := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("timed out after %s", timeout))
	defer cancel()
	out, err := s.opts.Engine.Build(bctx, Job{
		Build: b, Source: src, Log: logs.line, Timeout: timeout,
		Phase: func(status string) {
			if cur, err := s.store.Transition(bg, b, Transition{Status: status, At: s.opts.Clock()}); err == nil {
				b = cur
			}
		},
	})
	logs.flush()
	switch {
	case errors.Is(context.Cause(ctx), errAborted):
		logs.line("stderr", "Build aborted")
		logs.flush()
		finish(StatusAborted, "Aborted", Output{})
	case parent.Err() != nil:
		finish(StatusFailure, "Interrupted: Slipway shut down while this build ran; start it again", Output{})
	case err != nil && bctx.Err() != nil:
		msg := fmt.Sprintf("The build took longer than %s (SLIPWAY_BUILD_TIMEOUT)", timeout)
		logs.line("stderr", msg)
		logs.flush()
		finish(StatusFailure, msg, Output{})
	case err != nil:
		msg := userMessage(err)
		logs.line("stderr", "Build failed: "+msg)
		logs.flush()
		finish(StatusFailure, msg, Output{})
	default:
		msg := "Image successfully built"
		if out.Artifact.Image == "" {
			msg = "App successfully built"
		}
		logs.line("stdout", msg)
		logs.flush()
		finish(StatusSuccess, msg, out)
	}
}

// expire removes the artifacts of successful builds beyond the newest
// Keep of each service.
func (s *Service) expire(ctx context.Context) {
	list, err := s.store.Expired(ctx, s.opts.Keep)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("finding expired artifacts", "error", err)
		}
		return
	}
	for _, b := range list {
		// Not the artifact of a running release (a rollback to an
		// older build): that one stays until nothing runs it.
		if err := s.opts.Engine.RemoveUnused(ctx, b.Artifact); err != nil {
			s.log.Warn("removing an expired artifact (kept; retried later)", "build", b.ID, "error", err)
			continue
		}
		if err := s.store.RemoveArtifact(ctx, b); err != nil {
			s.log.Warn("recording a removed artifact", "build", b.ID, "error", err)
		}
	}
}

func (b Build) key() ServiceKey {
	return ServiceKey{TeamID: b.TeamID, ProjectID: b.ProjectID, Kind: ownerKind(b.Kind), ServiceID: b.ServiceID}
}

// applyOverrides applies a build's own settings to its service's.
func applyOverrides(src *Source, o Overrides) {
	if len(o.BuildArguments) > 0 {
		args := make(map[string]string, len(src.Args)+len(o.BuildArguments))
		for k, v := range src.Args {
			args[k] = v
		}
		for k, v := range o.BuildArguments {
			args[k] = v
		}
		src.Args = args
	}
	if src.Dockerfile != nil {
		d := *src.Dockerfile
		if o.DockerFilePath != "" {
			d.Path = o.DockerFilePath
		}
		if o.DockerWorkDir != "" {
			d.WorkDir = o.DockerWorkDir
		}
		src.Dockerfile = &d
	}
	if o.Target != "" {
		src.Config.DockerfileTarget = o.Target
	}
}

// describeRef says what a build builds, for its log.
func describeRef(b Build) string {
	switch {
	case b.PullRequest > 0 && b.SHA != "":
		return fmt.Sprintf("commit %s of pull request #%d", short(b.SHA), b.PullRequest)
	case b.PullRequest > 0:
		return fmt.Sprintf("pull request #%d", b.PullRequest)
	case b.SHA != "":
		return fmt.Sprintf("commit %s of branch %s", short(b.SHA), b.Branch)
	}
	return "the head of branch " + b.Branch
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

// removeOrphans removes the artifacts of deleted builds that were still in
// use, once nothing runs them.
func (s *Service) removeOrphans(ctx context.Context) {
	list, err := s.store.Orphans(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("listing artifacts waiting for removal", "error", err)
		}
		return
	}
	for _, o := range list {
		if err := s.opts.Engine.RemoveUnused(ctx, o.Artifact); err != nil {
			continue // still in use: next time
		}
		if err := s.store.DeleteOrphan(ctx, o.BuildID); err != nil {
			s.log.Warn("forgetting a removed artifact", "build", o.BuildID, "error", err)
		}
	}
}
