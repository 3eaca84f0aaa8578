package builder

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/slipwayhq/slipway/pkg/runtime"
)

// run is one Build in progress.
type run struct {
	b        *Builder
	req      Request
	src      source
	ctx      context.Context
	deadline time.Duration
	log      *redactor

	work string // <Dir>/work/<build>: /build in the clone's sandbox
	// cloneUser is "uid:gid" of git in a clone container (CloneImage),
	// found by handOver.
	cloneUser string
	// cloneUID and cloneGID own the work directory when handOver gave it
	// to the clone container's user (a root server); 0 when it did not.
	cloneUID, cloneGID int
	// sshHosts are the ssh servers git may connect to, each held to the
	// address checked: the repository's, then its submodules'.
	sshHosts []sshHost
	// pins are the http.curloptResolve values holding git to the address
	// checked for each http(s) host:port: the repository's, then its
	// submodules'.
	pins []string
	// gitConfig is git's global configuration without the pins, which
	// writeGitConfig appends.
	gitConfig string
	mu        sync.Mutex
	ids       []string // workloads started, removed by cleanup
	// cleanups run at the end (images to remove on failure, ...).
	cleanups []func()
}

// Labels of the build's workloads and images.
const (
	LabelBuild   = "slipway.build"
	LabelTeam    = "slipway.team"
	LabelProject = "slipway.project"
	LabelService = "slipway.service"
)

func (r *run) labels(step string) map[string]string {
	l := map[string]string{LabelBuild: r.req.BuildID, LabelTeam: r.req.TeamID, LabelProject: r.req.ProjectID, LabelService: r.req.ServiceID}
	if step != "" {
		l["slipway.build.step"] = step
	}
	return l
}

// prepare makes the build's work directory.
func (r *run) prepare() error {
	r.work = filepath.Join(r.b.dir, "work", r.req.BuildID)
	// Workloads and a directory left under this id by a server that
	// crashed during the build are stale.
	if err := r.b.discardWork(r.ctx, r.req.BuildID); err != nil {
		return internal(err)
	}
	if err := os.MkdirAll(filepath.Join(r.work, ".slipway", "home"), 0o700); err != nil {
		return internal(err)
	}
	return nil
}

// cleanup removes the build's workloads and work directory, whatever the
// outcome.
func (r *run) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r.mu.Lock()
	ids := r.ids
	cl := r.cleanups
	r.mu.Unlock()
	for _, id := range ids {
		_ = r.b.discard(ctx, id)
	}
	for i := len(cl) - 1; i >= 0; i-- {
		cl[i]()
	}
	if r.work != "" {
		_ = os.RemoveAll(r.work)
	}
}

// Discard removes what a build interrupted by a crash of the server left:
// its workloads (which outlive the server, like every process-driver
// workload), the step a Podman engine still runs for it (its working
// container goes with it), any image of it (tagged, if the engine got
// that far), and its work directory. The build itself is over; nothing
// of it is kept.
func (b *Builder) Discard(ctx context.Context, buildID string) error {
	b.stopSteps(ctx, buildID)
	return errors.Join(b.removeBuildImages(ctx, buildID), b.discardWork(ctx, buildID))
}

// discardWork removes buildID's workloads and work directory.
func (b *Builder) discardWork(ctx context.Context, buildID string) error {
	stale, err := b.cfg.Process.List(ctx, map[string]string{LabelBuild: buildID})
	if err != nil {
		return err
	}
	for _, w := range stale {
		if err := b.discard(ctx, w.ID); err != nil {
			return err
		}
	}
	return os.RemoveAll(filepath.Join(b.dir, "work", buildID))
}

// discard stops a workload, waits for its end (Stop only asks) and
// removes it.
func (b *Builder) discard(ctx context.Context, id string) error {
	d := b.cfg.Process
	if err := d.Stop(ctx, id, time.Second); err != nil && !errors.Is(err, runtime.ErrNotFound) {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	_, err := d.Wait(wctx, id)
	cancel()
	if err != nil && !errors.Is(err, runtime.ErrNotFound) {
		return err
	}
	if err := d.Remove(ctx, id); err != nil && !errors.Is(err, runtime.ErrNotFound) {
		return err
	}
	return nil
}

func (r *run) onCleanup(f func()) {
	r.mu.Lock()
	r.cleanups = append(r.cleanups, f)
	r.mu.Unlock()
}

// workload runs spec on the process driver to its end, its output going to
// the build's log, and returns its final status and its last lines of
// output (redacted).
func (r *run) workload(step string, spec runtime.Spec) (runtime.Status, []string, error) {
	spec.Name = "build-" + r.req.BuildID + "-" + step
	spec.Labels = r.labels(step)
	spec.Resources = r.req.Resources
	if dl, ok := r.ctx.Deadline(); ok {
		spec.Deadline = time.Until(dl) + 5*time.Second
	}
	if spec.Env == nil {
		spec.Env = map[string]string{}
	}
	if spec.Env["PATH"] == "" {
		spec.Env["PATH"] = defaultPath
	}
	d := r.b.cfg.Process
	id, err := d.Start(r.ctx, spec)
	if err != nil {
		if r.ctx.Err() != nil {
			return runtime.Status{}, nil, r.ctx.Err()
		}
		return runtime.Status{}, nil, internal(fmt.Errorf("starting %s: %w", step, err))
	}
	r.mu.Lock()
	r.ids = append(r.ids, id)
	r.mu.Unlock()

	tail := newTail(40)
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Logs ends when the workload exits (or the build's context
		// ends); its own context outlives an abort a little so the last
		// lines still arrive.
		lctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			select {
			case <-r.ctx.Done():
				time.Sleep(2 * time.Second)
				cancel()
			case <-lctx.Done():
			}
		}()
		for line, err := range d.Logs(lctx, id, true) {
			if err != nil {
				return
			}
			text := r.log.line(line.Stream, line.Text)
			tail.add(text)
		}
	}()
	st, err := d.Wait(r.ctx, id)
	if err != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = d.Stop(sctx, id, time.Second)
		cancel()
		<-done
		if r.ctx.Err() != nil {
			return runtime.Status{}, tail.lines(), r.ctx.Err()
		}
		return runtime.Status{}, tail.lines(), internal(fmt.Errorf("waiting for %s: %w", step, err))
	}
	<-done
	return st, tail.lines(), nil
}

// defaultPath is the PATH of build workloads.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// tail keeps the last n lines.
type tailBuf struct {
	mu sync.Mutex
	n  int
	l  []string
}

func newTail(n int) *tailBuf { return &tailBuf{n: n} }

func (t *tailBuf) add(s string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.l = append(t.l, s)
	if len(t.l) > t.n {
		t.l = t.l[len(t.l)-t.n:]
	}
}

func (t *tailBuf) lines() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.l...)
}

// redactor hands log lines on with credentials removed.
type redactor struct {
	mu      sync.Mutex
	out     func(stream, line string)
	secrets []string
}

// userinfoRe finds user info in URLs ("https://user:secret@host").
var userinfoRe = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]*:[^/@\s]*@`)

func newRedactor(out func(stream, line string), c Credentials, more ...string) *redactor {
	r := &redactor{out: out}
	for _, s := range append([]string{c.Password}, more...) {
		if len(s) >= 4 {
			r.secrets = append(r.secrets, s)
		}
	}
	for _, l := range strings.Split(c.PrivateKey, "\n") {
		if l = strings.TrimSpace(l); len(l) >= 16 && !strings.HasPrefix(l, "-----") {
			r.secrets = append(r.secrets, l)
		}
	}
	return r
}

func (r *redactor) redact(s string) string {
	for _, sec := range r.secrets {
		s = strings.ReplaceAll(s, sec, "***")
	}
	return userinfoRe.ReplaceAllString(s, "$1***@")
}

// line redacts a line, hands it on and returns it.
func (r *redactor) line(stream, text string) string {
	text = r.redact(text)
	if r.out != nil {
		r.mu.Lock()
		r.out(stream, text)
		r.mu.Unlock()
	}
	return text
}

// info logs a line of Slipway's own.
func (r *redactor) info(format string, a ...any) {
	r.line("stdout", "slipway: "+fmt.Sprintf(format, a...))
}

// readWorkFile reads a file the sandbox wrote under dir without following
// a symbolic link out of it.
func readWorkFile(dir, name string) ([]byte, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	fi, err := root.Stat(name) // os.Root keeps links inside dir
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	if fi.Size() > 1<<20 {
		return nil, errors.New("file too large")
	}
	return root.ReadFile(name)
}
