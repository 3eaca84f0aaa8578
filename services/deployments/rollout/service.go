package rollout

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/slipwayhq/slipway/pkg/ingress"
	"github.com/slipwayhq/slipway/pkg/probe"
	"github.com/slipwayhq/slipway/pkg/runtime"
)

// service is one service's state. The fields under "c.mu" are shared
// with the Controller's methods; the rest belong to the loop goroutine.
type service struct {
	c  *Controller
	id string

	// Guarded by c.mu.
	desired  Service
	deleted  bool
	running  bool
	snapshot []Instance

	ctx    context.Context // Run's, set before the loop starts
	wake   chan struct{}
	events chan event

	// The loop's own.
	cur     Service // the desired state this pass of the loop works to
	gone    bool    // cur is a deletion
	insts   []*instance
	revs    map[string]*revision
	stable  *revision // the last release known to run well; nil before any
	rolling *revision // the release being rolled out (IN_PROGRESS reported)
	failed  string    // key of the revision whose rollout failed
	crashes int       // deaths of rolling's instances
	// lastCrash and lastWhy name the last of them and its cause.
	lastCrash, lastWhy string
	routes             []ingress.Route
}

// revision is a release at a restart generation: a rollout replaces the
// instances of every other revision with those of the target one.
type revision struct {
	key        string
	rel        Release
	generation int64
	// known is false for the revision of an adopted instance whose
	// release the controller was not given (a Slipway restarted in the
	// middle of a rollout): its instances keep serving until replaced,
	// but none of it can be started.
	known bool
}

func revKey(releaseID string, generation int64) string {
	return releaseID + "#" + strconv.FormatInt(generation, 10)
}

type eventKind int

const (
	evProbe eventKind = iota // a Prober's transition
	evReady                  // an instance without health checks is ready
	evExit                   // the workload exited
	evGone                   // the workload was stopped and removed
)

// event is what an instance's goroutines report to the loop, tagged with
// the workload they are about: an event of a workload the instance no
// longer runs is stale and dropped.
type event struct {
	inst  *instance
	wid   string
	kind  eventKind
	probe probe.Event
	exit  runtime.Status
}

func newService(c *Controller, id string) *service {
	return &service{
		c: c, id: id, wake: make(chan struct{}, 1), events: make(chan event, 64),
		revs: map[string]*revision{},
	}
}

// poke wakes the loop: the desired state changed.
func (s *service) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// send hands ev to the loop, unless Run's context ended.
func (s *service) send(ev event) {
	select {
	case s.events <- ev:
	case <-s.ctx.Done():
	}
}

func (s *service) loop() {
	defer s.c.wg.Done()
	s.adopt()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.c.mu.Lock()
		s.cur, s.gone = s.desired, s.deleted
		s.c.mu.Unlock()
		if s.gone && len(s.insts) == 0 {
			s.publish()
			if s.c.forget(s) {
				s.c.setRoutes(s.id, nil)
				return
			}
			continue
		}
		s.reconcile()
		s.publish()

		wait := time.Hour
		if at, ok := s.nextDeadline(); ok {
			wait = max(time.Until(at), time.Millisecond)
		}
		timer.Reset(wait)
		select {
		case <-s.ctx.Done():
			s.shutdown()
			return
		case <-s.wake:
		case ev := <-s.events:
			s.handle(ev)
			// Take whatever else is queued before reconciling again.
			for more := true; more; {
				select {
				case ev := <-s.events:
					s.handle(ev)
				default:
					more = false
				}
			}
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// shutdown ends the loop's goroutines when Slipway stops; the workloads
// keep running for the next controller to adopt.
func (s *service) shutdown() {
	for _, in := range s.insts {
		if in.cancel != nil {
			in.cancel()
		}
	}
}

// adopt takes over the workloads an earlier controller started for this
// service: running ones are kept as they are (probed afresh, routed once
// ready), exited ones are removed and replaced by the reconcile that
// follows. Listing is retried until it works: starting instances
// without knowing which run already would double them.
func (s *service) adopt() {
	var list []runtime.Status
	for {
		var err error
		list, err = s.c.opts.Driver.List(s.ctx, map[string]string{LabelOwner: OwnerValue, LabelDeployment: s.id})
		if err == nil {
			break
		}
		s.c.log.Warn("listing a service's workloads to adopt them", "service", s.id, "error", err)
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
	s.c.mu.Lock()
	d := s.desired
	s.c.mu.Unlock()
	target := s.revisionOf(d)
	for _, w := range list {
		if w.State != runtime.StateRunning {
			// It died while no controller watched it: its last lines go
			// to the hooks before it is removed; the reconcile replaces it.
			s.removeExited(w)
			continue
		}
		gen, _ := strconv.ParseInt(w.Labels[LabelGeneration], 10, 64)
		key := revKey(w.Labels[LabelRelease], gen)
		rev := s.revs[key]
		if rev == nil {
			// A release the controller was not given: route it with the
			// ports of the applied release it has, probe it without
			// health checks.
			rev = &revision{key: key, rel: Release{ID: w.Labels[LabelRelease], Ports: d.Release.Ports}, generation: gen}
			s.revs[key] = rev
		}
		restarts, _ := strconv.Atoi(w.Labels[LabelRestarts])
		name := w.Labels[LabelInstance]
		if name == "" {
			name = w.Name
		}
		in := &instance{
			name: name, rev: rev, wid: w.ID, status: TaskStarting, restarts: restarts,
			created: w.StartedAt, startedAt: w.StartedAt, ports: w.Ports,
			backoff: probe.NewBackoff(s.c.opts.Backoff), clock: time.Now(), adopting: true,
		}
		s.insts = append(s.insts, in)
		s.watch(in)
		s.c.log.Info("adopted an instance", "service", s.id, "instance", name, "workload", w.ID, "release", rev.rel.ID)
	}
	// The deployments service re-applies the release it recorded as the
	// service's. When only instances of it run, it had been rolled out:
	// it is not rolled out again. When instances of other releases run
	// too, Slipway stopped in the middle of its rollout: the release with
	// the most instances is what served, and the applied one rolls out
	// again from where it was (its instances must become ready anew).
	others := map[*revision]int{}
	for _, in := range s.insts {
		if in.rev != target {
			others[in.rev]++
		}
	}
	switch {
	case len(others) == 0 && len(s.insts) > 0:
		s.stable = target
	case len(others) > 0:
		for rev, n := range others {
			if s.stable == nil || n > others[s.stable] {
				s.stable = rev
			}
		}
	}
}

// removeExited hands the lines of a workload that exited unwatched to
// the hooks, then removes it, in the background.
func (s *service) removeExited(w runtime.Status) {
	restarts, _ := strconv.Atoi(w.Labels[LabelRestarts])
	view := Instance{Name: w.Labels[LabelInstance], WorkloadID: w.ID, ReleaseID: w.Labels[LabelRelease],
		Status: TaskFailed, Restarts: restarts, CreatedAt: w.StartedAt}
	if w.ExitCode == 0 {
		view.Status = TaskFinished
	}
	done := s.pumpLogs(view, false)
	s.c.wg.Add(1)
	go func() {
		defer s.c.wg.Done()
		awaitLogs(done)
		if err := s.c.opts.Driver.Remove(context.WithoutCancel(s.ctx), w.ID); err != nil && !errors.Is(err, runtime.ErrNotFound) {
			s.c.log.Warn("removing an exited instance", "service", s.id, "workload", w.ID, "error", err)
		}
	}()
}

// revisionOf returns the revision d runs (nil for a deleted service that
// was never applied), updating its release.
func (s *service) revisionOf(d Service) *revision {
	if d.Release.ID == "" {
		return nil
	}
	key := revKey(d.Release.ID, d.Restart)
	rev := s.revs[key]
	if rev == nil {
		rev = &revision{key: key, generation: d.Restart}
		s.revs[key] = rev
	}
	rev.rel, rev.known = d.Release, true
	return rev
}

// grace is how long an instance of the service gets to drain and stop.
func (s *service) grace() time.Duration {
	if s.cur.Grace > 0 {
		return s.cur.Grace
	}
	return s.c.opts.Grace
}

func (s *service) readyTimeout(rev *revision) time.Duration {
	if rev.rel.ReadyTimeout > 0 {
		return rev.rel.ReadyTimeout
	}
	return s.c.opts.ReadyTimeout
}

// live returns the instances not being stopped for good.
func (s *service) live() []*instance {
	var out []*instance
	for _, in := range s.insts {
		if !in.terminating {
			out = append(out, in)
		}
	}
	return out
}

// reconcile moves the instances one step towards s.cur.
func (s *service) reconcile() {
	if s.gone || s.cur.Release.ID == "" {
		// Deleted, or applied with no release yet: nothing runs.
		for _, in := range s.live() {
			s.terminate(in, true)
		}
		return
	}
	d := s.cur
	target := s.revisionOf(d)
	want := d.Instances
	if d.Paused || want < 0 {
		want = 0
	}
	if s.failed != "" && s.failed != target.key {
		s.failed = "" // a new release (or restart) was applied
	}
	if s.rolling != nil && s.rolling != target {
		// Applied again before the last rollout finished: it will never
		// finish, and its record must not stay IN_PROGRESS. If all its
		// instances were ready it did its job (only MinReady was left to
		// wait), and it is what the new one falls back to.
		ready, other := 0, false
		for _, in := range s.live() {
			switch {
			case in.rev != s.rolling:
				other = true
			case in.ready:
				ready++
			}
		}
		if !other && ready == want && want > 0 {
			s.stable = s.rolling
			s.report(Outcome{ReleaseID: s.rolling.rel.ID, Status: RolloutCompleted})
		} else {
			s.report(Outcome{ReleaseID: s.rolling.rel.ID, Status: RolloutFailed,
				Reason: "superseded by release " + target.rel.ID + " before it completed"})
		}
		s.rolling = nil
	}

	// An instance of the release being rolled out proves itself by
	// staying ready for MinReady.
	for _, in := range s.live() {
		if s.available(in) {
			in.everReady = true
		}
	}

	run := target
	if s.failed == target.key {
		run = s.stable
	} else if s.stable != target && s.rolling == nil {
		s.rolling, s.crashes = target, 0
		s.report(Outcome{ReleaseID: target.rel.ID, Status: RolloutInProgress})
	}
	if s.rolling != nil {
		if reason := s.failure(want); reason != "" {
			s.failed = s.rolling.key
			if s.stable == nil {
				// Nothing ever completed, but instances of an earlier
				// rollout (superseded by this one) may serve: they stay.
				s.stable = s.busiestOther()
			}
			restored := ""
			if s.stable != nil {
				restored = s.stable.rel.ID
			}
			for _, in := range s.live() {
				if in.rev == s.rolling {
					s.terminate(in, true)
				}
			}
			s.report(Outcome{ReleaseID: s.rolling.rel.ID, Status: RolloutFailed, Reason: reason, RestoredID: restored})
			s.c.log.Warn("rollout failed", "service", s.id, "release", s.rolling.rel.ID, "reason", reason, "restored", restored)
			s.rolling = nil
			run = s.stable
		}
	}

	// Dead instances: restart those of the running revision when their
	// back-off is over; replace the others.
	for _, in := range s.live() {
		if !in.crashed || in.wid != "" {
			continue
		}
		if in.rev != run || !in.rev.known {
			s.terminate(in, true)
			continue
		}
		if !time.Now().Before(in.restartAt) {
			s.startWorkload(in)
		}
	}

	var cur, old []*instance
	for _, in := range s.live() {
		if run != nil && in.rev == run {
			cur = append(cur, in)
		} else {
			old = append(old, in)
		}
	}
	if d.Strategy.Recreate && len(old) > 0 {
		// Every old instance goes before any new one starts.
		for _, in := range old {
			s.terminate(in, true)
		}
		old = nil
	}
	oldStopping := slices.ContainsFunc(s.insts, func(in *instance) bool { return in.terminating && in.rev != run })

	surge, unavailable := limits(d.Strategy, want)
	// Start instances of the running revision up to want, at most surge
	// above it counting the old ones (Recreate: once the old are gone).
	if run != nil && run.known && !(d.Strategy.Recreate && oldStopping) {
		for len(cur) < want && len(cur)+len(old) < want+surge {
			in := s.newInstance(run)
			cur = append(cur, in)
		}
	}
	// Too many of the running revision (a scale-down): stop the surplus,
	// those not ready first, then the newest.
	if len(cur) > want {
		slices.SortStableFunc(cur, func(a, b *instance) int {
			if a.ready != b.ready {
				if a.ready {
					return 1
				}
				return -1
			}
			return b.created.Compare(a.created)
		})
		for _, in := range cur[:len(cur)-want] {
			s.terminate(in, true)
		}
		cur = cur[len(cur)-want:]
	}
	// Old instances go as the new become ready, keeping at least
	// want-unavailable ready instances: those not ready first (they serve
	// nothing), then the oldest. Those not ready go only as far as the
	// instances that may serve soon allow, as Kubernetes scales down old
	// replicas (at most all - minAvailable - new unavailable): an old
	// instance may be not ready for a moment (a readiness check failed
	// once under load) and serve again, while a new one not available
	// yet may never be; stopping it then would leave the service nothing
	// to serve until the rollout ends.
	available, newUnavailable := 0, 0
	for _, in := range slices.Concat(cur, old) {
		if s.available(in) {
			available++
		}
	}
	for _, in := range cur {
		if !s.available(in) {
			newUnavailable++
		}
	}
	notReadyBudget := len(cur) + len(old) - (want - unavailable) - newUnavailable
	slices.SortStableFunc(old, func(a, b *instance) int {
		if a.ready != b.ready {
			if a.ready {
				return 1
			}
			return -1
		}
		return a.created.Compare(b.created)
	})
	for _, in := range old {
		if !in.ready {
			if in.adopting && time.Since(in.clock) < s.readyTimeout(in.rev) {
				// Adopted, not probed yet: it most likely serves.
				continue
			}
			if notReadyBudget <= 0 {
				continue
			}
			s.terminate(in, true)
			notReadyBudget--
			continue
		}
		if s.available(in) && available-1 >= want-unavailable {
			s.terminate(in, true)
			available--
		}
	}

	// Complete once only the new instances are left, all available, and
	// every old one has been drained, stopped and removed.
	oldStopping = slices.ContainsFunc(s.insts, func(in *instance) bool { return in.terminating && in.rev != run })
	if s.rolling != nil && s.rolling == run && len(s.live()) == len(cur) && len(cur) == want && !oldStopping &&
		!slices.ContainsFunc(cur, func(in *instance) bool { return !s.available(in) }) {
		s.stable, s.rolling = run, nil
		s.report(Outcome{ReleaseID: run.rel.ID, Status: RolloutCompleted})
	}
	s.prune(run)
}

// busiestOther returns the revision, other than the one rolling out,
// with the most ready instances; nil if none has any.
func (s *service) busiestOther() *revision {
	count := map[*revision]int{}
	var best *revision
	for _, in := range s.live() {
		if in.rev == s.rolling || !in.ready {
			continue
		}
		count[in.rev]++
		if best == nil || count[in.rev] > count[best] {
			best = in.rev
		}
	}
	return best
}

// available reports whether in counts as serving: ready, and, for an
// instance of the release being rolled out, ready for MinReady already
// (a release that is ready for a moment and then crashes must not
// replace the one that works).
func (s *service) available(in *instance) bool {
	if !in.ready || in.terminating || in.crashed {
		return false
	}
	return in.rev != s.rolling || in.everReady || time.Since(in.readySince) >= s.c.opts.MinReady
}

// failure says why the rollout in progress failed, or "" while it may
// still succeed: an instance of it not ready within the release's
// ReadyTimeout, or its instances dying MaxStartFailures times before it
// completed.
func (s *service) failure(want int) string {
	if want == 0 {
		return ""
	}
	if s.crashes >= s.c.opts.MaxStartFailures {
		return fmt.Sprintf("instances died %d times during the rollout, the last one %s: %s", s.crashes, s.lastCrash, s.lastWhy)
	}
	for _, in := range s.live() {
		if in.rev != s.rolling || in.everReady {
			continue
		}
		timeout := s.readyTimeout(in.rev)
		if time.Since(in.clock) >= timeout {
			return fmt.Sprintf("instance %s not ready within %s: %s", in.name, timeout, s.notReadyWhy(in))
		}
	}
	return ""
}

// notReadyWhy says why an instance is not ready, in the words of its
// last failed check.
func (s *service) notReadyWhy(in *instance) string {
	switch {
	case in.crashed && in.why != "":
		return in.why
	case in.prober != nil:
		st := in.prober.State()
		if st.Failure != "" {
			return string(st.FailedCheck) + ": " + st.Failure
		}
		if !st.Started {
			return "its startup check has not passed"
		}
		return "its readiness check has not passed"
	}
	if why, _ := in.pollErr.Load().(string); why != "" {
		return why
	}
	return "it did not start"
}

// prune forgets revisions nothing refers to.
func (s *service) prune(run *revision) {
	for key, rev := range s.revs {
		if rev == run || rev == s.stable || rev == s.rolling || key == revKey(s.cur.Release.ID, s.cur.Restart) {
			continue
		}
		if !slices.ContainsFunc(s.insts, func(in *instance) bool { return in.rev == rev }) {
			delete(s.revs, key)
		}
	}
}

// limits are a rolling update's surge and unavailability for want
// instances: the strategy's, or Kubernetes' defaults (25% each, surge
// rounded up and unavailability down) when it sets neither, and at
// least one surge instance when both come out zero, or the rollout could
// never move.
func limits(st Strategy, want int) (surge, unavailable int) {
	surge, unavailable = max(st.MaxSurge, 0), max(st.MaxUnavailable, 0)
	if surge == 0 && unavailable == 0 {
		surge, unavailable = (want+3)/4, want/4
	}
	if surge == 0 && unavailable == 0 {
		surge = 1
	}
	return surge, unavailable
}

// nextDeadline is when the loop must look again without any event: a
// dead instance's back-off ends, or a new instance's time to become
// ready runs out.
func (s *service) nextDeadline() (time.Time, bool) {
	var next time.Time
	consider := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	for _, in := range s.live() {
		if in.crashed && in.wid == "" {
			consider(in.restartAt)
		}
		if s.rolling != nil && in.rev == s.rolling && !in.everReady {
			consider(in.clock.Add(s.readyTimeout(in.rev)))
			if in.ready {
				consider(in.readySince.Add(s.c.opts.MinReady))
			}
		}
	}
	return next, !next.IsZero()
}

// handle applies an instance's event.
func (s *service) handle(ev event) {
	in := ev.inst
	if ev.kind == evGone {
		if ev.exit.Reason != "" {
			s.c.log.Warn("stopping an instance", "service", s.id, "instance", in.name, "workload", ev.wid, "error", ev.exit.Reason)
		}
		if in.wid == ev.wid {
			in.wid, in.ports = "", nil
		}
		if in.terminating {
			s.insts = slices.DeleteFunc(s.insts, func(x *instance) bool { return x == in })
		}
		return
	}
	if in.wid != ev.wid || in.terminating || in.crashed {
		return // about a workload the instance no longer runs
	}
	switch ev.kind {
	case evReady:
		in.started, in.ready, in.readySince, in.status, in.adopting = true, true, time.Now(), TaskRunning, false
	case evExit:
		why := fmt.Sprintf("exited with code %d", ev.exit.ExitCode)
		if ev.exit.Reason == runtime.ReasonLost {
			why = "was lost by the runtime"
		}
		s.crash(in, why)
	case evProbe:
		switch ev.probe.Kind {
		case probe.Started:
			in.started, in.status = true, TaskRunning
		case probe.Ready:
			in.ready, in.readySince, in.adopting = true, time.Now(), false
		case probe.NotReady:
			in.ready = false
		case probe.Dead:
			s.crash(in, ev.probe.Message)
		}
	}
}

// crash takes a dead instance out of service and schedules its restart
// after its back-off.
func (s *service) crash(in *instance, why string) {
	now := time.Now()
	in.crashed, in.ready, in.why, in.status, in.adopting = true, false, why, TaskFailed, false
	in.restartAt = now.Add(in.backoff.Next(in.startedAt, now))
	if in.rev == s.rolling {
		s.crashes++
		s.lastCrash, s.lastWhy = "instance "+in.name, why
	}
	s.c.log.Info("instance died; restarting it after back-off", "service", s.id, "instance", in.name,
		"reason", why, "restart_in", time.Until(in.restartAt).Round(time.Millisecond))
	s.terminate(in, false)
	// Look again at once: this death may fail the rollout.
	s.poke()
}

// newInstance starts a new instance of rev.
func (s *service) newInstance(rev *revision) *instance {
	now := time.Now()
	in := &instance{name: s.instanceName(rev), rev: rev, created: now, clock: now, backoff: probe.NewBackoff(s.c.opts.Backoff)}
	s.insts = append(s.insts, in)
	s.startWorkload(in)
	return in
}

// instanceName is "<service>-<revision hash>-<random>", like a
// Kubernetes pod's name: the middle part tells the instances of one
// release (and restart) apart from another's at a glance.
func (s *service) instanceName(rev *revision) string {
	sum := sha256.Sum256([]byte(s.id + "/" + rev.key))
	var rnd [3]byte
	_, _ = rand.Read(rnd[:])
	name := s.cur.Name
	if name == "" {
		name = "instance"
	}
	return name + "-" + hex.EncodeToString(sum[:3]) + "-" + hex.EncodeToString(rnd[:])[:5]
}

// startWorkload starts (or, after a death, starts again) in's workload.
func (s *service) startWorkload(in *instance) {
	if in.wid != "" || s.ctx.Err() != nil {
		return
	}
	restart := in.crashed
	if restart {
		in.restarts++
	}
	in.crashed, in.ready, in.started, in.status, in.why = false, false, false, TaskStarting, ""
	in.pollErr.Store("")
	in.startedAt = time.Now()
	spec := s.spec(in)
	id, err := s.c.opts.Driver.Start(s.ctx, spec)
	if err != nil {
		if s.ctx.Err() != nil {
			return
		}
		s.c.log.Warn("starting an instance", "service", s.id, "instance", in.name, "error", err)
		s.crash(in, "could not be started: "+err.Error())
		if errors.Is(err, runtime.ErrUnsupported) && in.rev == s.rolling {
			// The driver cannot run this release at all (an image on
			// the process driver): trying again cannot help.
			s.crashes = max(s.crashes, s.c.opts.MaxStartFailures)
		}
		return
	}
	in.wid = id
	if st, err := s.c.opts.Driver.Status(s.ctx, id); err == nil {
		in.ports = st.Ports
		if !st.StartedAt.IsZero() {
			in.startedAt = st.StartedAt
		}
	}
	if !restart {
		in.created = in.startedAt
	}
	s.watch(in)
}

// spec is the workload of an instance: the release's template with the
// instance's name, labels and ports.
func (s *service) spec(in *instance) runtime.Spec {
	spec := cloneService(Service{Release: in.rev.rel}).Release.Workload
	spec.Name = workloadName(s.cur.ProjectName, in.name)
	if spec.Labels == nil {
		spec.Labels = map[string]string{}
	}
	for k, v := range map[string]string{
		LabelOwner: OwnerValue, LabelTeam: s.cur.TeamID, LabelProject: s.cur.ProjectID, LabelDeployment: s.id,
		LabelRelease: in.rev.rel.ID, LabelGeneration: strconv.FormatInt(in.rev.generation, 10),
		LabelInstance: in.name, LabelRestarts: strconv.Itoa(in.restarts),
	} {
		spec.Labels[k] = v
	}
	spec.Ports = nil
	for _, p := range in.rev.rel.Ports {
		proto := "tcp"
		if strings.EqualFold(p.Protocol, "UDP") {
			proto = "udp"
		}
		spec.Ports = append(spec.Ports, runtime.Port{Name: p.Name, Port: p.Port, Protocol: proto})
	}
	return spec
}

// workloadName is unique among the driver's workloads: instance names
// are unique within a service (random part) and service names within a
// project.
func workloadName(project, instance string) string {
	if project == "" {
		return instance
	}
	return project + "-" + instance
}

// terminate takes in out of the ingress, then drains it (its requests in
// flight, at most the grace period), stops it with the grace period and
// removes it, in the background. With final the instance goes for good;
// otherwise (a death) it is restarted later.
func (s *service) terminate(in *instance, final bool) {
	in.ready = false
	if final {
		in.terminating, in.status = true, TaskKilling
	}
	// Out of the ingress before anything else, so no new request reaches
	// it from here on.
	s.publishRoutes()
	if in.cancel != nil {
		in.cancel()
		in.cancel = nil
	}
	if in.prober != nil {
		in.prober = nil
	}
	wid := in.wid
	if wid == "" || in.stopping == wid {
		if final && wid == "" {
			s.insts = slices.DeleteFunc(s.insts, func(x *instance) bool { return x == in })
		}
		return
	}
	in.stopping = wid
	logsDone := in.logsDone
	grace := s.grace()
	drv, ing := s.c.opts.Driver, s.c.opts.Ingress
	s.c.wg.Add(1)
	go func() {
		defer s.c.wg.Done()
		if ing != nil {
			ctx, cancel := context.WithTimeout(s.ctx, grace)
			_ = ing.WaitIdle(ctx, wid)
			cancel()
		}
		// Stopping goes on if Slipway shuts down meanwhile: an instance
		// half stopped would be adopted by the next controller as if it
		// served.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), grace+time.Minute)
		defer cancel()
		var problem string
		if err := drv.Stop(ctx, wid, grace); err != nil && !errors.Is(err, runtime.ErrNotFound) {
			problem = err.Error()
		}
		if _, err := drv.Wait(ctx, wid); err != nil && !errors.Is(err, runtime.ErrNotFound) && problem == "" {
			problem = err.Error()
		}
		awaitLogs(logsDone)
		if err := drv.Remove(ctx, wid); err != nil && !errors.Is(err, runtime.ErrNotFound) && problem == "" {
			problem = err.Error()
		}
		s.send(event{inst: in, wid: wid, kind: evGone, exit: runtime.Status{Reason: problem}})
	}()
}

// publish makes the instances visible to Instances, Exec and Usage, and
// the routes to the ingress.
func (s *service) publish() {
	snap := make([]Instance, 0, len(s.insts))
	for _, in := range s.insts {
		snap = append(snap, in.view())
	}
	slices.SortStableFunc(snap, func(a, b Instance) int { return a.CreatedAt.Compare(b.CreatedAt) })
	s.c.mu.Lock()
	s.snapshot = snap
	s.c.mu.Unlock()
	s.publishRoutes()
}

// publishRoutes sets the service's routes in the ingress when they
// changed: one per public HTTP port of the applied release, to its ready
// instances. A paused service keeps its routes with no instance, so the
// ingress answers 503 (not 404: the service exists).
func (s *service) publishRoutes() {
	var routes []ingress.Route
	d := s.cur
	if !s.gone && routable(d.ProjectName, d.Name) {
		for _, p := range d.Release.Ports {
			if !p.Public || !isHTTP(p.Protocol) {
				continue
			}
			if !routable(p.Name) {
				s.c.log.Warn("a port is not routable", "service", s.id, "port", p.Name)
				continue
			}
			r := ingress.Route{Project: d.ProjectName, Service: d.Name, Port: p.Name}
			for _, in := range s.insts {
				if addr := in.ports[p.Name]; in.ready && !in.terminating && !in.crashed && in.wid != "" && addr != "" {
					r.Backends = append(r.Backends, ingress.Backend{ID: in.wid, Addr: addr})
				}
			}
			routes = append(routes, r)
		}
	}
	if slices.EqualFunc(routes, s.routes, func(a, b ingress.Route) bool {
		return a.Project == b.Project && a.Service == b.Service && a.Port == b.Port && slices.Equal(a.Backends, b.Backends)
	}) && (routes == nil) == (s.routes == nil) {
		return
	}
	s.routes = routes
	s.c.setRoutes(s.id, routes)
}

// report hands an outcome to the hooks.
func (s *service) report(o Outcome) {
	o.ServiceID = s.id
	s.c.hooks.Rollout(s.ctx, o)
}
