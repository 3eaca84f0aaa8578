package jobs

import (
	"context"
)

// dueBatch bounds the cron jobs fired per tick; the rest fire on the next.
const dueBatch = 100

// fireDue fires every cron job whose tick has come. Each tick is claimed
// in the database first (a compare-and-set of the job's next tick), so
// that with several replicas exactly one fires it. A tick missed while no
// replica ran (say, across a restart) fires once when one runs again;
// older missed ticks are not replayed.
func (s *Service) fireDue(ctx context.Context) {
	now := s.opts.Clock()
	due, err := s.store.DueCronJobs(ctx, now, dueBatch)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("reading due cron jobs", "error", err)
		}
		return
	}
	for _, j := range due {
		next, err := nextTick(j, now)
		if err != nil {
			// Stored before the schedule syntax was narrowed (say,
			// "@every 1s"): the job stops firing, once, instead of failing
			// every tick; a valid schedule set through the API resumes it.
			s.log.Error("a stored schedule does not parse; the cron job no longer fires until its schedule is corrected", "job", j.ID, "project", j.ProjectID, "schedule", j.Schedule, "error", err)
			if _, err := s.store.ClaimTick(ctx, j.TeamID, j.ProjectID, j.ID, j.NextRunAt, zeroTime); err != nil && ctx.Err() == nil {
				s.log.Warn("unscheduling a cron job", "job", j.ID, "error", err)
			}
			continue
		}
		won, err := s.store.ClaimTick(ctx, j.TeamID, j.ProjectID, j.ID, j.NextRunAt, next)
		if err != nil || !won {
			continue
		}
		if err := s.fire(ctx, j); err != nil {
			s.log.Warn("firing a cron job", "job", j.ID, "project", j.ProjectID, "error", err)
		}
	}
}

// fire starts a run of a cron job as its concurrency policy says: allow
// runs it alongside active runs, forbid skips the tick while one is
// active, replace aborts the active ones first.
func (s *Service) fire(ctx context.Context, j Job) error {
	active, err := s.store.ActiveRuns(ctx, j.TeamID, j.ProjectID, j.ID)
	if err != nil {
		return err
	}
	if len(active) > 0 {
		switch j.ConcurrencyPolicy {
		case PolicyForbid:
			s.log.Info("skipping a cron tick: a run is still active (concurrencyPolicy forbid)", "job", j.ID, "project", j.ProjectID)
			return nil
		case PolicyReplace:
			for _, r := range active {
				if _, err := s.abort(ctx, r); err != nil && !isConflict(err) {
					return err
				}
			}
		}
	}
	spec, err := s.runSpec(ctx, j, nil)
	if err != nil {
		return err
	}
	r, err := s.startRun(ctx, j, spec)
	if err == nil {
		s.log.Info("cron job fired", "job", j.ID, "project", j.ProjectID, "run", r.ID)
	}
	return err
}
