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

	"github.com/slipwayhq/slipway/pkg/runtime"
	"github.com/slipwayhq/slipway/pkg/runtime/runtimetest"
)

// TestMountFromHiddenDir: a mount whose source lies in a hidden data
// directory (one under a directory the sandbox sees) is visible at its
// target, while the rest of the data directory, the driver's state
// included, stays hidden.
func TestMountFromHiddenDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("writes under /usr/local, which needs root (CI runs as root)")
	}
	data, err := os.MkdirTemp("/usr/local", "slipway-test-data-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(data) })
	app := filepath.Join(data, "builds", "artifacts", "b1", "app")
	if err := os.MkdirAll(app, 0o755); err != nil {
		t.Fatal(err)
	}
	for path, content := range map[string]string{filepath.Join(data, "encryption.key"): "secret-key", filepath.Join(app, "server.js"): "the-app"} {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d, err := NewWith(filepath.Join(data, "runtime"), Options{Hide: []string{data}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	spec := sh(`cat server.js; echo; ls -a "$DATA" "$DATA/builds"; cat "$DATA/encryption.key" 2>&1; cat "$APP/server.js" 2>&1`)
	spec.Env = map[string]string{"DATA": data, "APP": app}
	spec.Mounts = []runtime.Mount{{Source: app, Target: "/app", ReadOnly: true}}
	spec.WorkDir = "/app"
	id := runtimetest.Start(t, d, spec)
	runtimetest.Wait(t, d, id)
	out := runtimetest.Texts(t, runtimetest.Logs(t, d, id, false), "")
	if len(out) == 0 || out[0] != "the-app" {
		t.Fatalf("the workload does not see its mount: %q", out)
	}
	all := strings.Join(out, "\n")
	if strings.Contains(all, "secret-key") || strings.Count(all, "the-app") != 1 ||
		slices.ContainsFunc(out, func(l string) bool { return l == "runtime" || l == "builds" || l == "encryption.key" }) {
		t.Fatalf("the workload sees:\n%s", all)
	}
}

// TestMountChownKeepsToTheTree: giving a writable mount to the workload's
// user changes the symbolic links in it, never what they point to.
func TestMountChownKeepsToTheTree(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("gives files to other users, which needs root (CI runs as root)")
	}
	outside := filepath.Join(t.TempDir(), "outside")
	if err := os.WriteFile(outside, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Dir(outside), filepath.Join(src, "dirlink")); err != nil {
		t.Fatal(err)
	}
	d := newDriver(t, t.TempDir())
	spec := sh("id -u")
	spec.Mounts = []runtime.Mount{{Source: src, Target: "/src"}}
	id := runtimetest.Start(t, d, spec)
	runtimetest.Wait(t, d, id)
	out := runtimetest.Texts(t, runtimetest.Logs(t, d, id, false), "")
	if len(out) != 1 {
		t.Fatalf("output %q", out)
	}
	uid := out[0]
	for path, want := range map[string]string{src: uid, filepath.Join(src, "link"): uid, filepath.Join(src, "dirlink"): uid, outside: "0", filepath.Dir(outside): "0"} {
		fi, err := os.Lstat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := strconv.FormatUint(uint64(fi.Sys().(*syscall.Stat_t).Uid), 10); got != want {
			t.Errorf("%s belongs to %s, want %s", path, got, want)
		}
	}
}

// TestMountsUnsandboxed: without a mount namespace, a WorkDir under a
// mount's Target is its Source on the host (the workload sees host
// paths), and so is an Exec's.
func TestMountsUnsandboxed(t *testing.T) {
	src := t.TempDir()
	if err := os.Mkdir(filepath.Join(src, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	d := newPortDriver(t, t.TempDir(), Options{Unsandboxed: true})
	spec := sh("pwd; echo built > out; echo ready; sleep 120")
	spec.Mounts = []runtime.Mount{{Source: src, Target: "/src"}}
	spec.WorkDir = "/src"
	id := runtimetest.Start(t, d, spec)
	defer stop(t, d, id)
	waitReady(t, d, id)
	if got := runtimetest.Texts(t, runtimetest.Logs(t, d, id, false), ""); len(got) == 0 || got[0] != src {
		t.Fatalf("pwd %q, want the mount's source %s", got, src)
	}
	if b, err := os.ReadFile(filepath.Join(src, "out")); err != nil || string(b) != "built\n" {
		t.Fatalf("out: %q, %v", b, err)
	}
	for dir, want := range map[string]string{"": src, "/src/sub": filepath.Join(src, "sub"), "/": "/"} {
		if code, out, _ := execOut(t, d, id, runtime.ExecSpec{Command: []string{"pwd"}, WorkDir: dir}); code != 0 || out != want+"\n" {
			t.Errorf("exec in %q: %d %q, want %s", dir, code, out, want)
		}
	}
}

// TestMountShowingHiddenRefused: a mount's Source may lie in a hidden
// directory (a build's output in the data directory) but not hold one
// (the data directory itself, an ancestor), nor be or lie in the driver's
// state directory (other runs' files): Start refuses those.
func TestMountShowingHiddenRefused(t *testing.T) {
	data := t.TempDir()
	state := filepath.Join(data, "runtime")
	d := newPortDriver(t, state, Options{Hide: []string{data}})
	builds := filepath.Join(data, "builds")
	if err := os.MkdirAll(filepath.Join(state, "other"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(builds, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, src := range []string{data, filepath.Dir(data), state, filepath.Join(state, "other")} {
		spec := sh("true")
		spec.Mounts = []runtime.Mount{{Source: src, Target: "/src", ReadOnly: true}}
		if _, err := d.Start(runtimetest.Context(t), spec); !errors.Is(err, runtime.ErrInvalidSpec) {
			t.Errorf("mount of %s: %v, want ErrInvalidSpec", src, err)
		}
	}
	spec := sh("true")
	spec.Mounts = []runtime.Mount{{Source: builds, Target: "/src"}}
	id := runtimetest.Start(t, d, spec)
	if st := runtimetest.Wait(t, d, id); st.ExitCode != 0 {
		t.Fatalf("mount of %s: %+v", builds, st)
	}
}
