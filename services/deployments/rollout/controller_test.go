package rollout

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pkg/probe"
	"github.com/slipwayhq/slipway/pkg/runtime"
)

func TestNewNeedsADriver(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Fatal("New without a driver succeeded")
	}
}

// TestDeploy: instances of the release start with the controller's
// labels, become ready, and the rollout reports IN_PROGRESS then
// COMPLETED; the hooks get their logs.
func TestDeploy(t *testing.T) {
	e := newEnv(t)
	e.c.Apply(svc("web", sleeper("r1"), 2))
	insts := e.waitSettled("web", "r1", 2)
	eventually(t, 5*time.Second, "COMPLETED", func() bool {
		return slices.Equal(e.hooks.statuses("r1"), []string{RolloutInProgress, RolloutCompleted})
	})
	for _, in := range insts {
		if !strings.HasPrefix(in.Name, "web-") || in.Restarts != 0 || in.CreatedAt.IsZero() {
			t.Fatalf("instance %+v", in)
		}
	}
	if insts[0].Name[:10] != insts[1].Name[:10] || insts[0].Name == insts[1].Name {
		t.Fatalf("names %s %s: want one release part and unique suffixes", insts[0].Name, insts[1].Name)
	}
	ws := e.workloads("web")
	if len(ws) != 2 {
		t.Fatalf("%d workloads", len(ws))
	}
	for _, w := range ws {
		l := w.Labels
		if l[LabelTeam] != "team" || l[LabelProject] != "proj-id" || l[LabelRelease] != "r1" || l[LabelGeneration] != "0" ||
			l[LabelRestarts] != "0" || !slices.ContainsFunc(insts, func(in Instance) bool { return in.Name == l[LabelInstance] && in.WorkloadID == w.ID }) {
			t.Fatalf("labels %v", l)
		}
		if w.Name != "demo-"+l[LabelInstance] {
			t.Fatalf("workload name %q", w.Name)
		}
	}
	eventually(t, 5*time.Second, "logs through the hooks", func() bool {
		e.hooks.mu.Lock()
		defer e.hooks.mu.Unlock()
		return slices.Contains(e.hooks.logs[insts[0].WorkloadID], "started r1") && slices.Contains(e.hooks.logs[insts[1].WorkloadID], "started r1")
	})
}

// TestRollingUpdate: a new release replaces every instance, never with
// fewer ready than wanted (surge 1, unavailable 0 for 2 instances), and
// the old workloads are stopped and removed.
func TestRollingUpdate(t *testing.T) {
	e := newEnv(t)
	e.c.Apply(svc("web", sleeper("r1"), 2))
	old := e.waitSettled("web", "r1", 2)

	stopWatch := make(chan struct{})
	watched := make(chan []string, 1)
	go func() {
		// Samples the ready count all along the rollout.
		var bad []string
		for {
			select {
			case <-stopWatch:
				watched <- bad
				return
			case <-time.After(5 * time.Millisecond):
			}
			ready, total := 0, 0
			for _, in := range e.c.Instances("web") {
				if in.Status != TaskKilling {
					total++
				}
				if in.Ready {
					ready++
				}
			}
			if ready < 2 || total > 3 {
				bad = append(bad, "ready "+strconv.Itoa(ready)+" of "+strconv.Itoa(total))
			}
		}
	}()
	// COMPLETED means the old instances are gone, not just going.
	atCompletion := make(chan int, 1)
	e.hooks.mu.Lock()
	e.hooks.onRollout = func(o Outcome) {
		if o.ReleaseID == "r2" && o.Status == RolloutCompleted {
			atCompletion <- len(e.workloads("web"))
		}
	}
	e.hooks.mu.Unlock()
	e.c.Apply(svc("web", sleeper("r2"), 2))
	now := e.waitSettled("web", "r2", 2)
	close(stopWatch)
	if bad := <-watched; len(bad) > 0 {
		t.Fatalf("availability broken during the rollout: %v", bad)
	}
	if slices.ContainsFunc(now, func(in Instance) bool { return slices.Contains(ids(old), in.WorkloadID) }) {
		t.Fatal("an old workload survived")
	}
	eventually(t, 10*time.Second, "old workloads removed", func() bool { return len(e.workloads("web")) == 2 })
	eventually(t, 5*time.Second, "r2 COMPLETED", func() bool {
		return slices.Equal(e.hooks.statuses("r2"), []string{RolloutInProgress, RolloutCompleted})
	})
	if n := <-atCompletion; n != 2 {
		t.Fatalf("%d workloads when COMPLETED was reported, want the 2 new ones only", n)
	}
}

// TestRecreate: every old instance is gone before a new one starts.
func TestRecreate(t *testing.T) {
	e := newEnv(t)
	s := svc("web", sleeper("r1"), 2)
	s.Strategy.Recreate = true
	e.c.Apply(s)
	e.waitSettled("web", "r1", 2)
	s.Release = sleeper("r2")
	e.c.Apply(s)
	mixed := false
	deadline := time.Now().Add(30 * time.Second)
	for !settled(e.c, "web", "r2", 2) && time.Now().Before(deadline) {
		ws := e.workloads("web")
		rels := map[string]bool{}
		for _, w := range ws {
			if w.State == runtime.StateRunning {
				rels[w.Labels[LabelRelease]] = true
			}
		}
		mixed = mixed || len(rels) > 1
		time.Sleep(5 * time.Millisecond)
	}
	e.waitSettled("web", "r2", 2)
	if mixed {
		t.Fatal("old and new instances ran together")
	}
}

// TestRecreateRollsBack: with Recreate the old instances are gone when
// the new release fails, so restoring the old release starts it again.
func TestRecreateRollsBack(t *testing.T) {
	e := newEnv(t)
	s := svc("web", sleeper("r1"), 2)
	s.Strategy.Recreate = true
	e.c.Apply(s)
	e.waitSettled("web", "r1", 2)
	bad := sleeper("r2")
	bad.ReadyTimeout = time.Second
	bad.HealthChecks = []probe.HealthCheck{{Protocol: probe.CMD, Type: probe.Readiness, Cmd: "/bin/false",
		PeriodSeconds: 1, TimeoutSeconds: 1, FailureThreshold: 1}}
	s.Release = bad
	e.c.Apply(s)
	eventually(t, 20*time.Second, "r2 FAILED", func() bool {
		o, ok := e.hooks.last("r2")
		return ok && o.Status == RolloutFailed && o.RestoredID == "r1"
	})
	e.waitSettled("web", "r1", 2)
}

// TestCrashingReleaseRollsBack: a release whose instances exit at once
// fails after MaxStartFailures deaths; the old instances were never
// stopped and the outcome names the instance and why.
func TestCrashingReleaseRollsBack(t *testing.T) {
	e := newEnv(t)
	opts := testOptions()
	opts.Backoff = probe.BackoffPolicy{Initial: 50 * time.Millisecond, Max: 100 * time.Millisecond}
	opts.MinReady = 2 * time.Second // see TestFirstReleaseFails
	e.stop()
	e.start(opts)
	e.c.Apply(svc("web", sleeper("r1"), 2))
	old := e.waitSettled("web", "r1", 2)

	bad := Release{ID: "r2", Workload: runtime.Spec{Command: []string{"/bin/sh", "-c", "echo boom; exit 3"}}}
	e.c.Apply(svc("web", bad, 2))
	eventually(t, 30*time.Second, "r2 FAILED", func() bool {
		o, ok := e.hooks.last("r2")
		return ok && o.Status == RolloutFailed
	})
	o, _ := e.hooks.last("r2")
	if o.RestoredID != "r1" || !strings.Contains(o.Reason, "instance web-") || !strings.Contains(o.Reason, "exited with code 3") {
		t.Fatalf("outcome %+v", o)
	}
	now := e.waitSettled("web", "r1", 2)
	if !slices.Equal(ids(now), ids(old)) {
		t.Fatalf("instances %v, want the old ones %v untouched", ids(now), ids(old))
	}
	eventually(t, 10*time.Second, "r2's workloads removed", func() bool { return len(e.workloads("web")) == 2 })
	// The failed release stays failed while it is the one applied (a
	// scale change does not retry it) ...
	e.c.Apply(svc("web", bad, 3))
	e.waitSettled("web", "r1", 3)
	if got := e.hooks.statuses("r2"); !slices.Equal(got, []string{RolloutInProgress, RolloutFailed}) {
		t.Fatalf("r2 outcomes %v", got)
	}
	// ... and a new Apply of another release rolls out as usual.
	e.c.Apply(svc("web", sleeper("r3"), 2))
	e.waitSettled("web", "r3", 2)
}

// TestNotReadyInTimeRollsBack: a release whose readiness check never
// passes fails after its ReadyTimeout, saying which check failed and
// how; the old release kept serving.
func TestNotReadyInTimeRollsBack(t *testing.T) {
	e := newEnv(t)
	e.c.Apply(svc("web", sleeper("r1"), 1))
	old := e.waitSettled("web", "r1", 1)
	bad := sleeper("r2")
	bad.ReadyTimeout = 1500 * time.Millisecond
	bad.HealthChecks = []probe.HealthCheck{{Protocol: probe.CMD, Type: probe.Readiness, Cmd: "/bin/false",
		PeriodSeconds: 1, TimeoutSeconds: 1, FailureThreshold: 1}}
	e.c.Apply(svc("web", bad, 1))
	eventually(t, 20*time.Second, "r2 FAILED", func() bool {
		o, ok := e.hooks.last("r2")
		return ok && o.Status == RolloutFailed
	})
	o, _ := e.hooks.last("r2")
	if o.RestoredID != "r1" || !strings.Contains(o.Reason, "not ready within 1.5s") || !strings.Contains(o.Reason, "readinessProbe: CMD health check") {
		t.Fatalf("outcome %+v", o)
	}
	if now := e.waitSettled("web", "r1", 1); !slices.Equal(ids(now), ids(old)) {
		t.Fatalf("instances %v, want %v", ids(now), ids(old))
	}
}

// TestSupersededRollout: a release applied while the previous one still
// rolls out replaces it; the unfinished one is reported FAILED as
// superseded (its record must not stay IN_PROGRESS), and the release that
// served all along serves until the newest is ready.
func TestSupersededRollout(t *testing.T) {
	e := newEnv(t)
	e.c.Apply(svc("web", sleeper("r1"), 1))
	old := e.waitSettled("web", "r1", 1)
	stuck := sleeper("r2")
	stuck.HealthChecks = []probe.HealthCheck{{Protocol: probe.CMD, Type: probe.Readiness, Cmd: "/bin/false",
		PeriodSeconds: 1, TimeoutSeconds: 1, FailureThreshold: 1}}
	gap := make(chan bool, 1)
	stop := make(chan struct{})
	go func() {
		// Samples whether some instance is ready all along.
		none := false
		for {
			select {
			case <-stop:
				gap <- none
				return
			case <-time.After(5 * time.Millisecond):
			}
			if !slices.ContainsFunc(e.c.Instances("web"), func(in Instance) bool { return in.Ready }) {
				none = true
			}
		}
	}()
	e.c.Apply(svc("web", stuck, 1))
	eventually(t, 10*time.Second, "r2 in progress", func() bool {
		return slices.Equal(e.hooks.statuses("r2"), []string{RolloutInProgress}) && len(e.c.Instances("web")) == 2
	})
	e.c.Apply(svc("web", sleeper("r3"), 1))
	e.waitSettled("web", "r3", 1)
	close(stop)
	if <-gap {
		t.Fatal("no instance was ready for a while")
	}
	o, _ := e.hooks.last("r2")
	if o.Status != RolloutFailed || !strings.Contains(o.Reason, "superseded by release r3") {
		t.Fatalf("r2's outcome %+v", o)
	}
	eventually(t, 5*time.Second, "r3 COMPLETED", func() bool {
		return slices.Equal(e.hooks.statuses("r3"), []string{RolloutInProgress, RolloutCompleted})
	})
	if ws := e.workloads("web"); len(ws) != 1 || ws[0].ID == old[0].WorkloadID || ws[0].Labels[LabelRelease] != "r3" {
		t.Fatalf("workloads %+v", ws)
	}
}

// TestOldNotReadyDuringRolloutStays: the one instance of the release that
// serves is not ready for a moment while a release that never becomes
// ready rolls out (a readiness check that failed once under load). It is
// kept: with the new instance not available either, stopping it would
// leave the service nothing to serve for the rest of the rollout (the
// ingress answering 503) and then a cold start of the release restored.
// Once ready again it serves, and it is the instance the failed rollout
// restores.
func TestOldNotReadyDuringRolloutStays(t *testing.T) {
	e := newEnv(t)
	flappy := Release{ID: "r1", Workload: runtime.Spec{Command: []string{"/bin/sh", "-c", "touch ready; sleep 600"}},
		HealthChecks: []probe.HealthCheck{{Protocol: probe.CMD, Type: probe.Readiness, Cmd: "test -e ready",
			PeriodSeconds: 1, TimeoutSeconds: 1, FailureThreshold: 1}}}
	e.c.Apply(svc("web", flappy, 1))
	old := e.waitSettled("web", "r1", 1)[0]
	bad := sleeper("r2")
	bad.ReadyTimeout = 8 * time.Second
	bad.HealthChecks = []probe.HealthCheck{{Protocol: probe.CMD, Type: probe.Readiness, Cmd: "/bin/false",
		PeriodSeconds: 1, TimeoutSeconds: 1, FailureThreshold: 1}}
	e.c.Apply(svc("web", bad, 1))
	eventually(t, 10*time.Second, "r2 in progress", func() bool {
		return slices.Equal(e.hooks.statuses("r2"), []string{RolloutInProgress}) && len(e.c.Instances("web")) == 2
	})
	ctx := context.Background()
	oldNow := func() (Instance, bool) {
		for _, in := range e.c.Instances("web") {
			if in.WorkloadID == old.WorkloadID {
				return in, true
			}
		}
		return Instance{}, false
	}
	if code, err := e.c.Exec(ctx, "web", old.Name, runtime.ExecSpec{Command: []string{"rm", "ready"}}); err != nil || code != 0 {
		t.Fatalf("rm ready in %s: %d, %v", old.Name, code, err)
	}
	eventually(t, 10*time.Second, "the old instance not ready", func() bool {
		in, ok := oldNow()
		return !ok || !in.Ready
	})
	// Not ready, it stays: for a while (several reconciles), and then
	// when it is ready again.
	for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if in, ok := oldNow(); !ok || in.Status != TaskRunning {
			t.Fatalf("the old instance, not ready during the rollout, was stopped: %+v (present %v); instances %+v", in, ok, e.c.Instances("web"))
		}
	}
	if code, err := e.c.Exec(ctx, "web", old.Name, runtime.ExecSpec{Command: []string{"touch", "ready"}}); err != nil || code != 0 {
		t.Fatalf("touch ready in %s: %d, %v", old.Name, code, err)
	}
	eventually(t, 10*time.Second, "the old instance ready again", func() bool {
		in, ok := oldNow()
		return ok && in.Ready
	})
	eventually(t, 20*time.Second, "r2 FAILED", func() bool {
		o, ok := e.hooks.last("r2")
		return ok && o.Status == RolloutFailed
	})
	if o, _ := e.hooks.last("r2"); o.RestoredID != "r1" {
		t.Fatalf("r2's outcome %+v", o)
	}
	if now := e.waitSettled("web", "r1", 1); now[0].WorkloadID != old.WorkloadID {
		t.Fatalf("instances %+v, want the old one %s", now, old.WorkloadID)
	}
}

// TestFirstReleaseFails: with nothing to restore, the failed release's
// instances go and the outcome has no RestoredID.
func TestFirstReleaseFails(t *testing.T) {
	e := newEnv(t)
	opts := testOptions()
	opts.Backoff = probe.BackoffPolicy{Initial: 20 * time.Millisecond, Max: 50 * time.Millisecond}
	// Ready as soon as it runs, /bin/false must not count as proven
	// before it exits, even on a loaded machine where its sandbox's
	// network takes a while.
	opts.MinReady = 2 * time.Second
	e.stop()
	e.start(opts)
	e.c.Apply(svc("web", Release{ID: "r1", Workload: runtime.Spec{Command: []string{"/bin/false"}}}, 1))
	eventually(t, 30*time.Second, "r1 FAILED", func() bool {
		o, ok := e.hooks.last("r1")
		return ok && o.Status == RolloutFailed && o.RestoredID == ""
	})
	eventually(t, 10*time.Second, "no instance left", func() bool {
		return len(e.c.Instances("web")) == 0 && len(e.workloads("web")) == 0
	})
}

// TestUnsupportedReleaseFailsAtOnce: a release the driver cannot run
// (an image on the process driver) fails at its first start, saying why,
// without waiting out back-offs; the old release serves on.
func TestUnsupportedReleaseFailsAtOnce(t *testing.T) {
	e := newEnv(t)
	e.c.Apply(svc("web", sleeper("r1"), 1))
	old := e.waitSettled("web", "r1", 1)
	t0 := time.Now()
	e.c.Apply(svc("web", Release{ID: "r2", Workload: runtime.Spec{Image: "nginx:1", Command: []string{"nginx"}}}, 1))
	eventually(t, 5*time.Second, "r2 FAILED", func() bool {
		o, ok := e.hooks.last("r2")
		return ok && o.Status == RolloutFailed
	})
	o, _ := e.hooks.last("r2")
	if o.RestoredID != "r1" || !strings.Contains(o.Reason, "could not be started") || !strings.Contains(o.Reason, "not images") {
		t.Fatalf("outcome %+v", o)
	}
	if d := time.Since(t0); d > 3*time.Second {
		t.Fatalf("failed after %v", d)
	}
	if now := e.waitSettled("web", "r1", 1); now[0].WorkloadID != old[0].WorkloadID {
		t.Fatal("the old instance was replaced")
	}
}

// TestRestartOnExit: an instance that exits is restarted under the same
// name with back-off, its restarts counted; the rollout is not failed
// for it once the release has been ready.
func TestRestartOnExit(t *testing.T) {
	e := newEnv(t)
	opts := testOptions()
	opts.Backoff = probe.BackoffPolicy{Initial: 100 * time.Millisecond, Max: 200 * time.Millisecond}
	e.stop()
	e.start(opts)
	rel := Release{ID: "r1", Workload: runtime.Spec{Command: []string{"/bin/sh", "-c", "sleep 1; exit 1"}}}
	e.c.Apply(svc("web", rel, 1))
	first := e.waitSettled("web", "r1", 1)[0]
	eventually(t, 20*time.Second, "two restarts", func() bool {
		insts := e.c.Instances("web")
		return len(insts) == 1 && insts[0].Restarts >= 2
	})
	in := e.c.Instances("web")[0]
	if in.Name != first.Name || in.WorkloadID == first.WorkloadID || !in.CreatedAt.Equal(first.CreatedAt) {
		t.Fatalf("restarted %+v, first %+v: want the same name and creation, a new workload", in, first)
	}
	if got := e.hooks.statuses("r1"); !slices.Equal(got, []string{RolloutInProgress, RolloutCompleted}) {
		t.Fatalf("outcomes %v", got)
	}
	// Dead workloads do not pile up.
	if n := len(e.workloads("web")); n > 1 {
		t.Fatalf("%d workloads", n)
	}
}

// TestScaleAndPause: scaling down stops the surplus, pausing stops all,
// resuming starts them again, a Restart change replaces every instance.
func TestScaleAndPause(t *testing.T) {
	e := newEnv(t)
	s := svc("web", sleeper("r1"), 3)
	e.c.Apply(s)
	three := e.waitSettled("web", "r1", 3)
	s.Instances = 1
	e.c.Apply(s)
	one := e.waitSettled("web", "r1", 1)
	if !slices.Contains(ids(three), one[0].WorkloadID) {
		t.Fatal("scaling down replaced the instance it kept")
	}
	eventually(t, 10*time.Second, "surplus removed", func() bool { return len(e.workloads("web")) == 1 })

	s.Paused = true
	e.c.Apply(s)
	eventually(t, 10*time.Second, "paused", func() bool {
		return len(e.c.Instances("web")) == 0 && len(e.workloads("web")) == 0
	})
	if _, err := e.c.Exec(context.Background(), "web", "", runtime.ExecSpec{Command: []string{"true"}}); !errors.Is(err, runtime.ErrNotRunning) {
		t.Fatalf("exec into a paused service: %v", err)
	}
	s.Paused = false
	e.c.Apply(s)
	resumed := e.waitSettled("web", "r1", 1)

	s.Restart++
	e.c.Apply(s)
	eventually(t, 20*time.Second, "restarted", func() bool {
		insts := e.c.Instances("web")
		return settled(e.c, "web", "r1", 1) && insts[0].WorkloadID != resumed[0].WorkloadID
	})
	if w := e.workloads("web"); len(w) != 1 || w[0].Labels[LabelGeneration] != "1" {
		t.Fatalf("workloads after a restart: %+v", w)
	}
}

// TestDelete: every instance goes, its last lines (written as it stops)
// handed to the hooks first, and the service is forgotten.
func TestDelete(t *testing.T) {
	e := newEnv(t)
	rel := Release{ID: "r1", Workload: runtime.Spec{Command: []string{"/bin/sh", "-c",
		`trap 'echo bye; exit 0' TERM; echo hello; while :; do sleep 0.05; done`}}}
	e.c.Apply(svc("web", rel, 2))
	insts := e.waitSettled("web", "r1", 2)
	// Ready as soon as they run; the trap is set once they said hello.
	for _, in := range insts {
		eventually(t, 10*time.Second, "hello", func() bool { return slices.Contains(e.hooks.lines(in.WorkloadID), "hello") })
	}
	e.c.Delete("web")
	eventually(t, 10*time.Second, "deleted", func() bool {
		return e.c.Instances("web") == nil && len(e.workloads("web")) == 0
	})
	for _, in := range insts {
		if got := e.hooks.lines(in.WorkloadID); !slices.Contains(got, "bye") {
			t.Errorf("lines of %s: %q", in.Name, got)
		}
	}
	if _, err := e.c.Exec(context.Background(), "web", "", runtime.ExecSpec{Command: []string{"true"}}); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("exec into a deleted service: %v", err)
	}
	if _, err := e.c.Usage(context.Background(), "web"); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("usage of a deleted service: %v", err)
	}
}

// TestAdoptAfterRestart: a new controller (Slipway restarted) keeps the
// running instances, whichever comes first, its Run or the Apply; an
// instance that died meanwhile is replaced.
func TestAdoptAfterRestart(t *testing.T) {
	for _, applyFirst := range []bool{false, true} {
		name := "run-then-apply"
		if applyFirst {
			name = "apply-then-run"
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			s := svc("web", sleeper("r1"), 3)
			e.c.Apply(s)
			before := e.waitSettled("web", "r1", 3)
			// Ready as soon as they run; running their command too once
			// they said so.
			for _, in := range before {
				eventually(t, 10*time.Second, "started", func() bool { return slices.Contains(e.hooks.lines(in.WorkloadID), "started r1") })
			}
			e.stop()
			// One instance dies while Slipway is down.
			ctx := context.Background()
			if err := e.drv.Stop(ctx, before[0].WorkloadID, time.Second); err != nil {
				t.Fatal(err)
			}
			if _, err := e.drv.Wait(ctx, before[0].WorkloadID); err != nil {
				t.Fatal(err)
			}
			_ = e.drv.Close()
			e.drv = openDriver(t, e.dir)
			if applyFirst {
				opts := testOptions()
				opts.Driver, opts.Ingress = e.drv, e.in
				e.hooks = newRecorder()
				opts.Hooks = e.hooks
				c, err := New(opts)
				if err != nil {
					t.Fatal(err)
				}
				c.Apply(s)
				e.c = c
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() { done <- c.Run(ctx) }()
				t.Cleanup(func() { cancel(); <-done })
			} else {
				e.start(testOptions())
				time.Sleep(100 * time.Millisecond)
				e.c.Apply(s)
			}
			after := e.waitSettled("web", "r1", 3)
			kept := 0
			for _, in := range after {
				i := slices.IndexFunc(before, func(b Instance) bool { return b.WorkloadID == in.WorkloadID })
				if i < 0 {
					continue
				}
				kept++
				if i == 0 || in.Name != before[i].Name || !in.CreatedAt.Equal(before[i].CreatedAt) || in.Restarts != 0 {
					t.Fatalf("adopted %+v, was %+v", in, before[i])
				}
			}
			if kept != 2 {
				t.Fatalf("kept %d of the 2 running instances", kept)
			}
			// The dead one's lines reached the hooks before it was removed.
			eventually(t, 5*time.Second, "the dead instance removed", func() bool { return len(e.workloads("web")) == 3 })
			if got := e.hooks.lines(before[0].WorkloadID); !slices.Contains(got, "started r1") {
				t.Errorf("lines of the dead instance: %q", got)
			}
			if got := e.hooks.Outcomes(); len(got) != 0 {
				t.Fatalf("adopting reported %v", got)
			}
		})
	}
}

// TestAdoptMidRollout: Slipway restarts while a release rolls out: the
// new controller is given only the new release, yet keeps the old
// release's instances serving (it cannot know their health checks, so
// it probes them as if they had none) until the new one is ready, and
// restores them when the new one fails.
func TestAdoptMidRollout(t *testing.T) {
	e := newEnv(t)
	e.c.Apply(svc("web", sleeper("r1"), 2))
	old := e.waitSettled("web", "r1", 2)
	stuck := sleeper("r2")
	stuck.ReadyTimeout = 3 * time.Second
	stuck.HealthChecks = []probe.HealthCheck{{Protocol: probe.CMD, Type: probe.Readiness, Cmd: "/bin/false",
		PeriodSeconds: 1, TimeoutSeconds: 1, FailureThreshold: 1}}
	e.c.Apply(svc("web", stuck, 2))
	eventually(t, 10*time.Second, "r2 in progress", func() bool { return len(e.workloads("web")) == 3 })
	e.restart(testOptions())
	e.c.Apply(svc("web", stuck, 2))
	eventually(t, 20*time.Second, "r2 FAILED", func() bool {
		o, ok := e.hooks.last("r2")
		return ok && o.Status == RolloutFailed
	})
	if o, _ := e.hooks.last("r2"); o.RestoredID != "r1" {
		t.Fatalf("outcome %+v", o)
	}
	if now := e.waitSettled("web", "r1", 2); !slices.Equal(ids(now), ids(old)) {
		t.Fatalf("instances %v, want the old %v kept", ids(now), ids(old))
	}
}

// TestUnclaimedWorkloadsAreLeftAlone: the workloads of a service nobody
// applies keep running; a Delete of its id removes them.
func TestUnclaimedWorkloadsAreLeftAlone(t *testing.T) {
	e := newEnv(t)
	e.c.Apply(svc("web", sleeper("r1"), 1))
	before := e.waitSettled("web", "r1", 1)
	e.restart(testOptions()) // AdoptGrace is 1s
	time.Sleep(1500 * time.Millisecond)
	ws := e.workloads("web")
	if len(ws) != 1 || ws[0].ID != before[0].WorkloadID || ws[0].State != runtime.StateRunning {
		t.Fatalf("workloads %+v", ws)
	}
	e.c.Delete("web")
	eventually(t, 10*time.Second, "deleted", func() bool { return len(e.workloads("web")) == 0 })
}

func TestLimits(t *testing.T) {
	for _, c := range []struct {
		st                Strategy
		want, surge, unav int
	}{
		{Strategy{}, 1, 1, 0},
		{Strategy{}, 2, 1, 0},
		{Strategy{}, 4, 1, 1},
		{Strategy{}, 10, 3, 2},
		{Strategy{}, 0, 1, 0},
		{Strategy{MaxSurge: 0, MaxUnavailable: 1}, 3, 0, 1},
		{Strategy{MaxSurge: 2}, 3, 2, 0},
	} {
		if s, u := limits(c.st, c.want); s != c.surge || u != c.unav {
			t.Errorf("limits(%+v, %d) = %d, %d; want %d, %d", c.st, c.want, s, u, c.surge, c.unav)
		}
	}
}
