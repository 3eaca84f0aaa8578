package runtimetest

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/slipwayhq/slipway/pkg/runtime"
)

// The mount cases: what builds need of a workload's file system. A
// workload writes a host directory mounted writable (and the host reads
// what it wrote), cannot write one mounted read-only, starts (as does an
// exec into it) in its WorkDir, and workloads run one after the other
// (each its own user on the process driver) all write the same writable
// mount; Start refuses a mount that is not allowed. isolation.go checks
// that a mount reveals nothing of the directory around its source.

// hostDir is a directory of the test's, world readable (as a read-only
// mount's must be: see runtime.Mount) with files (name to content).
func hostDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// run runs spec to its end and returns its exit code and output.
func run(t *testing.T, d runtime.Driver, spec runtime.Spec) (int, []string) {
	t.Helper()
	id := Start(t, d, spec)
	st := Wait(t, d, id)
	return st.ExitCode, Texts(t, Logs(t, d, id, false), "")
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func testMountWritable(t *testing.T, s *suite) {
	d := s.driver(t)
	dir := hostDir(t, map[string]string{"in": "from the host\n"})
	spec := s.sh(`cat /src/in && echo "from the workload" > /src/out && mkdir /src/sub && echo deep > /src/sub/file`)
	spec.Mounts = []runtime.Mount{{Source: dir, Target: "/src"}}
	if code, out := run(t, d, spec); code != 0 || !slices.Equal(out, []string{"from the host"}) {
		t.Fatalf("exit %d, output %q", code, out)
	}
	if got := readFile(t, filepath.Join(dir, "out")); got != "from the workload\n" {
		t.Errorf("the host reads %q", got)
	}
	if got := readFile(t, filepath.Join(dir, "sub", "file")); got != "deep\n" {
		t.Errorf("the host reads %q", got)
	}
}

func testMountReadOnly(t *testing.T, s *suite) {
	d := s.driver(t)
	dir := hostDir(t, map[string]string{"in": "artifact\n"})
	spec := s.sh(`cat /app/in
echo x > /app/new && echo wrote new
echo x >> /app/in && echo wrote in
mkdir /app/dir && echo made dir
true`)
	spec.Mounts = []runtime.Mount{{Source: dir, Target: "/app", ReadOnly: true}}
	code, out := run(t, d, spec)
	if code != 0 || !slices.Contains(out, "artifact") {
		t.Fatalf("exit %d, output %q: the workload could not read its mount", code, out)
	}
	for _, l := range out {
		if strings.HasPrefix(l, "wrote") || strings.HasPrefix(l, "made") {
			t.Errorf("the workload says %q in a read-only mount", l)
		}
	}
	if got := readFile(t, filepath.Join(dir, "in")); got != "artifact\n" {
		t.Errorf("the file became %q", got)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("the mount has %d entries, want only its file", len(ents))
	}
}

func testWorkDir(t *testing.T, s *suite) {
	d := s.driver(t)
	dir := hostDir(t, nil)
	spec := s.sh(`pwd; echo here > file; echo ready; sleep 60`)
	spec.Mounts = []runtime.Mount{{Source: dir, Target: "/src/app"}}
	spec.WorkDir = "/src/app"
	id := Start(t, d, spec)
	defer stopAndWait(t, d, id)
	waitFor(t, d, id, "ready")
	if got := Texts(t, Logs(t, d, id, false), ""); !slices.Equal(got, []string{"/src/app", "ready"}) {
		t.Errorf("output %q, want the working directory first", got)
	}
	if got := readFile(t, filepath.Join(dir, "file")); got != "here\n" {
		t.Errorf("the file written in the working directory has %q", got)
	}
	// An exec starts there too, unless told otherwise.
	if code, out, _ := execOut(t, d, id, runtime.ExecSpec{Command: []string{"pwd"}}); code != 0 || out != "/src/app\n" {
		t.Errorf("exec pwd: %d %q", code, out)
	}
	if code, out, _ := execOut(t, d, id, runtime.ExecSpec{Command: []string{"pwd"}, WorkDir: "/"}); code != 0 || out != "/\n" {
		t.Errorf("exec pwd in /: %d %q", code, out)
	}
}

func testMountSequence(t *testing.T, s *suite) {
	d := s.driver(t)
	dir := hostDir(t, nil)
	mounts := []runtime.Mount{{Source: dir, Target: "/src"}}
	// The first leaves files and a directory only their owner may write
	// (as a clone may): the second must still write them.
	first := s.sh(`umask 077 && mkdir /src/d && echo one > /src/d/file && id -u > /src/uid-1`)
	first.Mounts = mounts
	if code, out := run(t, d, first); code != 0 {
		t.Fatalf("first workload: exit %d, %q", code, out)
	}
	second := s.sh(`echo two >> /src/d/file && echo new > /src/d/new && id -u > /src/uid-2`)
	second.Mounts = mounts
	if code, out := run(t, d, second); code != 0 {
		t.Fatalf("second workload: exit %d, %q", code, out)
	}
	if got := readFile(t, filepath.Join(dir, "d", "file")); got != "one\ntwo\n" {
		t.Errorf("the file has %q", got)
	}
	if got := readFile(t, filepath.Join(dir, "d", "new")); got != "new\n" {
		t.Errorf("the new file has %q", got)
	}
	t.Logf("user ids: %q, %q", readFile(t, filepath.Join(dir, "uid-1")), readFile(t, filepath.Join(dir, "uid-2")))
}

func testMountInvalid(t *testing.T, s *suite) {
	d := s.driver(t)
	dir := hostDir(t, map[string]string{"file": "x"})
	for name, spec := range map[string]func(*runtime.Spec){
		"relative source": func(sp *runtime.Spec) { sp.Mounts = []runtime.Mount{{Source: "src", Target: "/src"}} },
		"unclean source":  func(sp *runtime.Spec) { sp.Mounts = []runtime.Mount{{Source: dir + "/../x", Target: "/src"}} },
		"relative target": func(sp *runtime.Spec) { sp.Mounts = []runtime.Mount{{Source: dir, Target: "src"}} },
		"unclean target":  func(sp *runtime.Spec) { sp.Mounts = []runtime.Mount{{Source: dir, Target: "/src/"}} },
		"root":            func(sp *runtime.Spec) { sp.Mounts = []runtime.Mount{{Source: dir, Target: "/"}} },
		"usr":             func(sp *runtime.Spec) { sp.Mounts = []runtime.Mount{{Source: dir, Target: "/usr"}} },
		"under etc":       func(sp *runtime.Spec) { sp.Mounts = []runtime.Mount{{Source: dir, Target: "/etc/ssl"}} },
		"tmp":             func(sp *runtime.Spec) { sp.Mounts = []runtime.Mount{{Source: dir, Target: "/tmp"}} },
		"lib64":           func(sp *runtime.Spec) { sp.Mounts = []runtime.Mount{{Source: dir, Target: "/lib64/x"}} },
		"missing source":  func(sp *runtime.Spec) { sp.Mounts = []runtime.Mount{{Source: dir + "/missing", Target: "/src"}} },
		"file source":     func(sp *runtime.Spec) { sp.Mounts = []runtime.Mount{{Source: dir + "/file", Target: "/src"}} },
		"target twice": func(sp *runtime.Spec) {
			sp.Mounts = []runtime.Mount{{Source: dir, Target: "/src"}, {Source: dir, Target: "/src"}}
		},
		"relative directory": func(sp *runtime.Spec) { sp.WorkDir = "src" },
	} {
		sp := s.sh("echo started")
		sp.Labels = s.labels("case", "invalid-mount")
		spec(&sp)
		id, err := d.Start(Context(t), sp)
		if !errors.Is(err, runtime.ErrInvalidSpec) {
			t.Errorf("%s: Start: %q, %v; want runtime.ErrInvalidSpec", name, id, err)
		}
	}
	if list, err := d.List(Context(t), s.labels("case", "invalid-mount")); err != nil || len(list) != 0 {
		t.Errorf("invalid specs left workloads: %+v, %v", list, err)
	}
}
