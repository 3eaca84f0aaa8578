// Package runtimetest is the conformance suite every runtime driver
// passes: the behaviour services rely on (exit codes, the exact
// environment, logs and following them, deadlines, stopping, finding
// workloads by label, adopting them after a restart, removing them), the
// isolation of workloads from each other and from the server
// (isolation.go), what services need of a running workload: ports,
// exec and usage (service.go), and of its file system: mounts and its
// working directory (mounts.go), written once and run against each driver
// through a Harness.
//
// A new driver joins by calling Run from its tests with a Harness that
// says how to open it and how to express a command as a Spec.
package runtimetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pkg/runtime"
)

// Driver is a runtime.Driver that can be closed. Closing stands in for
// the service that owned the driver going away: its workloads keep
// running, for the next driver to adopt.
type Driver interface {
	runtime.Driver
	Close() error
}

// Harness is what the suite needs to know about one driver.
type Harness struct {
	// New opens a driver keeping its state under stateDir (a driver that
	// keeps its state elsewhere, in an engine, ignores it). The suite
	// calls it again with the same stateDir to restart: the new driver
	// must see, and take over, what the earlier one started. The suite
	// closes every driver it opens.
	New func(t *testing.T, stateDir string) Driver
	// Spec returns a Spec that runs command (a program and its arguments)
	// where /bin/sh, env, sleep, printf and true exist: on this machine
	// for the process driver, in the busybox test image for docker.
	Spec func(command ...string) runtime.Spec
	// BaseEnv names the variables a workload may see besides its Spec's
	// Env: those its driver or engine sets by design (PATH, HOSTNAME, the
	// shell's PWD). Nothing from the test process's environment may
	// appear.
	BaseEnv []string
	// MaxLineBytes is the driver's cap on one log line; longer lines
	// arrive split at it.
	MaxLineBytes int
	// MaxProcs is the cap on one workload's processes of the drivers New
	// opens; the fork bomb case needs one well below 1000.
	MaxProcs int
	// WorkDir, when the driver keeps workloads' working directories on
	// the host, returns the one of workload id under stateDir: another
	// workload must not reach it.
	WorkDir func(stateDir, id string) string
}

// leakVar is set in the test process's environment to show that a
// workload's environment is exactly its Spec's.
const leakVar = "SLIPWAY_RUNTIMETEST_LEAK"

// Run runs the suite against the driver h describes. The cases run in
// parallel, each with its own state directory, names and labels, so
// drivers that share an engine between them (docker) see no interference.
// t must not be parallel: the suite sets a variable in the process's
// environment that no workload may inherit.
func Run(t *testing.T, h Harness) {
	t.Setenv(leakVar, "leaked")
	s := &suite{h: h, tag: randomTag(t)}
	for _, c := range []struct {
		name string
		fn   func(*testing.T, *suite)
	}{
		{"RunToCompletion", testRunToCompletion},
		{"ExitCodes", testExitCodes},
		{"EntrypointAndCommand", testEntrypointAndCommand},
		{"EnvExactly", testEnvExactly},
		{"Logs", testLogs},
		{"LogsFollow", testLogsFollow},
		{"LogsFollowCancelled", testLogsFollowCancelled},
		{"Deadline", testDeadline},
		{"Stop", testStop},
		{"ListByLabels", testList},
		{"DuplicateName", testDuplicateName},
		{"RemoveAndNotFound", testRemoveAndNotFound},
		{"AdoptAfterRestart", testAdopt},
		{"AdoptDeadline", testAdoptDeadline},
		{"Hostile", testHostile},
		{"ForkBomb", testForkBomb},
		{"MemoryHog", testMemoryHog},
		{"SetsidChild", testSetsidChild},
		{"Ports", testPorts},
		{"PortsInvalid", testPortsInvalid},
		{"Exec", testExec},
		{"ExecUser", testExecUser},
		{"ExecCancel", testExecCancel},
		{"ExecEndlessInput", testExecEndlessInput},
		{"ExecNotRunning", testExecNotRunning},
		{"ExecTTY", testExecTTY},
		{"Usage", testUsage},
		{"MountWritable", testMountWritable},
		{"MountReadOnly", testMountReadOnly},
		{"WorkDir", testWorkDir},
		{"MountSequence", testMountSequence},
		{"MountInvalid", testMountInvalid},
		{"MountIsolation", testMountIsolation},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.fn(t, s)
		})
	}
}

// suite holds what the cases share.
type suite struct {
	h Harness
	// tag makes this run's names and labels its own on a shared engine.
	tag string
}

func randomTag(t *testing.T) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// open opens a driver on dir and closes it when the test ends (or when
// the returned close is called, for a restart).
func (s *suite) open(t *testing.T, dir string) (Driver, func()) {
	t.Helper()
	d := s.h.New(t, dir)
	var once sync.Once
	closeIt := func() {
		once.Do(func() {
			if err := d.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
	t.Cleanup(closeIt)
	return d, closeIt
}

// driver opens a driver of the test's own.
func (s *suite) driver(t *testing.T) Driver {
	t.Helper()
	d, _ := s.open(t, t.TempDir())
	return d
}

// name is a workload name unique to this run and case.
func (s *suite) name(what string) string { return "rt-" + s.tag + "-" + what }

// labels are labels unique to this run, with kv (pairs) added.
func (s *suite) labels(kv ...string) map[string]string {
	l := map[string]string{"suite": s.tag}
	for i := 0; i+1 < len(kv); i += 2 {
		l[kv[i]] = kv[i+1]
	}
	return l
}

// sh is a Spec running script with /bin/sh.
func (s *suite) sh(script string) runtime.Spec {
	return s.h.Spec("/bin/sh", "-c", script)
}

// Context bounds one call to a driver: generous, as the tests assert what
// happens, never how fast.
func Context(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// Start starts spec on d, failing the test if it cannot.
func Start(t *testing.T, d runtime.Driver, spec runtime.Spec) string {
	t.Helper()
	id, err := d.Start(Context(t), spec)
	if err != nil {
		t.Fatalf("Start(%v): %v", spec.Command, err)
	}
	return id
}

// Wait waits for id to exit, failing the test otherwise.
func Wait(t *testing.T, d runtime.Driver, id string) runtime.Status {
	t.Helper()
	st, err := d.Wait(Context(t), id)
	if err != nil {
		t.Fatalf("Wait(%s): %v", id, err)
	}
	if st.State != runtime.StateExited {
		t.Fatalf("state %s after Wait", st.State)
	}
	return st
}

// Logs reads id's logs (following them when asked), failing the test on
// an error.
func Logs(t *testing.T, d runtime.Driver, id string, follow bool) []runtime.LogLine {
	t.Helper()
	var out []runtime.LogLine
	for l, err := range d.Logs(Context(t), id, follow) {
		if err != nil {
			t.Fatalf("Logs(%s): %v", id, err)
		}
		out = append(out, l)
	}
	return out
}

// Texts is the text of the lines of stream ("" for all), checking that
// every line has a time and a stream.
func Texts(t *testing.T, ls []runtime.LogLine, stream string) []string {
	t.Helper()
	var out []string
	for _, l := range ls {
		if l.Time.IsZero() || (l.Stream != "stdout" && l.Stream != "stderr") {
			t.Errorf("log line %+v lacks a time or a stream", l)
		}
		if stream == "" || l.Stream == stream {
			out = append(out, l.Text)
		}
	}
	return out
}

// waitFor follows the logs of id until a line says text: the workload
// has got that far (its signal traps are set, say).
func waitFor(t *testing.T, d runtime.Driver, id, text string) {
	t.Helper()
	for l, err := range d.Logs(Context(t), id, true) {
		if err != nil {
			t.Fatalf("Logs(%s): %v", id, err)
		}
		if l.Text == text {
			return
		}
	}
	t.Fatalf("%s ended without saying %q", id, text)
}

func testRunToCompletion(t *testing.T, s *suite) {
	d := s.driver(t)
	if d.Name() == "" {
		t.Error("driver without a name")
	}
	before := time.Now()
	spec := s.sh("echo hello; echo oops >&2")
	spec.Name, spec.Labels = s.name("complete"), s.labels("case", "complete")
	id := Start(t, d, spec)
	st := Wait(t, d, id)
	if st.ExitCode != 0 || st.Reason != "" || st.ID != id || st.Name != spec.Name {
		t.Fatalf("status %+v, want exit 0 of %s (%s)", st, id, spec.Name)
	}
	// Exactly the given labels: whatever a driver adds to find its own
	// workloads stays inside it.
	if !maps.Equal(st.Labels, spec.Labels) {
		t.Errorf("labels %v, want %v", st.Labels, spec.Labels)
	}
	if st.StartedAt.Before(before.Add(-time.Minute)) || st.FinishedAt.Before(st.StartedAt) {
		t.Errorf("started %v, finished %v (the test started %v)", st.StartedAt, st.FinishedAt, before)
	}
	if again, err := d.Status(Context(t), id); err != nil || again.State != runtime.StateExited || again.ExitCode != 0 {
		t.Errorf("Status after Wait = %+v, %v", again, err)
	}
	ls := Logs(t, d, id, false)
	if got := Texts(t, ls, "stdout"); !slices.Equal(got, []string{"hello"}) {
		t.Errorf("stdout %q, want [hello]", got)
	}
	if got := Texts(t, ls, "stderr"); !slices.Equal(got, []string{"oops"}) {
		t.Errorf("stderr %q, want [oops]", got)
	}
}

func testExitCodes(t *testing.T, s *suite) {
	d := s.driver(t)
	ids := map[int]string{}
	for _, code := range []int{1, 3, 255} {
		ids[code] = Start(t, d, s.sh("exit "+strconv.Itoa(code)))
	}
	for code, id := range ids {
		if st := Wait(t, d, id); st.ExitCode != code || st.Reason != "" {
			t.Errorf("status %+v, want exit %d and no reason", st, code)
		}
	}
}

func testEntrypointAndCommand(t *testing.T, s *suite) {
	d := s.driver(t)
	// The entrypoint comes first and the command after it, both word
	// for word: no shell splits or expands them.
	spec := s.h.Spec()
	spec.Entrypoint = []string{"/bin/sh", "-c", `for a; do echo "[$a]"; done`, "argv0"}
	spec.Command = []string{"x  y", "", "*", "$HOME"}
	id := Start(t, d, spec)
	if st := Wait(t, d, id); st.ExitCode != 0 {
		t.Fatalf("status %+v", st)
	}
	if got := Texts(t, Logs(t, d, id, false), "stdout"); !slices.Equal(got, []string{"[x  y]", "[]", "[*]", "[$HOME]"}) {
		t.Errorf("arguments %q", got)
	}
}

func testEnvExactly(t *testing.T, s *suite) {
	d := s.driver(t)
	env := map[string]string{
		"FOO":    "bar",
		"SPACES": "hi there  slipway",
		"EQUALS": "a=b=c",
		"EMPTY":  "",
		"QUOTES": `it's "quoted" $HOME`,
	}
	spec := s.h.Spec("env")
	spec.Env = env
	id := Start(t, d, spec)
	if st := Wait(t, d, id); st.ExitCode != 0 {
		t.Fatalf("status %+v (env not on the default PATH?)", st)
	}
	got := map[string]string{}
	for _, l := range Texts(t, Logs(t, d, id, false), "stdout") {
		k, v, _ := strings.Cut(l, "=")
		got[k] = v
	}
	for k, v := range env {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s=%q in the workload, want %q", k, g, v)
		}
	}
	for k, v := range got {
		if _, given := env[k]; !given && !slices.Contains(s.h.BaseEnv, k) {
			t.Errorf("unexpected variable %s=%q (inherited?)", k, v)
		}
	}
	// A PATH given is kept, not replaced by the driver's or the image's.
	spec = s.sh(`echo "$PATH"`)
	spec.Env = map[string]string{"PATH": "/nowhere"}
	id = Start(t, d, spec)
	Wait(t, d, id)
	if got := Texts(t, Logs(t, d, id, false), "stdout"); !slices.Equal(got, []string{"/nowhere"}) {
		t.Errorf("PATH %q, want the given /nowhere", got)
	}
}

func testLogs(t *testing.T, s *suite) {
	d := s.driver(t)
	before := time.Now()
	// A 70000-byte line (engines deliver it in pieces: the driver joins
	// them and splits at MaxLineBytes), an empty line, a CRLF line and an
	// unterminated last line.
	id := Start(t, d, s.sh(`echo one; echo oops >&2; printf '%070000d\n' 0; echo; printf 'cr\r\n'; printf 'no newline'`))
	Wait(t, d, id)
	ls := Logs(t, d, id, false)
	max := s.h.MaxLineBytes
	want := []string{"one", strings.Repeat("0", max), strings.Repeat("0", 70000-max), "", "cr", "no newline"}
	if got := Texts(t, ls, "stdout"); !slices.Equal(got, want) {
		t.Errorf("stdout %q, want %q", short(got), short(want))
	}
	if got := Texts(t, ls, "stderr"); !slices.Equal(got, []string{"oops"}) {
		t.Errorf("stderr %q, want [oops]", got)
	}
	for i, l := range ls {
		if l.Time.Before(before.Add(-time.Minute)) || l.Time.After(time.Now().Add(time.Minute)) {
			t.Errorf("line %+v: time far from the test's", short([]string{l.Text}))
		}
		if i > 0 && l.Stream == ls[i-1].Stream && l.Time.Before(ls[i-1].Time) {
			t.Errorf("times go backwards within %s: %v then %v", l.Stream, ls[i-1].Time, l.Time)
		}
	}
	// Following a workload that has exited yields the same and ends.
	if got := Texts(t, Logs(t, d, id, true), ""); len(got) != len(want)+1 {
		t.Errorf("followed after the exit: %d lines, want %d", len(got), len(want)+1)
	}
}

// short abbreviates long lines for messages.
func short(ss []string) []string {
	var out []string
	for _, s := range ss {
		if len(s) > 20 {
			s = s[:10] + "...(" + strconv.Itoa(len(s)) + " bytes)"
		}
		out = append(out, s)
	}
	return out
}

func testLogsFollow(t *testing.T, s *suite) {
	d := s.driver(t)
	id := Start(t, d, s.sh("echo line1; sleep 2; echo line2; sleep 1; echo line3; echo err >&2; echo last"))
	var got []string
	for l, err := range d.Logs(Context(t), id, true) {
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 {
			// Lines arrive as they are written, not once it has exited.
			if st, err := d.Status(Context(t), id); err != nil || st.State != runtime.StateRunning {
				t.Errorf("first line only after the exit: %+v, %v", st, err)
			}
		}
		got = append(got, l.Stream+":"+l.Text)
	}
	ended := time.Now()
	st := Wait(t, d, id)
	// Engines read stdout and stderr apart: only the order within a
	// stream is given.
	slices.SortStableFunc(got, func(a, b string) int { return strings.Compare(b[:6], a[:6]) }) // stdout first
	if want := []string{"stdout:line1", "stdout:line2", "stdout:line3", "stdout:last", "stderr:err"}; !slices.Equal(got, want) {
		t.Fatalf("followed %q, want %q", got, want)
	}
	// Following ends with the workload, not when some timeout fires (the
	// bound is loose: busy test machines are slow, timeouts are longer).
	if lag := ended.Sub(st.FinishedAt); lag > 10*time.Second {
		t.Errorf("following ended %v after the workload finished", lag)
	}
	// Breaking out early ends it too.
	n := 0
	for range d.Logs(Context(t), id, true) {
		n++
		break
	}
	if n != 1 {
		t.Errorf("%d lines before the break", n)
	}
}

func testLogsFollowCancelled(t *testing.T, s *suite) {
	d := s.driver(t)
	id := Start(t, d, s.sh("echo started; sleep 60"))
	ctx, cancel := context.WithCancel(Context(t))
	defer cancel()
	var got []string
	var lastErr error
	for l, err := range d.Logs(ctx, id, true) {
		if err != nil {
			lastErr = err
			break
		}
		got = append(got, l.Text)
		cancel() // the caller's context ends the stream
	}
	if !slices.Equal(got, []string{"started"}) || !errors.Is(lastErr, context.Canceled) {
		t.Errorf("got %q, %v; want [started], context.Canceled", got, lastErr)
	}
	if err := d.Stop(Context(t), id, 0); err != nil {
		t.Fatal(err)
	}
	Wait(t, d, id)
}

func testDeadline(t *testing.T, s *suite) {
	d := s.driver(t)
	// It ends on SIGTERM, so it ends at the deadline, not a grace later.
	spec := s.sh(`trap "exit 143" TERM; sleep 60 & wait`)
	spec.Deadline = time.Second
	id := Start(t, d, spec)
	// Deaf to SIGTERM (and so is its sleep): killed after the grace.
	deaf := s.sh(`trap "" TERM; sleep 60`)
	deaf.Deadline = 500 * time.Millisecond
	deafID := Start(t, d, deaf)
	st := Wait(t, d, id)
	if st.Reason != runtime.ReasonDeadline || st.ExitCode == 0 {
		t.Fatalf("status %+v, want ended for its deadline", st)
	}
	if ran := st.FinishedAt.Sub(st.StartedAt); ran < time.Second || ran > 30*time.Second {
		t.Errorf("ran %v with a 1s deadline", ran)
	}
	if st := Wait(t, d, deafID); st.Reason != runtime.ReasonDeadline || st.ExitCode != 137 {
		t.Fatalf("status %+v, want SIGKILLed (137) for its deadline", st)
	}
}

func testStop(t *testing.T, s *suite) {
	d := s.driver(t)
	id := Start(t, d, s.sh("sleep 60"))
	if st, err := d.Status(Context(t), id); err != nil || st.State != runtime.StateRunning {
		t.Fatalf("status %+v, %v; want running", st, err)
	}
	if err := d.Remove(Context(t), id); err == nil || errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("Remove of a running workload: %v, want a refusal", err)
	}
	if err := d.Stop(Context(t), id, 0); err != nil {
		t.Fatal(err)
	}
	if st := Wait(t, d, id); st.Reason != runtime.ReasonStopped || st.ExitCode == 0 {
		t.Fatalf("status %+v, want stopped", st)
	}
	if err := d.Stop(Context(t), id, time.Second); err != nil {
		t.Fatalf("Stop of a finished workload: %v", err)
	}
	// Given a grace, a workload that handles SIGTERM ends by itself, with
	// its own exit code.
	id = Start(t, d, s.sh(`trap "exit 42" TERM; echo ready; sleep 60 & wait`))
	waitFor(t, d, id, "ready")
	if err := d.Stop(Context(t), id, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if st := Wait(t, d, id); st.Reason != runtime.ReasonStopped || st.ExitCode != 42 {
		t.Fatalf("status %+v, want exit 42 and stopped", st)
	}
}

func testList(t *testing.T, s *suite) {
	d := s.driver(t)
	with := func(spec runtime.Spec, name string, labels map[string]string) runtime.Spec {
		spec.Name, spec.Labels = s.name(name), labels
		return spec
	}
	a := Start(t, d, with(s.h.Spec("true"), "list-a", s.labels("case", "list", "job", "j1")))
	b := Start(t, d, with(s.sh("sleep 60"), "list-b", s.labels("case", "list", "job", "j2")))
	c := Start(t, d, with(s.h.Spec("true"), "list-c", s.labels("case", "list-other", "job", "j1")))
	Wait(t, d, a)
	Wait(t, d, c)
	list := func(labels map[string]string) map[string]runtime.Status {
		t.Helper()
		l, err := d.List(Context(t), labels)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]runtime.Status{}
		for _, st := range l {
			out[st.ID] = st
		}
		return out
	}
	all := list(s.labels("case", "list"))
	if len(all) != 2 || all[a].State != runtime.StateExited || all[b].State != runtime.StateRunning ||
		all[a].Name != s.name("list-a") || all[b].Labels["job"] != "j2" {
		t.Fatalf("List(case=list) = %+v", all)
	}
	if got := list(s.labels("job", "j1")); len(got) != 2 || got[a].ID != a || got[c].ID != c {
		t.Fatalf("List(job=j1) = %+v, want %s and %s", got, a, c)
	}
	if got := list(s.labels("case", "list", "job", "j2")); len(got) != 1 || got[b].ID != b {
		t.Fatalf("List(case=list, job=j2) = %+v", got)
	}
	if got := list(s.labels("case", "nothing")); len(got) != 0 {
		t.Fatalf("List(case=nothing) = %+v", got)
	}
	if err := d.Stop(Context(t), b, 0); err != nil {
		t.Fatal(err)
	}
	Wait(t, d, b)
}

func testDuplicateName(t *testing.T, s *suite) {
	d := s.driver(t)
	spec := s.h.Spec("true")
	spec.Name = s.name("dup")
	id := Start(t, d, spec)
	if _, err := d.Start(Context(t), spec); err == nil {
		t.Error("a second workload of the same name started")
	}
	Wait(t, d, id)
}

func testRemoveAndNotFound(t *testing.T, s *suite) {
	d := s.driver(t)
	spec := s.h.Spec("true")
	spec.Labels = s.labels("case", "remove")
	id := Start(t, d, spec)
	Wait(t, d, id)
	if err := d.Remove(Context(t), id); err != nil {
		t.Fatal(err)
	}
	if l, err := d.List(Context(t), spec.Labels); err != nil || len(l) != 0 {
		t.Errorf("List after Remove = %+v, %v", l, err)
	}
	// The removed one and ids that never were, in the shapes drivers use.
	for _, id := range []string{id, "no-such-workload", strings.Repeat("ab", 12), strings.Repeat("0123456789abcdef", 4)} {
		if _, err := d.Status(Context(t), id); !errors.Is(err, runtime.ErrNotFound) {
			t.Errorf("Status(%s): %v, want ErrNotFound", id, err)
		}
		if _, err := d.Wait(Context(t), id); !errors.Is(err, runtime.ErrNotFound) {
			t.Errorf("Wait(%s): %v, want ErrNotFound", id, err)
		}
		if err := d.Stop(Context(t), id, 0); !errors.Is(err, runtime.ErrNotFound) {
			t.Errorf("Stop(%s): %v, want ErrNotFound", id, err)
		}
		if err := d.Remove(Context(t), id); !errors.Is(err, runtime.ErrNotFound) {
			t.Errorf("Remove(%s): %v, want ErrNotFound", id, err)
		}
		n := 0
		for _, err := range d.Logs(Context(t), id, true) {
			if n++; !errors.Is(err, runtime.ErrNotFound) {
				t.Errorf("Logs(%s): %v, want ErrNotFound", id, err)
			}
		}
		if n != 1 {
			t.Errorf("Logs(%s) yielded %d times, want one error", id, n)
		}
	}
}

// testAdopt restarts the service: the first driver goes away while its
// workloads run, and a new one on the same state finds them by label,
// follows them to their end and controls them.
func testAdopt(t *testing.T, s *suite) {
	dir := t.TempDir()
	old, closeOld := s.open(t, dir)
	long := s.sh("echo ready; sleep 60")
	long.Name, long.Labels = s.name("adopt-long"), s.labels("case", "adopt", "run", "long")
	short := s.sh("echo before; sleep 2; echo done; exit 7")
	short.Name, short.Labels = s.name("adopt-short"), s.labels("case", "adopt", "run", "short")
	longID, shortID := Start(t, old, long), Start(t, old, short)
	closeOld()

	d, _ := s.open(t, dir)
	l, err := d.List(Context(t), s.labels("case", "adopt"))
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]runtime.Status{}
	for _, st := range l {
		found[st.ID] = st
	}
	if len(found) != 2 || found[longID].Name != long.Name || found[shortID].Name != short.Name ||
		found[longID].State != runtime.StateRunning || !maps.Equal(found[shortID].Labels, short.Labels) {
		t.Fatalf("List after the restart = %+v", l)
	}
	if st := Wait(t, d, shortID); st.ExitCode != 7 || st.Reason != "" {
		t.Fatalf("status %+v, want exit 7", st)
	}
	if got := Texts(t, Logs(t, d, shortID, false), "stdout"); !slices.Equal(got, []string{"before", "done"}) {
		t.Errorf("logs of the adopted workload %q, want [before done]", got)
	}
	waitFor(t, d, longID, "ready")
	if err := d.Stop(Context(t), longID, 0); err != nil {
		t.Fatal(err)
	}
	if st := Wait(t, d, longID); st.Reason != runtime.ReasonStopped {
		t.Fatalf("status %+v, want stopped", st)
	}
}

// testAdoptDeadline: a deadline outlives the driver that set it.
func testAdoptDeadline(t *testing.T, s *suite) {
	dir := t.TempDir()
	old, closeOld := s.open(t, dir)
	spec := s.sh(`trap "exit 143" TERM; sleep 60 & wait`)
	spec.Deadline = 2 * time.Second
	id := Start(t, old, spec)
	closeOld() // its deadline watcher is gone
	// The new driver enforces the deadline without being asked.
	d, _ := s.open(t, dir)
	if st := Wait(t, d, id); st.Reason != runtime.ReasonDeadline {
		t.Fatalf("status %+v, want ended for its deadline", st)
	}
	// A third driver, which killed nothing, still tells why it ended.
	third, _ := s.open(t, dir)
	if st, err := third.Status(Context(t), id); err != nil || st.Reason != runtime.ReasonDeadline {
		t.Fatalf("status %+v, %v; want ended for its deadline", st, err)
	}
}
