package process

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

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
