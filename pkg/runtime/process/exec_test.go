package process

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pkg/runtime"
	"github.com/slipwayhq/slipway/pkg/runtime/runtimetest"
)

func execOut(t *testing.T, d *Driver, id string, spec runtime.ExecSpec) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	spec.Stdout, spec.Stderr = &out, &errb
	code, err := d.Exec(runtimetest.Context(t), id, spec)
	if err != nil {
		t.Fatalf("Exec(%q): %v", spec.Command, err)
	}
	return code, out.String(), errb.String()
}

// TestExecNoMoreThanTheWorkload: the exec'd command is the workload's
// uid, with no capabilities and no_new_privs, in the run's cgroups, and
// cannot read what the workload cannot (a root-only file in its own
// working directory).
func TestExecNoMoreThanTheWorkload(t *testing.T) {
	dir := t.TempDir()
	d := newDriver(t, dir)
	id := runtimetest.Start(t, d, sh("echo ready; sleep 120"))
	defer stop(t, d, id)
	waitReady(t, d, id)
	secret := filepath.Join(dir, id, "work", "root-only")
	if err := os.WriteFile(secret, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := execOut(t, d, id, runtime.ExecSpec{Command: []string{"cat", WorkDir + "/root-only"}})
	if code == 0 || strings.Contains(out, "secret") || !strings.Contains(errs, "Permission denied") {
		t.Fatalf("cat of a root-only file: %d %q %q", code, out, errs)
	}
	_, out, _ = execOut(t, d, id, runtime.ExecSpec{Command: []string{"/bin/sh", "-c", `id -u; id -g; grep -E '^(CapEff|CapPrm|CapBnd|CapAmb|NoNewPrivs):' /proc/self/status; cat /proc/self/cgroup`}})
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var sf specFile
	if err := readJSON(d.path(id, "spec.json"), &sf); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		u := strconv.Itoa(sf.UID)
		if len(lines) < 2 || lines[0] != u || lines[1] != u || sf.UID < DefaultUIDBase {
			t.Errorf("uid and gid %q, want the run's %d", lines, sf.UID)
		}
	}
	for _, want := range []string{"CapEff:\t0000000000000000", "CapPrm:\t0000000000000000", "CapBnd:\t0000000000000000", "CapAmb:\t0000000000000000", "NoNewPrivs:\t1"} {
		if !slices.Contains(lines, want) {
			t.Errorf("%q missing in %q", want, lines)
		}
	}
	// The sandbox's cgroup namespace is rooted at the run's cgroups: the
	// command is in them when every hierarchy says "/".
	if d.sb.cg == nil {
		t.Fatalf("no cgroups on this host: %s", d.sb.cgWhy)
	}
	n := 0
	for _, l := range lines {
		if f := strings.SplitN(l, ":", 3); len(f) == 3 && strings.HasPrefix(l, f[0]+":") && (f[1] == "" || strings.Contains(f[1], "memory") || strings.Contains(f[1], "pids")) {
			n++
			if f[2] != "/" {
				t.Errorf("cgroup line %q: not in the run's cgroup", l)
			}
		}
	}
	if n == 0 {
		t.Errorf("no cgroup lines in %q", lines)
	}
}

// TestExecEnvExactly: the command's environment is the workload's (as it
// started) with the exec's added, nothing of the server's; and the
// workload's environment never reaches the privileged steps before it
// (an LD_PRELOAD of the workload's would be loaded by nsenter, as root):
// the loader complains of it once, for the command only.
func TestExecEnvExactly(t *testing.T) {
	t.Setenv("SLIPWAY_EXEC_LEAK", "leaked")
	d := newDriver(t, t.TempDir())
	spec := sh("echo ready; sleep 120")
	spec.Env = map[string]string{"A": "a", "QUOTED": `it's "$HOME"` + "\nsecond line", "LD_PRELOAD": "/nothing-here.so"}
	id := runtimetest.Start(t, d, spec)
	defer stop(t, d, id)
	waitReady(t, d, id)
	_, out, errs := execOut(t, d, id, runtime.ExecSpec{Command: []string{"/usr/bin/env", "-0"}, Env: map[string]string{"B": "b", "A": "exec's"}})
	got := strings.Split(strings.TrimSuffix(out, "\x00"), "\x00")
	sort.Strings(got)
	want := []string{"A=exec's", "B=b", "LD_PRELOAD=/nothing-here.so", "PATH=" + DefaultPath, "PWD=" + WorkDir, "QUOTED=" + spec.Env["QUOTED"]}
	if !slices.Equal(got, want) {
		t.Errorf("environment %q, want %q", got, want)
	}
	if n := strings.Count(errs, "LD_PRELOAD"); n != 1 {
		t.Errorf("the loader complained of LD_PRELOAD %d times, want once (the command's): %q", n, errs)
	}
}

// TestExecUnsandboxed: without a sandbox the command runs as the server's
// user in the run's working directory with its environment.
func TestExecUnsandboxed(t *testing.T) {
	dir := t.TempDir()
	d := newPortDriver(t, dir, Options{Unsandboxed: true})
	spec := sh("echo ready; sleep 120")
	spec.Env = map[string]string{"A": "a"}
	id := runtimetest.Start(t, d, spec)
	defer stop(t, d, id)
	waitReady(t, d, id)
	code, out, _ := execOut(t, d, id, runtime.ExecSpec{Command: []string{"sh", "-c", `pwd; echo "$A $B"; id -u; exit 2`}, Env: map[string]string{"B": "b"}})
	want := filepath.Join(dir, id, "work") + "\na b\n" + strconv.Itoa(os.Geteuid()) + "\n"
	if code != 2 || out != want {
		t.Fatalf("got %d %q, want 2 %q", code, out, want)
	}
}

// TestExecEndlessInput: a client's input that never ends (an open
// connection) does not keep Exec from returning once the command exited;
// exec.Cmd's own copying of it held Exec until its WaitDelay.
func TestExecEndlessInput(t *testing.T) {
	d := newDriver(t, t.TempDir())
	d.execGrace = time.Minute
	id := runtimetest.Start(t, d, sh("echo ready; sleep 120"))
	defer stop(t, d, id)
	waitReady(t, d, id)
	in, _ := io.Pipe() // never written, never closed
	start := time.Now()
	code, out, _ := execOut(t, d, id, runtime.ExecSpec{Command: []string{"/bin/sh", "-c", "read -t 1 x; echo done"}, Stdin: in})
	if took := time.Since(start); took > 20*time.Second || code != 0 || out != "done\n" {
		t.Fatalf("Exec took %v: %d %q", took, code, out)
	}
}

// TestExecAsNormalUser: run by a normal user, the sandbox has user
// namespaces (bubblewrap's own, owning its other namespaces, and the one
// its command runs in), and Exec must enter each namespace through the
// user namespace that owns it (nsenter --all failed: "reassociate to
// namespace 'ns/cgroup' failed: Operation not permitted"). The test binary
// runs TestExecAsNormalUserHelper again as nobody (uid 65534).
func TestExecAsNormalUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("run as root: the test switches to a normal user")
	}
	// A directory nobody can use, with a copy of this binary.
	dir, err := os.MkdirTemp("", "slipway-exec-user-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "process.test")
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
		bin, "-test.run=^TestExecAsNormalUserHelper$", "-test.v", "-test.count=1")
	cmd.Dir = dir
	cmd.Env = []string{"HOME=" + dir, "TMPDIR=" + dir, "PATH=" + DefaultPath, "SLIPWAY_EXEC_AS_USER=1"}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestExecAsNormalUserHelper") {
		t.Fatalf("as nobody: %v\n%s", err, out)
	}
}

// TestExecAsNormalUserHelper is TestExecAsNormalUser's part as a normal
// user; it does nothing unless that test runs it.
func TestExecAsNormalUserHelper(t *testing.T) {
	if os.Getenv("SLIPWAY_EXEC_AS_USER") == "" {
		return
	}
	if os.Geteuid() == 0 {
		t.Fatal("running as root")
	}
	// No network: a private one needs /dev/net/tun usable by the user,
	// which a test machine may not give.
	d := newPortDriver(t, t.TempDir(), Options{Network: NetworkNone})
	if n := d.Notice(); strings.Contains(n, "cannot be sandboxed") {
		t.Fatalf("notice %q", n)
	}
	// A writable mount, the working directory of the command and the
	// exec, works without root (nothing to chown: the run is the user).
	src := t.TempDir()
	spec := sh(`echo "$(id -u) $(id -g)" > /tmp/ids; echo mine > out; echo ready; sleep 120`)
	spec.Env = map[string]string{"A": "a"}
	spec.Mounts = []runtime.Mount{{Source: src, Target: "/src"}}
	spec.WorkDir = "/src"
	id := runtimetest.Start(t, d, spec)
	defer stop(t, d, id)
	waitReady(t, d, id)
	code, out, errs := execOut(t, d, id, runtime.ExecSpec{
		Command: []string{"/bin/sh", "-c", `cat /tmp/ids; echo "$(id -u) $(id -g) $A $B"; pwd; grep -E '^(CapEff|CapPrm|NoNewPrivs):' /proc/self/status; [ "$(readlink /proc/1/ns/pid)" = "$(readlink /proc/self/ns/pid)" ] && echo same-pid-ns`},
		Env:     map[string]string{"B": "b"},
	})
	want := "1000 1000\n1000 1000 a b\n/src\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nNoNewPrivs:\t1\nsame-pid-ns\n"
	if code != 0 || out != want {
		t.Fatalf("exec: %d %q %q, want %q", code, out, errs, want)
	}
	if b, err := os.ReadFile(filepath.Join(src, "out")); err != nil || string(b) != "mine\n" {
		t.Fatalf("the mount's file: %q, %v", b, err)
	}
}

// TestWorkloadEnvOnlyForTheCommand: a workload's environment reaches its
// command only, never the processes before it that run as root on the
// host (the shim, prlimit, unshare, bubblewrap) or with privileges in the
// sandbox (setpriv): their loader would load the workload's LD_PRELOAD (a
// library an earlier run wrote to its working directory, whose host path
// a sandbox reads in /proc/self/mountinfo). The loader complained of it
// five times before (prlimit, unshare, bubblewrap, setpriv, true); now
// once. Variables whose names are no shell names still arrive, in the
// workload and in an exec.
func TestWorkloadEnvOnlyForTheCommand(t *testing.T) {
	d := newDriver(t, t.TempDir())
	spec := sh("true")
	spec.Env = map[string]string{"LD_PRELOAD": "/nothing-here.so"}
	id := runtimetest.Start(t, d, spec)
	runtimetest.Wait(t, d, id)
	if n := strings.Count(strings.Join(runtimetest.Texts(t, runtimetest.Logs(t, d, id, false), "stderr"), "\n"), "LD_PRELOAD"); n != 1 {
		t.Errorf("the loader complained of LD_PRELOAD %d times, want once (the command's)", n)
	}

	odd := map[string]string{"spring.profiles.active": "prod it's", "a-b": "c", "A": "a"}
	id = runtimetest.Start(t, d, runtime.Spec{Command: []string{"/usr/bin/env"}, Env: odd})
	runtimetest.Wait(t, d, id)
	got := runtimetest.Texts(t, runtimetest.Logs(t, d, id, false), "stdout")
	sort.Strings(got)
	if want := []string{"A=a", "PATH=" + DefaultPath, "PWD=" + WorkDir, "a-b=c", "spring.profiles.active=prod it's"}; !slices.Equal(got, want) {
		t.Errorf("workload: %q, want %q", got, want)
	}
	// (A shell drops such variables from its children's environment, but
	// has them in its own, which an exec starts from.)
	id = runtimetest.Start(t, d, runtime.Spec{Command: []string{"/bin/sh", "-c", "echo ready; sleep 120"}, Env: odd})
	defer stop(t, d, id)
	waitReady(t, d, id)
	_, out, _ := execOut(t, d, id, runtime.ExecSpec{Command: []string{"/usr/bin/env"}, Env: map[string]string{"x.y": "z"}})
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for _, want := range []string{"A=a", "a-b=c", "spring.profiles.active=prod it's", "x.y=z"} {
		if !slices.Contains(lines, want) {
			t.Errorf("exec: %q lacks %q", lines, want)
		}
	}
}

// TestExecRightAfterStart: an exec issued as soon as Start returns runs in
// the finished sandbox — its mounts in place and the workload's
// environment set — never in one bubblewrap is still building (where it
// failed to find /usr/bin/prlimit, or ran without the environment).
// Each round starts a workload and execs into it at once; several rounds,
// bounded in count and time, because the window is short.
func TestExecRightAfterStart(t *testing.T) {
	d := newDriver(t, t.TempDir())
	data := t.TempDir()
	if err := os.WriteFile(filepath.Join(data, "marker"), []byte("mounted\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(data, 0o755); err != nil {
		t.Fatal(err)
	}
	spec := sh("sleep 120")
	spec.Mounts = []runtime.Mount{{Source: data, Target: "/data", ReadOnly: true}}
	spec.Env = map[string]string{"GREETING": "hello"}
	end := time.Now().Add(60 * time.Second)
	for round := 0; round < 10 && time.Now().Before(end); round++ {
		id := runtimetest.Start(t, d, spec)
		code, out, errs := execOut(t, d, id, runtime.ExecSpec{Command: []string{"/bin/sh", "-c", `cat /data/marker && echo "$GREETING"`}})
		stop(t, d, id)
		if code != 0 || out != "mounted\nhello\n" {
			t.Fatalf("round %d: exec right after Start: code %d, out %q, err %q", round, code, out, errs)
		}
	}
}

// TestExecRefusedUntilSetUp: an exec into a sandbox that is still being
// set up when setupWait has passed is refused with ErrNotRunning and the
// reason, not run in the half-made sandbox. A sandbox stuck in bubblewrap
// is simulated by a workload that gives itself bubblewrap's command line.
func TestExecRefusedUntilSetUp(t *testing.T) {
	d := newDriver(t, t.TempDir())
	defer func(w time.Duration) { setupWait = w }(setupWait)
	setupWait = time.Second
	id := runtimetest.Start(t, d, runtime.Spec{Command: []string{"bash", "-c", `echo ready; exec -a "$0" sleep 120`, d.sb.bwrap}})
	defer stop(t, d, id)
	waitReady(t, d, id)
	started := time.Now()
	_, err := d.Exec(runtimetest.Context(t), id, runtime.ExecSpec{Command: []string{"true"}})
	if !errors.Is(err, runtime.ErrNotRunning) || !strings.Contains(err.Error(), "still being set up") {
		t.Fatalf("Exec into a sandbox being set up: %v, want ErrNotRunning saying why", err)
	}
	if waited := time.Since(started); waited < setupWait || waited > setupWait+5*time.Second {
		t.Errorf("Exec waited %s, want about %s", waited, setupWait)
	}
}
