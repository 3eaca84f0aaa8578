package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/runtime"
)

var zeroTime time.Time

// stopGrace is how long an aborted workload gets to exit before it is
// killed (Kubernetes' default terminationGracePeriodSeconds is 30 s; an
// aborted job rarely has anything worth waiting for).
const stopGrace = 10 * time.Second

// supervision is this replica's watch over one run.
type supervision struct {
	// wake interrupts a wait for a retry (the run may have been aborted).
	wake chan struct{}
}

func runKey(team, project, job, id string) string {
	return team + "/" + project + "/" + job + "/" + id
}

func secondsOf(n int64) time.Duration { return time.Duration(n) * time.Second }

// supervise starts watching r unless this replica already does. Before
// Run has started, the run waits for Run's first reconciliation.
func (s *Service) supervise(r Run) {
	key := runKey(r.TeamID, r.ProjectID, r.JobID, r.ID)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.supervised[key]; ok || s.ctx == nil || s.ctx.Err() != nil {
		return
	}
	sup := &supervision{wake: make(chan struct{}, 1)}
	s.supervised[key] = sup
	s.wg.Add(1)
	go func(ctx context.Context) {
		defer s.wg.Done()
		defer func() {
			s.mu.Lock()
			delete(s.supervised, key)
			s.mu.Unlock()
		}()
		s.superviseRun(ctx, r, sup)
	}(s.ctx)
}

// superviseRun drives a run to its conclusion: it starts attempts, stores
// their logs, records their outcome and retries failed ones, until the run
// concludes or ctx ends (shutdown: the workload keeps running).
func (s *Service) superviseRun(ctx context.Context, r Run, sup *supervision) {
	log := s.log.With("run", r.ID, "job", r.JobID, "project", r.ProjectID)
	for ctx.Err() == nil && !r.Concluded() {
		var err error
		if !r.Active {
			if r, err = s.startAttempt(ctx, r, sup); err != nil {
				log.Warn("starting an attempt", "error", err)
				if !sleep(ctx, sup, time.Second) {
					return
				}
				r, err = s.reload(ctx, r)
				if err != nil {
					return
				}
			}
			continue
		}
		st, err := s.watch(ctx, r)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			log.Warn("watching a workload", "workload", r.WorkloadID, "error", err)
			if !sleep(ctx, sup, time.Second) {
				return
			}
			continue
		}
		workload := r.WorkloadID
		if r, err = s.recordAttempt(ctx, r, st); err != nil {
			log.Warn("recording an attempt", "error", err)
			if !sleep(ctx, sup, time.Second) {
				return
			}
			if r, err = s.reload(ctx, r); err != nil {
				return
			}
			continue
		}
		// The attempt's logs are stored; its workload has nothing left.
		if err := s.opts.Driver.Remove(ctx, workload); err != nil && !errors.Is(err, runtime.ErrNotFound) {
			log.Warn("removing a finished workload", "workload", workload, "error", err)
		}
	}
	if r.Concluded() {
		s.removeFiles(r)
	}
}

// reload reads the run's current state.
func (s *Service) reload(ctx context.Context, r Run) (Run, error) {
	return s.store.GetRun(ctx, r.TeamID, r.ProjectID, r.JobID, r.ID)
}

// startAttempt waits out a retry delay, then starts the next attempt (or
// adopts it, when an earlier instance started it but died before
// recording it) and records it.
func (s *Service) startAttempt(ctx context.Context, r Run, sup *supervision) (Run, error) {
	if wait := time.Until(r.RetryAt); wait > 0 {
		if !sleep(ctx, sup, wait) {
			return r, ctx.Err()
		}
		var err error
		if r, err = s.reload(ctx, r); err != nil || r.Concluded() || r.Active {
			return r, err
		}
	}
	if !r.Deadline.IsZero() && !s.opts.Clock().Before(r.Deadline) {
		return s.store.UpdateRun(ctx, r.TeamID, r.ProjectID, r.JobID, r.ID, func(r *Run) ([]events.Event, error) {
			if r.Concluded() || r.Active {
				return nil, nil
			}
			return s.conclude(r, RunFailed, ReasonDeadline, "failed")
		})
	}
	attempt := r.Attempts + 1
	id := s.findWorkload(ctx, r, attempt)
	if id == "" {
		var deadline time.Duration
		if !r.Deadline.IsZero() {
			deadline = r.Deadline.Sub(s.opts.Clock())
		}
		spec := workload(r, attempt, deadline)
		mounts, err := s.secretMounts(r, attempt)
		if err == nil {
			spec.Mounts = append(spec.Mounts, mounts...)
			id, err = s.opts.Driver.Start(ctx, spec)
		}
		if err != nil {
			if ctx.Err() != nil {
				return r, ctx.Err()
			}
			s.log.Warn("the runtime refused a workload", "run", r.ID, "error", err)
			return s.store.UpdateRun(ctx, r.TeamID, r.ProjectID, r.JobID, r.ID, func(r *Run) ([]events.Event, error) {
				if r.Concluded() || r.Active {
					return nil, nil
				}
				r.Attempts, r.Failed = attempt, r.Failed+1
				if r.Failed <= r.BackoffLimit {
					r.RetryAt = s.opts.Clock().Add(s.backoff(r.Failed))
					return nil, nil
				}
				return s.conclude(r, RunFailed, ReasonStart, "failed")
			})
		}
	}
	var aborted bool
	r, err := s.store.UpdateRun(ctx, r.TeamID, r.ProjectID, r.JobID, r.ID, func(r *Run) ([]events.Event, error) {
		if aborted = r.Concluded(); aborted {
			return nil, nil
		}
		r.Attempts, r.Active, r.WorkloadID, r.RetryAt = attempt, true, id, zeroTime
		return nil, nil
	})
	if err != nil || aborted {
		// Aborted (or deleted) while starting: the workload must not outlive it.
		s.stopWorkload(r, id)
	}
	return r, err
}

// findWorkload returns the workload of a run's attempt, if one exists.
func (s *Service) findWorkload(ctx context.Context, r Run, attempt int32) string {
	list, err := s.opts.Driver.List(ctx, map[string]string{labelRun: r.ID, labelAttempt: strconv.Itoa(int(attempt))})
	if err != nil || len(list) == 0 {
		return ""
	}
	return list[0].ID
}

// watch stores the attempt's logs as they come and returns its final
// status once they are all stored; a workload the runtime no longer
// knows is Lost.
func (s *Service) watch(ctx context.Context, r Run) (runtime.Status, error) {
	container := containerName(r, r.Attempts)
	p, err := s.newPump(ctx, r, container)
	if err != nil {
		return runtime.Status{}, err
	}
	logsCtx, cancelLogs := context.WithCancel(ctx)
	defer cancelLogs()
	logsDone := make(chan struct{})
	go func() {
		defer close(logsDone)
		p.run(logsCtx)
	}()
	st, err := s.opts.Driver.Wait(ctx, r.WorkloadID)
	if errors.Is(err, runtime.ErrNotFound) {
		st, err = runtime.Status{State: runtime.StateExited, Reason: runtime.ReasonLost, ExitCode: -1}, nil
	}
	if err != nil {
		return st, err
	}
	// The exit counts as progress: a workload silent for a while before it
	// exited still gets its last lines read.
	p.touch()
	// Following ends when the workload has exited, once every line it
	// wrote is read; the attempt is recorded only after they are stored,
	// however long that takes (the cap bounds what is stored). Only a
	// runtime that keeps the stream open without yielding anything more
	// is given up on.
	idle := time.NewTicker(time.Second)
	defer idle.Stop()
	for {
		select {
		case <-logsDone:
			return st, nil
		case <-ctx.Done():
			cancelLogs()
			<-logsDone
			return st, ctx.Err()
		case <-idle.C:
			if time.Since(p.lastRead()) > s.opts.LogDrainIdle {
				s.log.Warn("the runtime keeps an exited workload's log stream open without more lines; no longer reading it", "run", r.ID, "workload", r.WorkloadID)
				cancelLogs()
				<-logsDone
				return st, nil
			}
		}
	}
}

// recordAttempt records how an attempt ended: success concludes the run;
// a failure is retried while retries remain (backoffLimit), except past
// the deadline.
func (s *Service) recordAttempt(ctx context.Context, r Run, st runtime.Status) (Run, error) {
	return s.store.UpdateRun(ctx, r.TeamID, r.ProjectID, r.JobID, r.ID, func(r *Run) ([]events.Event, error) {
		if r.Concluded() || !r.Active {
			return nil, nil // aborted meanwhile: the abort is the outcome
		}
		r.Active = false
		if st.Reason != runtime.ReasonLost {
			code := int32(st.ExitCode)
			r.ExitCode = &code
		}
		switch {
		case st.Reason == "" && st.ExitCode == 0:
			r.Succeeded = 1
			return s.conclude(r, RunSuccess, "", "succeeded")
		case st.Reason == runtime.ReasonDeadline:
			r.Failed++
			return s.conclude(r, RunFailed, ReasonDeadline, "failed")
		}
		r.Failed++
		if r.Failed <= r.BackoffLimit {
			r.RetryAt = s.opts.Clock().Add(s.backoff(r.Failed))
			return nil, nil
		}
		reason := ReasonError
		if st.Reason == runtime.ReasonLost {
			reason = ReasonLost
		}
		return s.conclude(r, RunFailed, reason, "failed")
	})
}

// backoff is the delay before the retry after the n-th failure: doubling
// from RetryBackoff, at most a minute (Kubernetes Jobs back off the same
// way, from 10 s to 6 min).
func (s *Service) backoff(n int32) time.Duration {
	d := s.opts.RetryBackoff
	for i := int32(1); i < n && d < time.Minute; i++ {
		d *= 2
	}
	return min(d, time.Minute)
}

// stopWorkload stops a concluded run's workload: here when this replica
// supervises it, else through the replica that does.
func (s *Service) stopWorkload(r Run, workload string) {
	key := runKey(r.TeamID, r.ProjectID, r.JobID, r.ID)
	if !s.stopLocal(key, workload) {
		if err := s.opts.NATS.Publish(abortSubject, encode(abortMessage{Key: key, Workload: workload})); err != nil {
			s.log.Warn("forwarding an abort", "run", r.ID, "error", err)
		}
	}
}

// stopLocal stops a workload of a run this replica supervises and reports
// whether it does.
func (s *Service) stopLocal(key, workload string) bool {
	s.mu.Lock()
	sup, ok := s.supervised[key]
	ctx := s.ctx
	s.mu.Unlock()
	if !ok {
		return false
	}
	select {
	case sup.wake <- struct{}{}:
	default:
	}
	if workload != "" && ctx != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.opts.Driver.Stop(ctx, workload, stopGrace); err != nil && !errors.Is(err, runtime.ErrNotFound) {
				s.log.Warn("stopping a workload", "workload", workload, "error", err)
			}
		}()
	}
	return true
}

// onAbort handles another replica's abort request.
func (s *Service) onAbort(msg *nats.Msg) {
	var m abortMessage
	if json.Unmarshal(msg.Data, &m) == nil {
		s.stopLocal(m.Key, m.Workload)
	}
}

// reconcile takes back this replica's runs and those of replicas whose
// lease expired, and removes workloads no run needs any more.
func (s *Service) reconcile(ctx context.Context) {
	now := s.opts.Clock()
	runs, err := s.store.OrphanedRuns(ctx, s.opts.Owner, now)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("listing runs to reconcile", "error", err)
		}
		return
	}
	for _, r := range runs {
		if s.isSupervised(r) {
			continue
		}
		var taken bool
		r, err := s.store.UpdateRun(ctx, r.TeamID, r.ProjectID, r.JobID, r.ID, func(r *Run) ([]events.Event, error) {
			if r.Concluded() {
				return nil, nil
			}
			if r.Owner != s.opts.Owner && r.LeaseUntil.After(now) {
				taken = true // another replica took it over first
				return nil, nil
			}
			r.Owner, r.LeaseUntil = s.opts.Owner, now.Add(s.opts.LeaseTTL)
			return nil, nil
		})
		if err != nil || taken || r.Concluded() {
			continue
		}
		s.log.Info("reconciling a run", "run", r.ID, "job", r.JobID, "active", r.Active, "workload", r.WorkloadID)
		s.supervise(r)
	}
	s.sweep(ctx)
}

func (s *Service) isSupervised(r Run) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.supervised[runKey(r.TeamID, r.ProjectID, r.JobID, r.ID)]
	return ok
}

// sweep removes workloads whose run is gone or over: nothing this service
// starts outlives its run.
func (s *Service) sweep(ctx context.Context) {
	list, err := s.opts.Driver.List(ctx, map[string]string{labelService: "jobs"})
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("listing workloads", "error", err)
		}
		return
	}
	for _, w := range list {
		l := w.Labels
		r, err := s.store.GetRun(ctx, l[labelTeam], l[labelProject], l[labelJob], l[labelRun])
		switch {
		case errors.Is(err, ErrNotFound):
		case err != nil:
			continue
		case !r.Concluded() && (r.WorkloadID == w.ID || w.State == runtime.StateRunning || s.isSupervised(r)):
			continue // the run's current (or just started) attempt
		case r.Concluded() && s.isSupervised(r):
			continue // its supervisor is cleaning up
		}
		if w.State == runtime.StateRunning {
			if err := s.opts.Driver.Stop(ctx, w.ID, stopGrace); err != nil && !errors.Is(err, runtime.ErrNotFound) {
				s.log.Warn("stopping an orphaned workload", "workload", w.ID, "error", err)
				continue
			}
		}
		if err := s.opts.Driver.Remove(ctx, w.ID); err != nil && !errors.Is(err, runtime.ErrNotFound) {
			s.log.Warn("removing an orphaned workload", "workload", w.ID, "error", err)
			continue
		}
		s.log.Info("removed an orphaned workload", "workload", w.ID, "run", l[labelRun])
	}
}

// sleep waits d, or until the supervision is woken or ctx ends; it
// reports whether ctx is still alive.
func sleep(ctx context.Context, sup *supervision, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-sup.wake:
	case <-t.C:
	}
	return true
}
