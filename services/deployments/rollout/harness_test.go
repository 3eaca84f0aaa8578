package rollout

import (
	"context"
	"fmt"
	"iter"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pkg/ingress"
	"github.com/slipwayhq/slipway/pkg/runtime"
	"github.com/slipwayhq/slipway/pkg/runtime/process"
)

// The tests run real workloads on the process driver (sandboxed, as in
// production) behind a real ingress; nothing is mocked.

// recorder is the Hooks of a test: it keeps every outcome and log line.
type recorder struct {
	mu       sync.Mutex
	outcomes []Outcome
	logs     map[string][]string // by workload id
	pumps    map[string]int      // Logs calls by workload id
	// onRollout, if set, sees each outcome as it is reported.
	onRollout func(Outcome)
}

func newRecorder() *recorder {
	return &recorder{logs: map[string][]string{}, pumps: map[string]int{}}
}

func (r *recorder) Rollout(_ context.Context, o Outcome) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.onRollout != nil {
		r.onRollout(o)
	}
	r.outcomes = append(r.outcomes, o)
}

func (r *recorder) Logs(_ context.Context, _ string, inst Instance, lines iter.Seq2[runtime.LogLine, error]) {
	r.mu.Lock()
	r.pumps[inst.WorkloadID]++
	r.mu.Unlock()
	for l, err := range lines {
		if err != nil {
			return
		}
		r.mu.Lock()
		r.logs[inst.WorkloadID] = append(r.logs[inst.WorkloadID], l.Text)
		r.mu.Unlock()
	}

}

// lines returns the lines the hooks got of a workload.
func (r *recorder) lines(workloadID string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.logs[workloadID])
}

func (r *recorder) Outcomes() []Outcome {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.outcomes)
}

// statuses lists the outcomes of a release as "STATUS" strings.
func (r *recorder) statuses(releaseID string) []string {
	var out []string
	for _, o := range r.Outcomes() {
		if o.ReleaseID == releaseID {
			out = append(out, o.Status)
		}
	}
	return out
}

func (r *recorder) last(releaseID string) (Outcome, bool) {
	out := r.Outcomes()
	for i := len(out) - 1; i >= 0; i-- {
		if out[i].ReleaseID == releaseID {
			return out[i], true
		}
	}
	return Outcome{}, false
}

// env is one test's driver, ingress and controller.
type env struct {
	t     *testing.T
	dir   string
	drv   *process.Driver
	in    *ingress.Ingress
	hooks *recorder
	c     *Controller
	stop  func() // ends Run and waits for it
}

// opts are the test's defaults: short everything.
func testOptions() Options {
	return Options{
		ReadyTimeout: 10 * time.Second,
		Grace:        2 * time.Second,
		AdoptGrace:   time.Second,
		ReadyPoll:    20 * time.Millisecond,
		MinReady:     300 * time.Millisecond,
		Logger:       slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, dir: dir}
	e.drv = openDriver(t, dir)
	in, err := ingress.New(ingress.Config{})
	if err != nil {
		t.Fatal(err)
	}
	e.in = in
	t.Cleanup(func() {
		// Workloads outlive their driver by design; a test's must not
		// outlive the test.
		d, err := process.New(dir)
		if err != nil {
			return
		}
		defer d.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		list, _ := d.List(ctx, nil)
		for _, w := range list {
			_ = d.Stop(ctx, w.ID, 0)
			_, _ = d.Wait(ctx, w.ID)
			_ = d.Remove(ctx, w.ID)
		}
	})
	e.start(testOptions())
	return e
}

func openDriver(t *testing.T, dir string) *process.Driver {
	t.Helper()
	d, err := process.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if n := d.Notice(); strings.Contains(n, "cannot") {
		t.Fatalf("the sandbox does not work here: %s", n)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// start makes a controller on e's driver and ingress and runs it.
func (e *env) start(opts Options) {
	e.t.Helper()
	opts.Driver, opts.Ingress = e.drv, e.in
	e.hooks = newRecorder()
	opts.Hooks = e.hooks
	c, err := New(opts)
	if err != nil {
		e.t.Fatal(err)
	}
	e.c = c
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	e.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					e.t.Errorf("Run: %v", err)
				}
			case <-time.After(30 * time.Second):
				e.t.Error("Run did not return within 30s of its context's end")
			}
		})
	}
	e.t.Cleanup(e.stop)
}

// restart simulates a restart of Slipway: the controller and the driver
// go away (the workloads keep running) and new ones start on the same
// state.
func (e *env) restart(opts Options) {
	e.t.Helper()
	e.stop()
	_ = e.drv.Close()
	e.drv = openDriver(e.t, e.dir)
	e.start(opts)
}

// eventually polls cond until it holds, failing the test after timeout.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// settled reports whether the service runs exactly n ready instances of
// release, all TASK_RUNNING, and nothing else.
func settled(c *Controller, serviceID, release string, n int) bool {
	insts := c.Instances(serviceID)
	if len(insts) != n {
		return false
	}
	for _, in := range insts {
		if in.ReleaseID != release || !in.Ready || in.Status != TaskRunning {
			return false
		}
	}
	return true
}

func (e *env) waitSettled(serviceID, release string, n int) []Instance {
	e.t.Helper()
	eventually(e.t, 30*time.Second, fmt.Sprintf("%d ready instances of %s", n, release), func() bool {
		return settled(e.c, serviceID, release, n)
	})
	return e.c.Instances(serviceID)
}

// workloads lists the driver's workloads of a service, running or not.
func (e *env) workloads(serviceID string) []runtime.Status {
	e.t.Helper()
	list, err := e.drv.List(context.Background(), map[string]string{LabelOwner: OwnerValue, LabelDeployment: serviceID})
	if err != nil {
		e.t.Fatal(err)
	}
	return list
}

// sleeper is a release whose instances run until stopped, without
// ports. sh is PID 1 of the sandbox and forwards nothing, but its child
// gets SIGTERM and sh ends with it.
func sleeper(id string) Release {
	return Release{ID: id, Workload: runtime.Spec{
		Command: []string{"/bin/sh", "-c", "echo started " + id + "; sleep 600"},
	}}
}

func svc(id string, rel Release, n int) Service {
	return Service{
		ID: id, TeamID: "team", ProjectID: "proj-id", ProjectName: "demo", Name: id,
		Release: rel, Instances: n, Grace: 2 * time.Second,
	}
}

func ids(insts []Instance) []string {
	var out []string
	for _, in := range insts {
		out = append(out, in.WorkloadID)
	}
	slices.Sort(out)
	return out
}
