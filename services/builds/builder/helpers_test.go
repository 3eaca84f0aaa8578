package builder_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pkg/runtime"
	"github.com/slipwayhq/slipway/pkg/runtime/process"
	"github.com/slipwayhq/slipway/services/builds/builder"
)

// procDriver is one process driver for the package's tests (sandboxed, on
// this machine).
var (
	procOnce sync.Once
	procDrv  *process.Driver
	procDir  string
	procErr  error
)

// TestMain removes the process driver's workloads and state at the end
// (workloads outlive their driver by design).
func TestMain(m *testing.M) {
	code := m.Run()
	if procDrv != nil {
		procDrv.Close()
		_ = process.RemoveAll(context.Background(), procDir)
		_ = os.RemoveAll(procDir)
	}
	os.Exit(code)
}

func processDriver(t *testing.T) *process.Driver {
	t.Helper()
	procOnce.Do(func() {
		procDir, procErr = os.MkdirTemp("", "builder-proc-")
		if procErr != nil {
			return
		}
		procDrv, procErr = process.New(procDir)
	})
	if procErr != nil {
		t.Fatalf("process driver: %v", procErr)
	}
	return procDrv
}

// newBuilder returns a builder on the process driver that allows
// 127.0.0.1, with cfg's other settings.
func newBuilder(t *testing.T, cfg builder.Config) *builder.Builder {
	t.Helper()
	if cfg.Process == nil {
		cfg.Process = processDriver(t)
	}
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	if cfg.AllowHosts == nil {
		cfg.AllowHosts = []string{"127.0.0.1"}
	}
	b, err := builder.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// logs collects a build's log lines.
type logs struct {
	mu    sync.Mutex
	lines []string
}

func (l *logs) add(stream, line string) {
	l.mu.Lock()
	l.lines = append(l.lines, stream+": "+line)
	l.mu.Unlock()
}

func (l *logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

func (l *logs) contains(s string) bool { return strings.Contains(l.String(), s) }

var buildN int
var buildMu sync.Mutex

// request is a buildpack request for src with a fresh build id.
func request(src builder.Source, l *logs) builder.Request {
	buildMu.Lock()
	buildN++
	n := buildN
	buildMu.Unlock()
	return builder.Request{
		BuildID: "b" + strings.ToLower(time.Now().Format("150405")) + "-" + itoa(n), TeamID: "team", ProjectID: "proj", ServiceID: "svc",
		Source: src, Buildpack: &builder.Buildpack{}, Log: l.add, Timeout: 3 * time.Minute,
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	s := ""
	for n > 0 {
		s = string(rune('0'+n%10)) + s
		n /= 10
	}
	return s
}

// build runs req and fails the test on an error.
func build(t *testing.T, b *builder.Builder, req builder.Request, l *logs) builder.Result {
	t.Helper()
	res, err := b.Build(context.Background(), req)
	if err != nil {
		t.Fatalf("Build: %v (%v)\nlog:\n%s", err, errors.Unwrap(err), l)
	}
	return res
}

// buildErr runs req and returns its *builder.Error, failing the test when
// the build succeeds or fails otherwise.
func buildErr(t *testing.T, b *builder.Builder, req builder.Request) *builder.Error {
	t.Helper()
	_, err := b.Build(context.Background(), req)
	var e *builder.Error
	if !errors.As(err, &e) {
		t.Fatalf("Build error %v (%T), want *builder.Error", err, err)
	}
	return e
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// serveArtifact runs a process-driver artifact as a deployment would (the
// tree read-only at /app) and returns the body of GET / on its port.
func serveArtifact(t *testing.T, res builder.Result, path string) string {
	t.Helper()
	d := processDriver(t)
	ctx := context.Background()
	id, err := d.Start(ctx, runtime.Spec{
		Name:    "serve-" + filepath.Base(filepath.Dir(res.Path)),
		Command: res.Command,
		Env:     map[string]string{"PATH": "/usr/local/bin:/usr/bin:/bin"},
		Mounts:  []runtime.Mount{{Source: res.Path, Target: "/app", ReadOnly: true}},
		WorkDir: "/app",
		Ports:   []runtime.Port{{Name: "p01", Port: 8080}},
	})
	if err != nil {
		t.Fatalf("starting the artifact: %v", err)
	}
	t.Cleanup(func() {
		_ = d.Stop(ctx, id, time.Second)
		_ = d.Remove(ctx, id)
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := d.Status(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if st.State == runtime.StateExited {
			var out []string
			for l := range d.Logs(ctx, id, false) {
				out = append(out, l.Text)
			}
			t.Fatalf("the artifact exited (%d): %s", st.ExitCode, strings.Join(out, "\n"))
		}
		if addr := st.Ports["p01"]; addr != "" {
			resp, err := http.Get("http://" + addr + path)
			if err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return string(body)
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the artifact did not answer on its port within 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// noWorkDirs checks that builds left no work directory behind.
func noWorkDirs(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, "work"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		t.Errorf("work directories left: %v", ents)
	}
	left, err := processDriver(t).List(context.Background(), map[string]string{builder.LabelTeam: "team"})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range left {
		t.Errorf("build workload left: %s %v", w.Name, w.Labels)
	}
}
