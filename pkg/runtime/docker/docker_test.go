package docker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/slipwayhq/slipway/pkg/runtime"
	"github.com/slipwayhq/slipway/pkg/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newDriver(t *testing.T, host string) *Driver {
	t.Helper()
	d, err := New(host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
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

func logs(t *testing.T, d *Driver, id string, follow bool) []runtime.LogLine {
	t.Helper()
	var out []runtime.LogLine
	for l, err := range d.Logs(ctxT(t), id, follow) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, l)
	}
	return out
}

// texts is the text of the lines of stream ("" for all), checking that
// each line has a time.
func texts(t *testing.T, ls []runtime.LogLine, stream string) []string {
	t.Helper()
	var out []string
	for _, l := range ls {
		if l.Time.IsZero() {
			t.Errorf("log line %+v has no time", l)
		}
		if stream == "" || l.Stream == stream {
			out = append(out, l.Text)
		}
	}
	return out
}

// waitReady follows the logs of id until it says "ready" (its traps are
// set).
func waitReady(t *testing.T, d *Driver, id string) {
	t.Helper()
	for l, err := range d.Logs(ctxT(t), id, true) {
		if err != nil {
			t.Fatal(err)
		}
		if l.Text == "ready" {
			return
		}
	}
	t.Fatalf("%s never said ready", id)
}

// recorder is a proxy in front of the engine's socket that records the
// requests' paths, to see which API calls the driver makes.
type recorder struct {
	host  string
	mu    sync.Mutex
	paths []string
}

func (r *recorder) seen(substr string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.ContainsFunc(r.paths, func(p string) bool { return strings.Contains(p, substr) })
}

func newRecorder(t *testing.T, engine string) *recorder {
	t.Helper()
	sockPath := strings.TrimPrefix(engine, "unix://")
	dir, err := os.MkdirTemp("", "rec")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	l, err := net.Listen("unix", filepath.Join(dir, "proxy.sock"))
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{host: "unix://" + filepath.Join(dir, "proxy.sock")}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(&url.URL{Scheme: "http", Host: "engine"})
			r.mu.Lock()
			r.paths = append(r.paths, pr.In.Method+" "+pr.In.URL.Path)
			r.mu.Unlock()
		},
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sockPath)
		}},
		FlushInterval: -1,
	}
	srv := &http.Server{Handler: proxy}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return r
}

// TestDriver runs every case against one Podman service (starting one is
// the slow part); the cases run in parallel, each with its own containers
// and labels.
func TestDriver(t *testing.T) {
	t.Setenv("SLIPWAY_DOCKER_TEST_LEAK", "leaked")
	host := testenv.Podman(t)
	img := testenv.BuildTestImage(t, host)
	d := newDriver(t, host)
	if d.Name() != "docker" {
		t.Fatalf("Name = %q", d.Name())
	}
	sh := func(script string) runtime.Spec {
		return runtime.Spec{Image: img, Command: []string{"/bin/sh", "-c", script}}
	}

	t.Run("ExitCodes", func(t *testing.T) {
		t.Parallel()
		before := time.Now()
		ok := start(t, d, runtime.Spec{Image: img, Name: "exit-zero", Command: []string{"true"}, Labels: map[string]string{"case": "exit"}})
		bad := start(t, d, sh("exit 3"))
		st := wait(t, d, ok)
		if st.ExitCode != 0 || st.Reason != "" || st.Name != "exit-zero" || st.ID != ok || st.Labels["case"] != "exit" {
			t.Fatalf("status %+v", st)
		}
		if _, has := st.Labels[LabelManaged]; has {
			t.Errorf("driver labels leak into Status.Labels: %v", st.Labels)
		}
		if st.StartedAt.Before(before.Add(-time.Minute)) || st.FinishedAt.Before(st.StartedAt) {
			t.Fatalf("times %v %v (test started %v)", st.StartedAt, st.FinishedAt, before)
		}
		if st := wait(t, d, bad); st.ExitCode != 3 || st.Reason != "" || st.Name != "" {
			t.Fatalf("status %+v, want exit 3", st)
		}
	})

	t.Run("EnvExactly", func(t *testing.T) {
		t.Parallel()
		env := map[string]string{
			"FOO":    "bar",
			"SPACES": "hi there  slipway",
			"EQUALS": "a=b=c",
			"EMPTY":  "",
			"QUOTES": `it's "quoted" $HOME`,
		}
		id := start(t, d, runtime.Spec{Image: img, Command: []string{"env"}, Env: env})
		if st := wait(t, d, id); st.ExitCode != 0 {
			t.Fatalf("status %+v", st)
		}
		got := map[string]string{}
		for _, l := range texts(t, logs(t, d, id, false), "stdout") {
			k, v, _ := strings.Cut(l, "=")
			got[k] = v
		}
		for k, v := range env {
			if g, ok := got[k]; !ok || g != v {
				t.Errorf("%s=%q in the container, want %q", k, g, v)
			}
		}
		// Besides the spec's variables, only the image's (PATH) and the
		// engine's standard ones; nothing from the driver's environment.
		for k, v := range got {
			if _, ok := env[k]; ok {
				continue
			}
			if !slices.Contains([]string{"PATH", "HOSTNAME", "HOME", "container", "TERM"}, k) {
				t.Errorf("unexpected variable %s=%q", k, v)
			}
		}
		if got["PATH"] != "/usr/sbin:/usr/bin:/sbin:/bin" {
			t.Errorf("PATH=%q, want the image's", got["PATH"])
		}
	})

	t.Run("EntrypointAndCommand", func(t *testing.T) {
		t.Parallel()
		// The entrypoint replaces the image's, the command its CMD, both
		// word for word.
		a := start(t, d, runtime.Spec{Image: img,
			Entrypoint: []string{"/bin/sh", "-c", `for a; do echo "[$a]"; done`, "argv0"},
			Command:    []string{"x  y", "", "*"},
		})
		b := start(t, d, runtime.Spec{Image: img, Command: []string{"printf", "%s|", "a b", "c"}})
		wait(t, d, a)
		wait(t, d, b)
		if got := texts(t, logs(t, d, a, false), "stdout"); !slices.Equal(got, []string{"[x  y]", "[]", "[*]"}) {
			t.Errorf("entrypoint+command: %q", got)
		}
		if got := texts(t, logs(t, d, b, false), "stdout"); !slices.Equal(got, []string{"a b|c|"}) {
			t.Errorf("command: %q", got)
		}
	})

	t.Run("ResourcesAndUlimits", func(t *testing.T) {
		t.Parallel()
		id := start(t, d, runtime.Spec{Image: img, Command: []string{"cat", "/proc/self/limits"},
			Resources: runtime.Resources{MilliCPU: 500, MemoryMB: 64}})
		if st := wait(t, d, id); st.ExitCode != 0 {
			t.Fatalf("status %+v", st)
		}
		ci, err := d.cli.ContainerInspect(ctxT(t), id)
		if err != nil {
			t.Fatal(err)
		}
		if ci.HostConfig.NanoCPUs != 500_000_000 || ci.HostConfig.Memory != 64<<20 {
			t.Errorf("NanoCPUs %d, Memory %d; want 5e8 and 64 MiB", ci.HostConfig.NanoCPUs, ci.HostConfig.Memory)
		}
		limits := map[string][]string{}
		for _, l := range texts(t, logs(t, d, id, false), "stdout") {
			for _, name := range []string{"Max open files", "Max processes"} {
				if rest, ok := strings.CutPrefix(l, name); ok {
					limits[name] = strings.Fields(rest)
				}
			}
		}
		for _, name := range []string{"Max open files", "Max processes"} {
			if f := limits[name]; len(f) < 2 || f[0] != "1024" || f[1] != "1024" {
				t.Errorf("%s in the container: %q, want 1024 1024", name, f)
			}
		}
	})

	t.Run("Logs", func(t *testing.T) {
		t.Parallel()
		before := time.Now()
		// A 70000-byte line: the engine splits it into messages (Podman
		// at 8 KiB), the driver joins them and splits at MaxLineBytes.
		id := start(t, d, sh(`echo one; echo oops >&2; /bin/busybox head -c 70000 /dev/zero | /bin/busybox tr '\0' x; echo; echo; printf 'cr\r\n'; printf 'no newline'`))
		wait(t, d, id)
		ls := logs(t, d, id, false)
		want := []string{"one", strings.Repeat("x", MaxLineBytes), strings.Repeat("x", 70000-MaxLineBytes), "", "cr", "no newline"}
		if got := texts(t, ls, "stdout"); !slices.Equal(got, want) {
			short := func(ss []string) (out []string) {
				for _, s := range ss {
					if len(s) > 20 {
						s = fmt.Sprintf("%.10s...(%d bytes)", s, len(s))
					}
					out = append(out, s)
				}
				return out
			}
			t.Errorf("stdout %q, want %q", short(got), short(want))
		}
		if got := texts(t, ls, "stderr"); !slices.Equal(got, []string{"oops"}) {
			t.Errorf("stderr %q", got)
		}
		for i, l := range ls {
			// The engine's timestamps, from this machine's clock.
			if l.Time.Before(before.Add(-time.Minute)) || l.Time.After(time.Now().Add(time.Minute)) {
				t.Errorf("line %+v: time far from the test's", l)
			}
			if i > 0 && l.Stream == ls[i-1].Stream && l.Time.Before(ls[i-1].Time) {
				t.Errorf("times go backwards: %+v then %+v", ls[i-1], l)
			}
		}
		// Following a container that exited already ends too.
		if got := texts(t, logs(t, d, id, true), ""); len(got) != len(want)+1 {
			t.Errorf("followed after exit: %d lines, want %d", len(got), len(want)+1)
		}
	})

	t.Run("LogsFollow", func(t *testing.T) {
		t.Parallel()
		id := start(t, d, sh("for i in 1 2 3; do echo line$i; sleep 0.3; done; echo err >&2; echo last"))
		var got []string
		var exited time.Time
		for l, err := range d.Logs(ctxT(t), id, true) {
			if err != nil {
				t.Fatal(err)
			}
			if l.Time.IsZero() {
				t.Errorf("line %+v has no time", l)
			}
			got = append(got, l.Stream+":"+l.Text)
			if exited.IsZero() {
				if st, err := d.Status(ctxT(t), id); err == nil && st.State == runtime.StateExited {
					exited = time.Now()
				}
			}
		}
		ended := time.Now()
		st := wait(t, d, id)
		// The engine reads stdout and stderr separately, so only the order
		// within a stream is given.
		want := []string{"stdout:line1", "stdout:line2", "stdout:line3", "stdout:last", "stderr:err"}
		if slices.SortStableFunc(got, func(a, b string) int {
			return strings.Compare(b[:6], a[:6]) // stdout before stderr
		}); !slices.Equal(got, want) {
			t.Fatalf("followed %q, want %q", got, want)
		}
		// It ends soon after the exit (not when some timeout fires).
		if lag := ended.Sub(st.FinishedAt); lag > 5*time.Second {
			t.Errorf("follow ended %v after the container finished", lag)
		}
		// Breaking out early ends the stream.
		n := 0
		for range d.Logs(ctxT(t), id, true) {
			n++
			break
		}
		if n != 1 {
			t.Errorf("%d lines before break", n)
		}
	})

	t.Run("LogsFollowRunningThenCancel", func(t *testing.T) {
		t.Parallel()
		id := start(t, d, sh("echo started; sleep 60"))
		ctx, cancel := context.WithCancel(ctxT(t))
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
		if err := d.Stop(ctxT(t), id, 0); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("Deadline", func(t *testing.T) {
		t.Parallel()
		// Ends on SIGTERM, so the kill is at the deadline, not the grace
		// after it.
		spec := sh(`trap "exit 143" TERM; sleep 60 & wait`)
		spec.Deadline = time.Second
		id := start(t, d, spec)
		st := wait(t, d, id)
		if st.Reason != runtime.ReasonDeadline || st.ExitCode == 0 {
			t.Fatalf("status %+v, want killed for its deadline", st)
		}
		if ran := st.FinishedAt.Sub(st.StartedAt); ran < time.Second || ran > 15*time.Second {
			t.Errorf("ran %v with a 1s deadline", ran)
		}
		// A SIGTERM-deaf workload is killed after the grace.
		deaf := start(t, d, runtime.Spec{Image: img, Command: []string{"sleep", "60"}, Deadline: 500 * time.Millisecond})
		if st := wait(t, d, deaf); st.Reason != runtime.ReasonDeadline || st.ExitCode != 137 {
			t.Fatalf("status %+v, want SIGKILLed for its deadline", st)
		}
	})

	t.Run("Stop", func(t *testing.T) {
		t.Parallel()
		id := start(t, d, runtime.Spec{Image: img, Command: []string{"sleep", "60"}})
		st, err := d.Status(ctxT(t), id)
		if err != nil || st.State != runtime.StateRunning {
			t.Fatalf("status %+v %v", st, err)
		}
		if err := d.Remove(ctxT(t), id); err == nil || errors.Is(err, runtime.ErrNotFound) {
			t.Fatalf("Remove of a running container: %v", err)
		}
		if err := d.Stop(ctxT(t), id, 0); err != nil {
			t.Fatal(err)
		}
		st = wait(t, d, id)
		if st.Reason != runtime.ReasonStopped || st.ExitCode != 137 {
			t.Fatalf("status %+v, want stopped", st)
		}
		if err := d.Stop(ctxT(t), id, time.Second); err != nil {
			t.Fatalf("Stop of an exited container: %v", err)
		}
		// With grace, a workload that handles SIGTERM ends by itself.
		id = start(t, d, sh(`trap "exit 42" TERM; echo ready; sleep 60 & wait`))
		waitReady(t, d, id)
		if err := d.Stop(ctxT(t), id, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		if st := wait(t, d, id); st.Reason != runtime.ReasonStopped || st.ExitCode != 42 {
			t.Fatalf("status %+v, want exit 42 and stopped", st)
		}
	})

	t.Run("List", func(t *testing.T) {
		t.Parallel()
		labels := func(job string) map[string]string {
			return map[string]string{"project": "p-list", "job": job}
		}
		a := start(t, d, runtime.Spec{Image: img, Name: "list-a", Command: []string{"true"}, Labels: labels("j1")})
		b := start(t, d, runtime.Spec{Image: img, Name: "list-b", Command: []string{"sleep", "60"}, Labels: labels("j2")})
		wait(t, d, a)
		// A container with the same labels that the driver did not start
		// is not the driver's.
		foreign, err := d.cli.ContainerCreate(ctxT(t), &container.Config{Image: img, Cmd: []string{"true"}, Labels: labels("j1")},
			&container.HostConfig{Resources: container.Resources{Ulimits: DefaultUlimits()}}, nil, nil, "list-foreign")
		if err != nil {
			t.Fatal(err)
		}
		list := func(labels map[string]string) map[string]runtime.Status {
			l, err := d.List(ctxT(t), labels)
			if err != nil {
				t.Fatal(err)
			}
			out := map[string]runtime.Status{}
			for _, s := range l {
				out[s.ID] = s
			}
			return out
		}
		all := list(map[string]string{"project": "p-list"})
		if len(all) != 2 || all[a].State != runtime.StateExited || all[b].State != runtime.StateRunning ||
			all[a].Name != "list-a" || all[b].Labels["job"] != "j2" {
			t.Fatalf("List(project) = %+v", all)
		}
		if got := list(labels("j2")); len(got) != 1 || got[b].ID != b {
			t.Fatalf("List(job=j2) = %+v", got)
		}
		if got := list(map[string]string{"project": "nope"}); len(got) != 0 {
			t.Fatalf("List(project=nope) = %+v", got)
		}
		if _, err := d.Status(ctxT(t), foreign.ID); !errors.Is(err, runtime.ErrNotFound) {
			t.Errorf("Status of a foreign container: %v, want ErrNotFound", err)
		}
		if err := d.Stop(ctxT(t), b, 0); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("RemoveAndNotFound", func(t *testing.T) {
		t.Parallel()
		id := start(t, d, runtime.Spec{Image: img, Command: []string{"true"}})
		wait(t, d, id)
		if err := d.Remove(ctxT(t), id); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{id, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "no-such-container"} {
			if _, err := d.Status(ctxT(t), id); !errors.Is(err, runtime.ErrNotFound) {
				t.Errorf("Status(%s): %v, want ErrNotFound", id, err)
			}
			if _, err := d.Wait(ctxT(t), id); !errors.Is(err, runtime.ErrNotFound) {
				t.Errorf("Wait(%s): %v, want ErrNotFound", id, err)
			}
			if err := d.Remove(ctxT(t), id); !errors.Is(err, runtime.ErrNotFound) {
				t.Errorf("Remove(%s): %v, want ErrNotFound", id, err)
			}
			if err := d.Stop(ctxT(t), id, 0); !errors.Is(err, runtime.ErrNotFound) {
				t.Errorf("Stop(%s): %v, want ErrNotFound", id, err)
			}
			for _, err := range d.Logs(ctxT(t), id, true) {
				if !errors.Is(err, runtime.ErrNotFound) {
					t.Errorf("Logs(%s): %v, want ErrNotFound", id, err)
				}
			}
		}
	})

	t.Run("Adopt", func(t *testing.T) {
		t.Parallel()
		old, err := New(host)
		if err != nil {
			t.Fatal(err)
		}
		lbl := map[string]string{"run": "r-adopt"}
		// Runs until told (by a signal, which the driver does not send),
		// then exits 7 by itself.
		id := start(t, old, runtime.Spec{Image: img, Name: "adopt-run", Command: []string{"/bin/sh", "-c", `trap "exit 7" USR1; echo ready; sleep 60 & wait`}, Labels: lbl})
		other := start(t, old, runtime.Spec{Image: img, Command: []string{"sleep", "60"}, Labels: map[string]string{"run": "r-adopt-stop"}})
		if err := old.Close(); err != nil {
			t.Fatal(err)
		}
		fresh := newDriver(t, host)
		l, err := fresh.List(ctxT(t), lbl)
		if err != nil {
			t.Fatal(err)
		}
		if len(l) != 1 || l[0].ID != id || l[0].Name != "adopt-run" || l[0].State != runtime.StateRunning {
			t.Fatalf("List after restart = %+v", l)
		}
		waitReady(t, fresh, id)
		if err := fresh.cli.ContainerKill(ctxT(t), id, "USR1"); err != nil {
			t.Fatal(err)
		}
		if st := wait(t, fresh, id); st.ExitCode != 7 || st.Reason != "" {
			t.Fatalf("status %+v, want exit 7", st)
		}
		if err := fresh.Stop(ctxT(t), other, 0); err != nil {
			t.Fatal(err)
		}
		if st := wait(t, fresh, other); st.Reason != runtime.ReasonStopped {
			t.Fatalf("status %+v, want stopped", st)
		}
	})

	t.Run("AdoptDeadline", func(t *testing.T) {
		t.Parallel()
		old, err := New(host)
		if err != nil {
			t.Fatal(err)
		}
		id := start(t, old, runtime.Spec{Image: img, Command: []string{"/bin/sh", "-c", `trap "exit 143" TERM; sleep 60 & wait`}, Deadline: 2 * time.Second})
		_ = old.Close() // its deadline watcher is gone
		// The new driver arms the deadline in New, without being asked.
		fresh := newDriver(t, host)
		st := wait(t, fresh, id)
		if st.Reason != runtime.ReasonDeadline {
			t.Fatalf("status %+v, want deadline", st)
		}
		// A third driver, which killed nothing, still tells why it ended.
		third := newDriver(t, host)
		if st, err := third.Status(ctxT(t), id); err != nil || st.Reason != runtime.ReasonDeadline {
			t.Fatalf("status %+v %v, want deadline", st, err)
		}
	})

	t.Run("PullIfMissing", func(t *testing.T) {
		t.Parallel()
		rec := newRecorder(t, host)
		pd := newDriver(t, rec.host)
		// Present locally: inspected, never pulled (no registry is
		// reachable from here, so a pull would fail the Start too).
		id := start(t, pd, runtime.Spec{Image: img, Command: []string{"true"}})
		wait(t, pd, id)
		if !rec.seen("/images/" + img + "/json") {
			t.Errorf("image not inspected; requests %q", rec.paths)
		}
		if rec.seen("/images/create") {
			t.Errorf("present image pulled; requests %q", rec.paths)
		}
		// Missing: pulled, and the failure is a clear error, not a hang.
		began := time.Now()
		_, err := pd.Start(ctxT(t), runtime.Spec{Image: "localhost/slipway-missing:latest", Command: []string{"true"}})
		if err == nil || !strings.Contains(err.Error(), `image "localhost/slipway-missing:latest" is not present and pulling it failed`) {
			t.Fatalf("Start with a missing image: %v", err)
		}
		if took := time.Since(began); took > 30*time.Second {
			t.Errorf("failing took %v", took)
		}
		if !rec.seen("/images/create") {
			t.Errorf("missing image not pulled; requests %q", rec.paths)
		}
		t.Logf("missing image: %v", err)
	})

	t.Run("BadSpecs", func(t *testing.T) {
		t.Parallel()
		if _, err := d.Start(ctxT(t), runtime.Spec{Command: []string{"true"}}); !errors.Is(err, runtime.ErrUnsupported) {
			t.Errorf("no image: %v", err)
		}
		if _, err := d.Start(ctxT(t), runtime.Spec{Image: img, Name: "bad name/"}); err == nil {
			t.Error("bad name accepted")
		}
		id := start(t, d, runtime.Spec{Image: img, Name: "dup-name", Command: []string{"true"}})
		if _, err := d.Start(ctxT(t), runtime.Spec{Image: img, Name: "dup-name", Command: []string{"true"}}); err == nil {
			t.Error("duplicate name accepted")
		}
		wait(t, d, id)
	})
}

func TestNewUnreachable(t *testing.T) {
	began := time.Now()
	_, err := New("unix://" + filepath.Join(t.TempDir(), "nothing.sock"))
	if err == nil {
		t.Fatal("New on a missing socket succeeded")
	}
	if took := time.Since(began); took > 10*time.Second {
		t.Errorf("took %v", took)
	}
	if err := Ping(context.Background(), "unix:///nonexistent/docker.sock"); err == nil {
		t.Error("Ping of a missing socket succeeded")
	}
}
