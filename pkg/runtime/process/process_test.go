package process

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pkg/runtime"
)

func newDriver(t *testing.T, dir string) *Driver {
	t.Helper()
	d, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func sh(script string) runtime.Spec {
	return runtime.Spec{Command: []string{"/bin/sh", "-c", script}}
}

func start(t *testing.T, d *Driver, spec runtime.Spec) string {
	t.Helper()
	id, err := d.Start(ctxT(t), spec)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func wait(t *testing.T, d *Driver, id string) runtime.Status {
	t.Helper()
	st, err := d.Wait(ctxT(t), id)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != runtime.StateExited {
		t.Fatalf("state %s after Wait", st.State)
	}
	return st
}

func logs(t *testing.T, d *Driver, id string) []runtime.LogLine {
	t.Helper()
	var out []runtime.LogLine
	for l, err := range d.Logs(ctxT(t), id, false) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, l)
	}
	return out
}

func texts(ls []runtime.LogLine) []string {
	var out []string
	for _, l := range ls {
		out = append(out, l.Text)
	}
	return out
}

// gone reports whether pid no longer runs (zombies count as gone: whoever
// reparented them may not reap).
func gone(pid int) bool {
	st, err := readStat(pid)
	return err != nil || st.state == 'Z' || st.state == 'X'
}

func TestEchoStdoutStderr(t *testing.T) {
	d := newDriver(t, t.TempDir())
	before := time.Now()
	id := start(t, d, sh("echo hello; echo oops >&2"))
	st := wait(t, d, id)
	if st.ExitCode != 0 || st.Reason != "" {
		t.Fatalf("status %+v", st)
	}
	ls := logs(t, d, id)
	var out, errs int
	for _, l := range ls {
		if l.Time.Before(before.Add(-time.Second)) || l.Time.IsZero() {
			t.Errorf("bad time on %+v", l)
		}
		switch {
		case l.Stream == "stdout" && l.Text == "hello":
			out++
		case l.Stream == "stderr" && l.Text == "oops":
			errs++
		default:
			t.Errorf("unexpected line %+v", l)
		}
	}
	if out != 1 || errs != 1 {
		t.Fatalf("lines %+v", ls)
	}
	if d.Name() != "process" {
		t.Fatal(d.Name())
	}
}

func TestExitCode(t *testing.T) {
	d := newDriver(t, t.TempDir())
	st := wait(t, d, start(t, d, sh("exit 3")))
	if st.State != runtime.StateExited || st.ExitCode != 3 || st.Reason != "" {
		t.Fatalf("status %+v", st)
	}
	if st.FinishedAt.Before(st.StartedAt) {
		t.Fatalf("times %+v", st)
	}
}

func TestEntrypointPrepended(t *testing.T) {
	d := newDriver(t, t.TempDir())
	id := start(t, d, runtime.Spec{Entrypoint: []string{"/bin/sh", "-c"}, Command: []string{"echo via-entrypoint"}})
	wait(t, d, id)
	if got := texts(logs(t, d, id)); !slices.Equal(got, []string{"via-entrypoint"}) {
		t.Fatal(got)
	}
}

func TestEnvExactly(t *testing.T) {
	t.Setenv("SLIPWAY_PROCESS_TEST_LEAK", "leaked")
	d := newDriver(t, t.TempDir())
	id := start(t, d, runtime.Spec{Command: []string{"env"}, Env: map[string]string{"FOO": "bar", "EMPTY": ""}})
	if st := wait(t, d, id); st.ExitCode != 0 {
		t.Fatalf("status %+v (env not found on default PATH?) %v", st, texts(logs(t, d, id)))
	}
	got := texts(logs(t, d, id))
	for _, want := range []string{"FOO=bar", "EMPTY=", "PATH=" + DefaultPath} {
		if !slices.Contains(got, want) {
			t.Errorf("missing %q in %v", want, got)
		}
	}
	for _, l := range got {
		if strings.HasPrefix(l, "SLIPWAY_PROCESS_TEST_LEAK=") {
			t.Errorf("inherited %q", l)
		}
		k, _, _ := strings.Cut(l, "=")
		// The shim's shell exports PWD (the working directory); nothing
		// else may appear.
		if !slices.Contains([]string{"FOO", "EMPTY", "PATH", "PWD"}, k) {
			t.Errorf("unexpected variable %q", l)
		}
	}

	id = start(t, d, runtime.Spec{Command: []string{"/usr/bin/env"}, Env: map[string]string{"PATH": "/nowhere"}})
	wait(t, d, id)
	if got := texts(logs(t, d, id)); !slices.Contains(got, "PATH=/nowhere") {
		t.Errorf("given PATH not kept: %v", got)
	}
}

func TestWorkDirPerRun(t *testing.T) {
	dir := t.TempDir()
	d := newDriver(t, dir)
	a := start(t, d, sh("pwd; echo a > mine"))
	b := start(t, d, sh("pwd; ls"))
	wait(t, d, a)
	wait(t, d, b)
	pa, pb := texts(logs(t, d, a)), texts(logs(t, d, b))
	if len(pa) != 1 || len(pb) != 1 || pa[0] == pb[0] {
		t.Fatalf("work dirs %v %v", pa, pb)
	}
	if real, _ := filepath.EvalSymlinks(filepath.Join(dir, a, "work")); pa[0] != real && pa[0] != filepath.Join(dir, a, "work") {
		t.Fatalf("work dir %q", pa[0])
	}
	if _, err := os.Stat(filepath.Join(dir, a, "work", "mine")); err != nil {
		t.Fatal(err)
	}
}

func TestImageUnsupported(t *testing.T) {
	d := newDriver(t, t.TempDir())
	_, err := d.Start(ctxT(t), runtime.Spec{Image: "alpine:3", Command: []string{"true"}})
	if !errors.Is(err, runtime.ErrUnsupported) || !strings.Contains(err.Error(), "not images") {
		t.Fatalf("err %v", err)
	}
	if _, err := d.Start(ctxT(t), runtime.Spec{}); err == nil {
		t.Fatal("empty command accepted")
	}
	if _, err := d.Status(ctxT(t), "nope"); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("err %v", err)
	}
	if _, err := d.Status(ctxT(t), strings.Repeat("ab", 12)); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("err %v", err)
	}
}

func TestDeadlineKillsGroup(t *testing.T) {
	d := newDriver(t, t.TempDir())
	spec := sh("sleep 60 & echo $!; sleep 60")
	spec.Deadline = 500 * time.Millisecond
	id := start(t, d, spec)
	st := wait(t, d, id)
	if st.Reason != runtime.ReasonDeadline || st.ExitCode == 0 {
		t.Fatalf("status %+v", st)
	}
	var got []string
	for _, l := range logs(t, d, id) {
		if l.Stream == "stdout" { // stderr may say "Terminated"
			got = append(got, l.Text)
		}
	}
	if len(got) != 1 {
		t.Fatalf("logs %v", got)
	}
	child, err := strconv.Atoi(got[0])
	if err != nil {
		t.Fatal(err)
	}
	if !gone(child) {
		t.Fatalf("background child %d survived", child)
	}
	var pf pidFile
	if err := readJSON(d.path(id, "pid"), &pf); err != nil {
		t.Fatal(err)
	}
	if n := groupMembers(pf.PGID); n != 0 {
		t.Fatalf("%d processes left in the group", n)
	}
}

func TestDeadlineSigkillAfterGrace(t *testing.T) {
	d := newDriver(t, t.TempDir())
	d.KillGrace = 300 * time.Millisecond
	spec := sh("trap '' TERM; sleep 60")
	spec.Deadline = 300 * time.Millisecond
	id := start(t, d, spec)
	st := wait(t, d, id)
	if st.Reason != runtime.ReasonDeadline || st.ExitCode != 137 {
		t.Fatalf("status %+v", st)
	}
}

func TestStop(t *testing.T) {
	d := newDriver(t, t.TempDir())
	id := start(t, d, sh("sleep 60"))
	if st, _ := d.Status(ctxT(t), id); st.State != runtime.StateRunning {
		t.Fatalf("status %+v", st)
	}
	if err := d.Remove(ctxT(t), id); err == nil {
		t.Fatal("removed a running workload")
	}
	if err := d.Stop(ctxT(t), id, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	st := wait(t, d, id)
	if st.Reason != runtime.ReasonStopped || st.ExitCode == 0 {
		t.Fatalf("status %+v", st)
	}
	if err := d.Stop(ctxT(t), id, time.Second); err != nil {
		t.Fatalf("stop of a finished run: %v", err)
	}
}

func TestLogsFollow(t *testing.T) {
	d := newDriver(t, t.TempDir())
	id := start(t, d, sh("echo one; sleep 1; echo two; sleep 1; echo three"))
	var got []string
	for l, err := range d.Logs(ctxT(t), id, true) {
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 {
			// The first line arrives while the command still runs.
			if st, _ := d.Status(ctxT(t), id); st.State != runtime.StateRunning {
				t.Errorf("first line only after exit: %+v", st)
			}
		}
		got = append(got, l.Text)
	}
	if !slices.Equal(got, []string{"one", "two", "three"}) {
		t.Fatal(got)
	}
}

func TestLongLineSplitAndPartial(t *testing.T) {
	d := newDriver(t, t.TempDir())
	id := start(t, d, sh("head -c 70000 /dev/zero | tr '\\0' x; echo; printf tail"))
	wait(t, d, id)
	got := texts(logs(t, d, id))
	if len(got) != 3 || len(got[0]) != MaxLineBytes || len(got[1]) != 70000-MaxLineBytes || got[2] != "tail" {
		t.Fatalf("%d lines", len(got))
	}
}

func TestListAndRemove(t *testing.T) {
	d := newDriver(t, t.TempDir())
	a := start(t, d, runtime.Spec{Name: "p-a", Command: []string{"true"}, Labels: map[string]string{"project": "p", "job": "a"}})
	b := start(t, d, runtime.Spec{Name: "p-b", Command: []string{"true"}, Labels: map[string]string{"project": "p", "job": "b"}})
	c := start(t, d, runtime.Spec{Name: "q-a", Command: []string{"true"}, Labels: map[string]string{"project": "q", "job": "a"}})
	if _, err := d.Start(ctxT(t), runtime.Spec{Name: "p-a", Command: []string{"true"}}); err == nil {
		t.Fatal("duplicate name accepted")
	}
	for _, id := range []string{a, b, c} {
		wait(t, d, id)
	}
	ids := func(labels map[string]string) []string {
		sts, err := d.List(ctxT(t), labels)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, s := range sts {
			out = append(out, s.ID)
		}
		slices.Sort(out)
		return out
	}
	sorted := func(s ...string) []string { slices.Sort(s); return s }
	if got := ids(map[string]string{"project": "p"}); !slices.Equal(got, sorted(a, b)) {
		t.Fatal(got)
	}
	if got := ids(map[string]string{"job": "a"}); !slices.Equal(got, sorted(a, c)) {
		t.Fatal(got)
	}
	if got := ids(nil); !slices.Equal(got, sorted(a, b, c)) {
		t.Fatal(got)
	}
	if got := ids(map[string]string{"project": "p", "job": "c"}); len(got) != 0 {
		t.Fatal(got)
	}
	if err := d.Remove(ctxT(t), a); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Status(ctxT(t), a); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("err %v", err)
	}
	if got := ids(nil); !slices.Equal(got, sorted(b, c)) {
		t.Fatal(got)
	}
	if err := d.Remove(ctxT(t), a); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("err %v", err)
	}
}

func checkRestarted(t *testing.T, dir string) {
	t.Helper()
	d2 := newDriver(t, dir)
	sts, err := d2.List(ctxT(t), map[string]string{"run": "r1"})
	if err != nil || len(sts) != 1 {
		t.Fatalf("list %v %+v", err, sts)
	}
	st := wait(t, d2, sts[0].ID)
	if st.ExitCode != 7 || st.Reason != "" {
		t.Fatalf("status %+v", st)
	}
	if got := texts(logs(t, d2, sts[0].ID)); !slices.Equal(got, []string{"before", "done"}) {
		t.Fatalf("logs %v", got)
	}
}

// The first driver is thrown away while it still runs (it may keep
// watching: the two must not both write the log).
func TestRestartAbandoned(t *testing.T) {
	dir := t.TempDir()
	d1, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	id := start(t, d1, runtime.Spec{Command: []string{"/bin/sh", "-c", "echo before; sleep 1; echo done; exit 7"}, Labels: map[string]string{"run": "r1"}})
	_ = id
	checkRestarted(t, dir)
}

// The first driver dies (its watchers end; the run keeps going): the new
// one reattaches, watches the process and reads the shim's exit status.
func TestRestartReattach(t *testing.T) {
	dir := t.TempDir()
	d1, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	id := start(t, d1, runtime.Spec{Command: []string{"/bin/sh", "-c", "echo before; sleep 1; echo done; exit 7"}, Labels: map[string]string{"run": "r1"}})
	_ = d1.Close()
	if st, _ := d1.Status(ctxT(t), id); st.State != runtime.StateRunning {
		t.Fatalf("status %+v", st)
	}
	checkRestarted(t, dir)
}

func TestRestartDeadlineStillEnforced(t *testing.T) {
	dir := t.TempDir()
	d1, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	spec := sh("sleep 60")
	spec.Deadline = 500 * time.Millisecond
	id := start(t, d1, spec)
	_ = d1.Close()
	d2 := newDriver(t, dir)
	if st := wait(t, d2, id); st.Reason != runtime.ReasonDeadline {
		t.Fatalf("status %+v", st)
	}
}

func TestRestartLost(t *testing.T) {
	dir := t.TempDir()
	d1, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	id := start(t, d1, sh("echo hi; sleep 60"))
	_ = d1.Close()
	var pf pidFile
	if err := readJSON(filepath.Join(dir, id, "pid"), &pf); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(-pf.PGID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !gone(pf.PID) {
		if time.Now().After(deadline) {
			t.Fatal("shim survived SIGKILL")
		}
		time.Sleep(20 * time.Millisecond)
	}
	d2 := newDriver(t, dir)
	st, err := d2.Status(ctxT(t), id)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != runtime.StateExited || st.Reason != runtime.ReasonLost || st.ExitCode != -1 {
		t.Fatalf("status %+v", st)
	}
}
