package process

import (
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
	"github.com/slipwayhq/slipway/pkg/runtime/runtimetest"
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

func sh(script string) runtime.Spec {
	return runtime.Spec{Command: []string{"/bin/sh", "-c", script}}
}

// gone reports whether pid no longer runs (zombies count as gone: whoever
// reparented them may not reap).
func gone(pid int) bool {
	st, err := readStat(pid)
	return err != nil || st.state == 'Z' || st.state == 'X'
}

// TestDefaultPath: a spec without PATH gets DefaultPath, so programs
// resolve as on the host; the conformance suite checks that a given PATH
// is kept.
func TestDefaultPath(t *testing.T) {
	d := newDriver(t, t.TempDir())
	id := runtimetest.Start(t, d, runtime.Spec{Command: []string{"/bin/sh", "-c", `echo "$PATH"`}})
	runtimetest.Wait(t, d, id)
	if got := runtimetest.Texts(t, runtimetest.Logs(t, d, id, false), ""); !slices.Equal(got, []string{DefaultPath}) {
		t.Fatalf("PATH %q, want %q", got, DefaultPath)
	}
}

// TestWorkDirPerRun: every run works in a directory of its own, which it
// sees as WorkDir.
func TestWorkDirPerRun(t *testing.T) {
	dir := t.TempDir()
	d := newDriver(t, dir)
	a := runtimetest.Start(t, d, sh("pwd; echo a > mine"))
	runtimetest.Wait(t, d, a)
	b := runtimetest.Start(t, d, sh("pwd; ls"))
	runtimetest.Wait(t, d, b)
	pa, pb := runtimetest.Texts(t, runtimetest.Logs(t, d, a, false), ""), runtimetest.Texts(t, runtimetest.Logs(t, d, b, false), "")
	if !slices.Equal(pa, []string{WorkDir}) || !slices.Equal(pb, []string{WorkDir}) {
		t.Fatalf("work dirs %v %v, want %s (and b's empty)", pa, pb, WorkDir)
	}
	if _, err := os.Stat(filepath.Join(dir, a, "work", "mine")); err != nil {
		t.Fatal(err)
	}
}

func TestImageUnsupported(t *testing.T) {
	d := newDriver(t, t.TempDir())
	_, err := d.Start(runtimetest.Context(t), runtime.Spec{Image: "alpine:3", Command: []string{"true"}})
	if !errors.Is(err, runtime.ErrUnsupported) || !strings.Contains(err.Error(), "not images") {
		t.Fatalf("err %v", err)
	}
	if _, err := d.Start(runtimetest.Context(t), runtime.Spec{}); err == nil {
		t.Fatal("empty command accepted")
	}
	if _, err := d.Status(runtimetest.Context(t), "nope"); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("err %v", err)
	}
	if _, err := d.Status(runtimetest.Context(t), strings.Repeat("ab", 12)); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("err %v", err)
	}
}

func TestDeadlineKillsGroup(t *testing.T) {
	d := newDriver(t, t.TempDir())
	spec := sh("sleep 60 & echo $!; sleep 60")
	spec.Deadline = 500 * time.Millisecond
	id := runtimetest.Start(t, d, spec)
	st := runtimetest.Wait(t, d, id)
	if st.Reason != runtime.ReasonDeadline || st.ExitCode == 0 {
		t.Fatalf("status %+v", st)
	}
	var sf specFile
	if err := readJSON(d.path(id, "spec.json"), &sf); err != nil {
		t.Fatal(err)
	}
	if n := len(processesOf(t, sf.UID)); n != 0 {
		t.Fatalf("%d processes of the run's uid %d survived", n, sf.UID)
	}
	var pf pidFile
	if err := readJSON(d.path(id, "pid"), &pf); err != nil {
		t.Fatal(err)
	}
	if n := groupMembers(pf.PGID); n != 0 {
		t.Fatalf("%d processes left in the group", n)
	}
}

// TestRestartAbandoned: the first driver is thrown away while its run
// goes on, without Close (the conformance suite restarts after a Close):
// it may keep watching, and the two must not both write the log.
func TestRestartAbandoned(t *testing.T) {
	dir := t.TempDir()
	d1, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d1.Close() })
	runtimetest.Start(t, d1, runtime.Spec{Command: []string{"/bin/sh", "-c", "echo before; sleep 1; echo done; exit 7"}, Labels: map[string]string{"run": "r1"}})
	d2 := newDriver(t, dir)
	sts, err := d2.List(runtimetest.Context(t), map[string]string{"run": "r1"})
	if err != nil || len(sts) != 1 {
		t.Fatalf("list %v %+v", err, sts)
	}
	st := runtimetest.Wait(t, d2, sts[0].ID)
	if st.ExitCode != 7 || st.Reason != "" {
		t.Fatalf("status %+v", st)
	}
	if got := runtimetest.Texts(t, runtimetest.Logs(t, d2, sts[0].ID, false), ""); !slices.Equal(got, []string{"before", "done"}) {
		t.Fatalf("logs %v", got)
	}
}

func TestRestartLost(t *testing.T) {
	dir := t.TempDir()
	d1, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	id := runtimetest.Start(t, d1, sh("echo hi; sleep 60"))
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
	st, err := d2.Status(runtimetest.Context(t), id)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != runtime.StateExited || st.Reason != runtime.ReasonLost || st.ExitCode != -1 {
		t.Fatalf("status %+v", st)
	}
}

// processesOf lists the live processes of host uid.
func processesOf(t *testing.T, uid int) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/status")
		if err != nil || gone(pid) {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "Uid:" && f[1] == strconv.Itoa(uid) {
				out = append(out, pid)
			}
		}
	}
	return out
}
