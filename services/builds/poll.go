package builds

import (
	"context"
	"slices"
	"strconv"
	"time"

	"github.com/slipwayhq/slipway/services/builds/trigger"
)

// Polling: for git servers that cannot send webhooks (or whose webhooks
// cannot reach Slipway), every PollInterval the poller lists each
// building service's remote heads (git ls-remote, in the sandbox) and
// builds a branch or pull request whose head moved, under the same rules
// as a push (allowed): branch and pull request restrictions first, then
// CI-skip flags in the head commit's message, which the refs do not
// carry: for the heads that moved and pass the restrictions, the poller
// fetches those commits alone (Engine.Messages: a shallow fetch by id,
// without files where the server can filter them, in the sandbox). A
// head skipped by a flag is remembered as seen and not built; a head
// whose message could not be read is not remembered, so the next round
// looks again. The first look at a service remembers its heads and
// builds nothing: adding a service is not a push.
//
// With several replicas on one database, one polls at a time: a round
// runs only on the holder of the poll lease (Store.TakeLease), which it
// renews at each tick and, during a long round, every third of the
// lease. A holder that stops (or loses the database) is replaced once
// its lease runs out.

// pollLeaseName names the poller's lease in the store.
const pollLeaseName = "poll"

// pollLease is how long the poll lease lasts without a renewal: two
// intervals, so the holder keeps it from one tick to the next, and a
// replica that stops is replaced by another within two intervals.
func (s *Service) pollLease() time.Duration { return 2 * s.opts.PollInterval }

// pollLoop polls until ctx ends.
func (s *Service) pollLoop(ctx context.Context) {
	t := time.NewTicker(s.opts.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.pollRound(ctx)
		}
	}
}

// takePollLease takes or renews the poll lease for this replica.
func (s *Service) takePollLease(ctx context.Context) bool {
	now := s.opts.Clock()
	held, err := s.store.TakeLease(ctx, pollLeaseName, s.opts.Owner, now, now.Add(s.pollLease()))
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("polling: taking the poll lease", "error", err)
		}
		return false
	}
	return held
}

// pollRound polls once if this replica holds the poll lease, renewing it
// while the round runs and stopping the round if it is lost.
func (s *Service) pollRound(ctx context.Context) {
	if !s.takePollLease(ctx) {
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	defer close(done)
	go func() {
		t := time.NewTicker(max(s.pollLease()/3, time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if !s.takePollLease(ctx) {
					s.log.Warn("polling: lost the poll lease during a round; another replica polls")
					cancel()
					return
				}
			}
		}
	}()
	s.pollOnce(ctx)
}

// headKey names a ref in the poller's state.
func headKey(r Ref) string {
	if r.PullRequest > 0 {
		return "pr:" + strconv.FormatInt(r.PullRequest, 10)
	}
	return "branch:" + r.Name
}

// pollOnce looks at every building service's remote once.
func (s *Service) pollOnce(ctx context.Context) {
	srcs, err := s.opts.Sources.All(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("polling: listing services that build", "error", err)
		}
		return
	}
	for _, src := range srcs {
		if ctx.Err() != nil {
			return
		}
		if src.DisabledCI {
			continue
		}
		s.pollService(ctx, src)
	}
}

func (s *Service) pollService(ctx context.Context, src Source) {
	refs, err := s.opts.Engine.Refs(ctx, src)
	if err != nil {
		s.log.Debug("polling: reading a remote", "service", src.ServiceID, "error", err)
		return
	}
	heads := make(map[string]string, len(refs))
	for _, r := range refs {
		heads[headKey(r)] = r.SHA
	}
	old, err := s.store.PollState(ctx, src.ServiceKey)
	if err != nil {
		s.log.Warn("polling: reading what was seen", "service", src.ServiceID, "error", err)
		return
	}
	if old != nil {
		// forget leaves a head as it was before this round, so that the
		// next round looks at it again.
		forget := func(r Ref) {
			if prev, ok := old[headKey(r)]; ok {
				heads[headKey(r)] = prev
			} else {
				delete(heads, headKey(r))
			}
		}
		// The restrictions first: a head they refuse needs no message.
		var moved []Ref
		for _, r := range refs {
			if old[headKey(r)] == r.SHA {
				continue
			}
			if ok, why := s.allowed(src, r.Name, r.PullRequest, nil, nil); !ok {
				s.log.Debug("polling: not building", "service", src.ServiceID, "ref", headKey(r), "why", why)
				continue
			}
			moved = append(moved, r)
		}
		var msgs map[string]string
		if len(moved) > 0 {
			if msgs, err = s.opts.Engine.Messages(ctx, src, moved); err != nil {
				// A server that refuses the one-commit fetch (dumb HTTP,
				// shallow fetches turned off) must not stop polling from
				// building: decide without the messages, so skip markers
				// are not seen there, as with webhooks that carry none.
				s.log.Warn("polling: cannot read commit messages, CI-skip flags not applied", "service", src.ServiceID, "error", err)
				msgs = nil
			}
		}
		for _, r := range moved {
			var messages []string
			if msgs != nil {
				msg, ok := msgs[r.SHA]
				if !ok {
					forget(r) // it moved again meanwhile
					continue
				}
				messages = []string{msg}
			}
			if ok, why := s.allowed(src, r.Name, r.PullRequest, messages, nil); !ok {
				s.log.Debug("polling: not building", "service", src.ServiceID, "ref", headKey(r), "sha", short(r.SHA), "why", why)
				continue // seen, and not built
			}
			if _, err := s.start(ctx, Build{TeamID: src.TeamID, ProjectID: src.ProjectID, Kind: src.ServiceKey.Kind, ServiceID: src.ServiceID,
				Branch: r.Name, PullRequest: r.PullRequest, SHA: r.SHA, Trigger: "poll"}); err != nil {
				s.log.Warn("polling: queueing a build", "service", src.ServiceID, "error", err)
				forget(r)
			}
		}
	}
	if err := s.store.SetPollState(ctx, src.ServiceKey, heads); err != nil {
		s.log.Warn("polling: remembering what was seen", "service", src.ServiceID, "error", err)
	}
}

// allowed decides whether a push (or pull request update) to src builds:
// a combined service builds only its own branch and no pull request; a
// build service follows its restrictions; both honour CI-skip flags and
// path rules where the event tells them.
func (s *Service) allowed(src Source, branch string, pr int64, messages, paths []string) (bool, string) {
	if ownBranch(src) {
		if pr > 0 {
			return false, "a combined service or job does not build pull requests"
		}
		if branch != src.Branch {
			return false, "a combined service or job builds only its branch " + src.Branch
		}
	}
	c := src.Config
	// The usual CI-skip flags ([skip ci], [ci skip], …) always hold, as
	// on GitHub and GitLab: a user who writes one means it. A service's
	// own flags, when enabled, count too.
	flags := slices.Clone(trigger.DefaultCIIgnoreFlags)
	if c.CIIgnoreFlagsEnabled {
		flags = append(flags, c.CIIgnoreFlags...)
	}
	return trigger.Decide(trigger.Config{
		BranchRestrictions: c.BranchRestrictions, PRRestrictions: c.PRRestrictions,
		PathIgnoreRules: c.PathIgnoreRules, IsAllowList: c.IsAllowList,
		CIIgnoreFlagsEnabled: true, CIIgnoreFlags: flags,
	}, trigger.Commit{Branch: branch, PullRequest: int(pr), Messages: messages, ChangedPaths: paths})
}

// ownBranch reports whether src builds only its own branch and no pull
// request: a combined service, or a job.
func ownBranch(src Source) bool {
	return src.Kind == "combined" || src.ServiceKey.OwnerKind() == KindJob
}
