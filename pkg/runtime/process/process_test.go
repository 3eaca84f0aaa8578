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

	"github.com/slipwayhq/slipway/pkg/procfs"
	"github.com/slipwayhq/slipway/pkg/runtime"
	"github.com/slipwayhq/slipway/pkg/runtime/runtimetest"
	"github.com/slipwayhq/slipway/pkg/testenv"
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
	st, err := procfs.ReadStat(pid)
	return err != nil || !st.Live()
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

// TestUserUnsupported: a Spec's User is the docker driver's; the process
// driver gives every workload a user of its own and says so.
func TestUserUnsupported(t *testing.T) {
	d := newDriver(t, t.TempDir())
	_, err := d.Start(runtimetest.Context(t), runtime.Spec{User: "999:999", Command: []string{"true"}})
	if !errors.Is(err, runtime.ErrUnsupported) || !strings.Contains(err.Error(), "999:999") {
		t.Fatalf("err %v", err)
	}
}

// TestVolumeUnsupported: the process driver has no named volumes and
// refuses a mount of one, saying so, instead of running without it.
func TestVolumeUnsupported(t *testing.T) {
	d := newDriver(t, t.TempDir())
	if _, ok := any(d).(runtime.Volumes); ok {
		t.Fatal("the process driver claims to keep volumes")
	}
	_, err := d.Start(runtimetest.Context(t), runtime.Spec{Command: []string{"true"}, Mounts: []runtime.Mount{{Volume: "data", Target: "/data"}}})
	if !errors.Is(err, runtime.ErrUnsupported) || !strings.Contains(err.Error(), "no volumes") {
		t.Fatalf("err %v", err)
	}
}

func TestDeadlineKillsGroup(t *testing.T) {
	d := newDriver(t, t.TempDir())
	// A sleep of a duration of its own is recognisable among the host's
	// processes.
	marker := "60.00" + strconv.Itoa(os.Getpid()%10000)
	spec := sh("sleep " + marker + " & sleep " + marker)
	spec.Deadline = 500 * time.Millisecond
	id := runtimetest.Start(t, d, spec)
	st := runtimetest.Wait(t, d, id)
	if st.Reason != runtime.ReasonDeadline || st.ExitCode == 0 {
		t.Fatalf("status %+v", st)
	}
	if n := len(testenv.Processes(t, marker)); n != 0 {
		t.Fatalf("%d processes of the run survived", n)
	}
	var sf specFile
	if err := readJSON(d.path(id, "spec.json"), &sf); err != nil {
		t.Fatal(err)
	}
	if sf.UID != 0 {
		if n := len(processesOf(t, sf.UID)); n != 0 {
			t.Fatalf("%d processes of the run's uid %d survived", n, sf.UID)
		}
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
	pids, err := procfs.PIDs()
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, pid := range pids {
		b, err := os.ReadFile(procfs.Path(pid, "status"))
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

// TestOwnUID: a workload runs as a user of its own: as root, a host uid of
// the range, never root nor the server's; as a user, SandboxUID in its user
// namespace.
func TestOwnUID(t *testing.T) {
	d := newDriver(t, t.TempDir())
	a := runtimetest.Start(t, d, sh("id -u; id -g; sleep 2"))
	b := runtimetest.Start(t, d, sh("id -u"))
	runtimetest.Wait(t, d, a)
	runtimetest.Wait(t, d, b)
	ua, ub := runtimetest.Texts(t, runtimetest.Logs(t, d, a, false), "stdout"), runtimetest.Texts(t, runtimetest.Logs(t, d, b, false), "stdout")
	if len(ua) != 2 || len(ub) != 1 {
		t.Fatalf("id: %q %q", ua, ub)
	}
	uid, _ := strconv.Atoi(ua[0])
	if os.Geteuid() != 0 {
		if uid != SandboxUID {
			t.Fatalf("uid %d in the sandbox, want %d", uid, SandboxUID)
		}
		return
	}
	if uid < DefaultUIDBase || uid >= DefaultUIDBase+DefaultUIDCount || ua[1] != ua[0] {
		t.Fatalf("uid %s gid %s, want one of %d+", ua[0], ua[1], DefaultUIDBase)
	}
	// Two runs at once never share a uid.
	if ub[0] == ua[0] {
		t.Fatalf("two concurrent runs both ran as %s", ua[0])
	}
}

// TestSystemFilesReadable: the workload's user reads the parts of /etc
// it is given and runs commands reached through them (awk is a Debian
// alternative, /etc/alternatives/awk). bwrap made /etc 0700, so neither
// worked for a workload with a uid of its own.
func TestSystemFilesReadable(t *testing.T) {
	d := newDriver(t, t.TempDir())
	id := runtimetest.Start(t, d, sh("ls /etc >/dev/null && grep -c '^root:' /etc/passwd && echo x | awk '{ print \"awk\" }'"))
	runtimetest.Wait(t, d, id)
	out := runtimetest.Texts(t, runtimetest.Logs(t, d, id, false), "")
	if len(out) != 2 || out[0] != "1" || out[1] != "awk" {
		t.Fatalf("the workload read and ran: %q", out)
	}
}

// TestCannotSignalByHostPID: knowing another run's host pid does not let a
// workload signal it: it is not in the workload's PID namespace.
func TestCannotSignalByHostPID(t *testing.T) {
	d := newDriver(t, t.TempDir())
	victim := runtimetest.Start(t, d, sh("echo ready; sleep 60"))
	waitReady(t, d, victim)
	var pf pidFile
	if err := readJSON(d.path(victim, "pid"), &pf); err != nil {
		t.Fatal(err)
	}
	var info struct {
		ChildPID int `json:"child-pid"`
	}
	if err := readJSON(d.path(victim, "info"), &info); err != nil || info.ChildPID <= 0 {
		t.Fatalf("info: %+v, %v", info, err)
	}
	// The victim's shim and sandbox get SIGKILL; the server (this test)
	// only the harmless probe of signal 0, which succeeds where a signal
	// would be allowed.
	spec := sh(`for p in $PIDS; do kill -9 $p 2>/dev/null && echo "KILLED $p"; kill -9 -$p 2>/dev/null && echo "KILLED -$p"; done
kill -0 $SERVER 2>/dev/null && echo "CAN SIGNAL $SERVER"; echo end`)
	spec.Env = map[string]string{"PIDS": strconv.Itoa(pf.PID) + " " + strconv.Itoa(info.ChildPID), "SERVER": strconv.Itoa(os.Getpid())}
	id := runtimetest.Start(t, d, spec)
	runtimetest.Wait(t, d, id)
	if got := runtimetest.Texts(t, runtimetest.Logs(t, d, id, false), "stdout"); !slices.Equal(got, []string{"end"}) {
		t.Fatalf("the hostile workload: %q", got)
	}
	if st, err := d.Status(runtimetest.Context(t), victim); err != nil || st.State != runtime.StateRunning {
		t.Fatalf("victim %+v, %v", st, err)
	}
	if err := d.Stop(runtimetest.Context(t), victim, 0); err != nil {
		t.Fatal(err)
	}
	runtimetest.Wait(t, d, victim)
}

// TestCgroupLimits: the plan's CPU and memory and the process cap are set
// on the run's cgroups, which go with the run.
func TestCgroupLimits(t *testing.T) {
	d, err := NewWith(t.TempDir(), Options{MaxProcs: 77})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	if d.sb.cg == nil {
		t.Fatalf("no cgroups on this host: %s", d.Notice())
	}
	if d.Notice() != "" {
		t.Fatalf("notice %q on a host with cgroups", d.Notice())
	}
	spec := sh("echo ready; sleep 60")
	spec.Resources = runtime.Resources{MilliCPU: 250, MemoryMB: 64}
	id := runtimetest.Start(t, d, spec)
	waitReady(t, d, id)
	var sf specFile
	if err := readJSON(d.path(id, "spec.json"), &sf); err != nil || len(sf.Cgroups) == 0 {
		t.Fatalf("spec %+v, %v", sf, err)
	}
	want := map[string]string{}
	if d.sb.cg.v2 {
		want = map[string]string{"pids.max": "77", "cpu.max": "25000 100000", "memory.max": strconv.Itoa(64 << 20)}
	} else {
		want = map[string]string{"pids.max": "77", "cpu.cfs_quota_us": "25000", "cpu.cfs_period_us": "100000", "memory.limit_in_bytes": strconv.Itoa(64 << 20)}
	}
	for file, v := range want {
		found := false
		for _, dir := range sf.Cgroups {
			if b, err := os.ReadFile(filepath.Join(dir, file)); err == nil {
				found = true
				if got := strings.TrimSpace(string(b)); got != v {
					t.Errorf("%s = %q, want %q", file, got, v)
				}
			}
		}
		if !found {
			t.Errorf("no %s in %v", file, sf.Cgroups)
		}
	}
	for _, dir := range sf.Cgroups {
		if len(procsOf(dir)) == 0 {
			t.Errorf("nothing of the run in %s", dir)
		}
	}
	if err := d.Stop(runtimetest.Context(t), id, 0); err != nil {
		t.Fatal(err)
	}
	runtimetest.Wait(t, d, id)
	for _, dir := range sf.Cgroups {
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("cgroup %s left behind: %v", dir, err)
		}
	}
}

// TestNoCgroupsSaysSo: where no cgroup can be used, the driver says so
// (for the start-up log and /health) instead of running unlimited without
// a word.
func TestNoCgroupsSaysSo(t *testing.T) {
	// A parent below a control file: no hierarchy can hold it.
	d, err := NewWith(t.TempDir(), Options{Cgroup: "cgroup.procs/slipway"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	if n := d.Notice(); !strings.Contains(n, "limits are not enforced") || !strings.Contains(d.Isolation(), "no cgroup limits") {
		t.Fatalf("notice %q, isolation %q", n, d.Isolation())
	}
	// Still sandboxed.
	id := runtimetest.Start(t, d, sh("pwd"))
	runtimetest.Wait(t, d, id)
	if got := runtimetest.Texts(t, runtimetest.Logs(t, d, id, false), ""); !slices.Equal(got, []string{WorkDir}) {
		t.Fatalf("pwd %q", got)
	}
}

// TestNoSandboxFailsRuns: without bubblewrap, runs fail with the reason;
// nothing runs unsandboxed unless the operator opts out.
func TestNoSandboxFailsRuns(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	d, err := NewWith(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	if _, err := d.Start(runtimetest.Context(t), sh("true")); err == nil || !strings.Contains(err.Error(), "bubblewrap") {
		t.Fatalf("Start without bubblewrap: %v", err)
	}
	if n := d.Notice(); !strings.Contains(n, "bubblewrap") {
		t.Fatalf("notice %q", n)
	}
}

// TestUnsandboxedOptOut: the explicit opt-out runs plain processes, and
// says so loudly.
func TestUnsandboxedOptOut(t *testing.T) {
	dir := t.TempDir()
	d, err := NewWith(dir, Options{Unsandboxed: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	if n := d.Notice(); !strings.Contains(n, "UNSANDBOXED") {
		t.Fatalf("notice %q", n)
	}
	id := runtimetest.Start(t, d, sh("pwd"))
	runtimetest.Wait(t, d, id)
	if got := runtimetest.Texts(t, runtimetest.Logs(t, d, id, false), ""); len(got) != 1 || !strings.HasSuffix(got[0], filepath.Join(id, "work")) {
		t.Fatalf("pwd %q, want the host's work directory", got)
	}
}

// waitReady follows the logs of id until it says "ready".
func waitReady(t *testing.T, d *Driver, id string) {
	t.Helper()
	for l, err := range d.Logs(runtimetest.Context(t), id, true) {
		if err != nil {
			t.Fatal(err)
		}
		if l.Text == "ready" {
			return
		}
	}
	t.Fatalf("%s ended without saying ready", id)
}

// TestHiddenUnderSystemDir: a data directory (and the state in it) that
// lies in a directory the sandbox sees read-only does not exist there.
func TestHiddenUnderSystemDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("writes under /usr/local, which needs root (CI runs as root)")
	}
	data, err := os.MkdirTemp("/usr/local", "slipway-test-data-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(data) })
	if err := os.Chmod(data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "encryption.key"), []byte("secret-key"), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := NewWith(filepath.Join(data, "runtime"), Options{Hide: []string{data}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	spec := sh(`ls -a "$DATA"; cat "$DATA/encryption.key" 2>&1; ls /usr/local >/dev/null && echo usr-visible`)
	spec.Env = map[string]string{"DATA": data}
	id := runtimetest.Start(t, d, spec)
	runtimetest.Wait(t, d, id)
	out := strings.Join(runtimetest.Texts(t, runtimetest.Logs(t, d, id, false), ""), "\n")
	if strings.Contains(out, "secret-key") || strings.Contains(out, "runtime") || !strings.Contains(out, "usr-visible") {
		t.Fatalf("the workload sees:\n%s", out)
	}
}

// TestStopEndsPlainCommand: Stop's SIGTERM reaches the processes of the
// sandbox, so a shell running a command without a TERM handler ends at
// once, not a grace later (PID 1 itself ignores it, its child does not).
func TestStopEndsPlainCommand(t *testing.T) {
	d := newDriver(t, t.TempDir())
	id := runtimetest.Start(t, d, sh("echo ready; sleep 600"))
	waitReady(t, d, id)
	if err := d.Stop(runtimetest.Context(t), id, 10*time.Minute); err != nil {
		t.Fatal(err)
	}
	st := runtimetest.Wait(t, d, id)
	if st.Reason != runtime.ReasonStopped || st.ExitCode != 128+int(syscall.SIGTERM) {
		t.Fatalf("status %+v, want stopped with 143 (sleep's SIGTERM) before the grace", st)
	}
}

// TestCgroupsGoWithUnwatchedRun: a run that ends while no driver watches
// it (the server is down) leaves no cgroup behind.
func TestCgroupsGoWithUnwatchedRun(t *testing.T) {
	dir := t.TempDir()
	d, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	id := runtimetest.Start(t, d, sh("sleep 1"))
	_ = d.Close()
	var sf specFile
	if err := readJSON(filepath.Join(dir, id, "spec.json"), &sf); err != nil || len(sf.Cgroups) == 0 {
		t.Fatalf("spec %+v, %v (no cgroups on this host?)", sf, err)
	}
	var pf pidFile
	if err := readJSON(filepath.Join(dir, id, "pid"), &pf); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); !gone(pf.PID); {
		if time.Now().After(deadline) {
			t.Fatal("the run did not end")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, cg := range sf.Cgroups {
		if _, err := os.Stat(cg); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("cgroup %s left behind: %v", cg, err)
		}
	}
}

// TestStaleCgroupsSwept: a driver removes the empty cgroups runs left when
// nothing could remove them (their shim killed while no driver watched),
// and leaves a fresh one (a run about to join it) alone.
func TestStaleCgroupsSwept(t *testing.T) {
	d := newDriver(t, t.TempDir())
	if d.sb.cg == nil {
		t.Fatalf("no cgroups on this host: %s", d.Notice())
	}
	var stale, fresh []string
	for _, parent := range d.sb.cg.dirs {
		s, f := filepath.Join(parent, strings.Repeat("5a", 12)), filepath.Join(parent, strings.Repeat("f0", 12))
		for _, dir := range []string{s, f} {
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = os.Remove(dir) })
		}
		old := time.Now().Add(-time.Hour)
		if err := os.Chtimes(s, old, old); err != nil {
			t.Fatal(err)
		}
		stale, fresh = append(stale, s), append(fresh, f)
	}
	newDriver(t, t.TempDir())
	for _, dir := range stale {
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("stale cgroup %s kept: %v", dir, err)
		}
	}
	for _, dir := range fresh {
		if _, err := os.Stat(dir); err != nil {
			t.Errorf("fresh cgroup %s removed: %v", dir, err)
		}
	}
}

// TestTmpWritable: a sandbox's /tmp, its own, is writable by the workload
// (bubblewrap made it root's 0755, so writing there failed).
func TestTmpWritable(t *testing.T) {
	d := newDriver(t, t.TempDir())
	id := runtimetest.Start(t, d, sh(`echo hi > /tmp/f && cat /tmp/f && stat -c %A /tmp`))
	if st := runtimetest.Wait(t, d, id); st.ExitCode != 0 {
		t.Fatalf("status %+v: %q", st, runtimetest.Texts(t, runtimetest.Logs(t, d, id, false), ""))
	}
	if got := runtimetest.Texts(t, runtimetest.Logs(t, d, id, false), "stdout"); !slices.Equal(got, []string{"hi", "drwxrwxrwt"}) {
		t.Fatalf("got %q", got)
	}
}
