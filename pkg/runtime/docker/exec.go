package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/slipwayhq/slipway/pkg/runtime"
)

// Exec runs through the engine's exec API: POST /containers/{id}/exec
// creates the session, POST /exec/{id}/start with a hijacked connection
// runs it, /exec/{id}/resize sizes its terminal and GET /exec/{id}/json
// gives its exit code.
//
// What Podman 4.3.1's compat API does, checked on this machine:
//   - the start answers "101 UPGRADED" with Upgrade: tcp and
//     Content-Type application/vnd.docker.raw-stream, as Docker does;
//     its start also reads the terminal's size from "h" and "w" in the
//     body (see startExec);
//   - without a TTY the stream is multiplexed with Docker's 8-byte stdcopy
//     header (stream 1 stdout, 2 stderr); with a TTY it is the raw
//     terminal output;
//   - without a TTY a half-close of the connection (CloseWrite) ends the
//     command's standard input: `cat` sees EOF and exits; on a TTY it
//     does nothing;
//   - closing the connection does NOT end the command, with or without a
//     TTY (neither does Docker's); there is no API to kill an exec
//     session either (see killExec);
//   - the exit code is in the session's inspection once Running is false;
//     a resize before the session runs, or of one without a TTY, fails
//     with a 500 "exec session state improper";
//   - creating a session in a container that does not run fails with a
//     500 "container state improper" (Docker: a 409 "is not running"),
//     starting one with a 409;
//   - conmon can drop the second of two resizes a millisecond apart (see
//     resizeExec);
//   - every session keeps two conmon processes for the engine's
//     exit_command_delay after it ends (300 s by default, even once the
//     container is removed), so that its exit code can be inspected (as
//     Docker keeps sessions until its five-minute reaper); then they run
//     `podman container cleanup --exec` and exit. There is no API to
//     remove a session sooner; Exec reads the exit code at once, so a
//     short delay is enough (testenv.Podman uses 15 s; see
//     testExecConmons).
//
// The calls are the client's (github.com/docker/docker), and so is the
// demultiplexing (stdcopy), but for the start, whose hijack is done here
// (see startExec) to size the terminal before the command starts.

// execInspectWait bounds how long Exec waits, after the stream ended, for
// the engine to record the session's end.
const execInspectWait = 10 * time.Second

// Exec implements runtime.Driver: it runs spec.Command in the running
// container id as the container's user, and returns its exit code.
//
// Cancelling ctx kills the command when the engine runs on this machine
// and the driver may signal its processes (see killExec); in any case
// Exec stops waiting, closes the connection and returns ctx's error.
// A Stdin that is still blocked in Read when the command ends is left to
// return on its own: an io.Reader cannot be interrupted. On a TTY the end
// of Stdin does not reach the command (a terminal has no end of input,
// and Podman 4.3 passes nothing on the half-close): it ends by itself, on
// an EOF character it reads (^D), or with ctx.
func (d *Driver) Exec(ctx context.Context, id string, spec runtime.ExecSpec) (int, error) {
	if len(spec.Command) == 0 {
		return -1, errors.New("docker: exec: no command")
	}
	ci, err := d.inspect(ctx, id)
	if err != nil {
		return -1, err
	}
	if phaseOf(ci.State) != phaseRunning || ci.State.Paused {
		return -1, fmt.Errorf("docker: %s: %w", id, runtime.ErrNotRunning)
	}
	env := make([]string, 0, len(spec.Env))
	for _, k := range slices.Sorted(maps.Keys(spec.Env)) {
		env = append(env, k+"="+spec.Env[k])
	}
	opts := container.ExecOptions{
		User:         ci.Config.User,
		Tty:          spec.TTY,
		AttachStdin:  spec.Stdin != nil,
		AttachStdout: true,
		AttachStderr: true,
		Env:          env,
		WorkingDir:   spec.WorkDir,
		Cmd:          spec.Command,
	}
	created, err := d.cli.ContainerExecCreate(ctx, ci.ID, opts)
	if err != nil {
		if notRunning(err) {
			return -1, fmt.Errorf("docker: %s: %w (%v)", id, runtime.ErrNotRunning, err)
		}
		return -1, wrap(id, fmt.Errorf("exec: %w", err))
	}
	execID := created.ID
	ec, err := d.startExec(ctx, execID, spec.TTY, spec.Size)
	if err != nil {
		if ctx.Err() != nil {
			// The engine may have started the command before the
			// cancel cut its answer short.
			d.killExec(ci.ID, execID)
			return -1, ctx.Err()
		}
		var se *startError
		if errors.As(err, &se) && (se.status == http.StatusConflict || notRunning(err)) {
			return -1, fmt.Errorf("docker: %s: %w (%v)", id, runtime.ErrNotRunning, err)
		}
		if errors.As(err, &se) && se.status == http.StatusNotFound {
			return -1, fmt.Errorf("docker: %s: %w (%v)", id, runtime.ErrNotFound, err)
		}
		return -1, fmt.Errorf("docker: %s: exec: %w", id, err)
	}
	var closeOnce sync.Once
	closeConn := func() { closeOnce.Do(func() { ec.conn.Close() }) }
	defer closeConn()

	// The command's end, or ctx's: a cancelled ctx kills the command and
	// closes the connection, which ends the copy below.
	done := make(chan struct{})
	defer close(done)
	cancelled := make(chan struct{})
	go func() {
		select {
		case <-done:
		case <-ctx.Done():
			d.killExec(ci.ID, execID)
			closeConn()
			close(cancelled)
		}
	}()

	if spec.TTY {
		// The size was in the start already (see startExec); an engine
		// that ignored it gets it now.
		go d.resizeExec(ctx, execID, spec.Size, spec.Resize, done)
	}
	if spec.Stdin != nil {
		go func() {
			// Errors end the input too: the command sees EOF either way.
			_, _ = io.Copy(ec.conn, spec.Stdin)
			_ = ec.closeWrite()
		}()
	}

	stdout, stderr := orDiscard(spec.Stdout), orDiscard(spec.Stderr)
	if spec.TTY {
		_, err = io.Copy(stdout, ec.r)
	} else {
		_, err = stdcopy.StdCopy(stdout, stderr, ec.r)
	}
	if ctx.Err() != nil {
		<-cancelled
		return -1, ctx.Err()
	}
	if err != nil {
		// A broken stream or a failing writer: nothing reads the
		// command any more, so it ends too.
		d.killExec(ci.ID, execID)
		return -1, wrap(id, fmt.Errorf("exec: reading its output: %w", err))
	}
	return d.execExitCode(ctx, id, execID)
}

// execExitCode waits for the engine to record the session's end (Podman
// can still say Running just after the stream ended) and returns its code.
func (d *Driver) execExitCode(ctx context.Context, id, execID string) (int, error) {
	deadline := time.Now().Add(execInspectWait)
	interval := 10 * time.Millisecond
	for {
		ei, err := d.cli.ContainerExecInspect(ctx, execID)
		if err != nil {
			if ctx.Err() != nil {
				return -1, ctx.Err()
			}
			return -1, wrap(id, fmt.Errorf("exec: inspecting: %w", err))
		}
		if !ei.Running {
			return ei.ExitCode, nil
		}
		if time.Now().After(deadline) {
			return -1, fmt.Errorf("docker: %s: exec: the output ended but the engine still says the command runs after %v", id, execInspectWait)
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return -1, ctx.Err()
		case <-t.C:
		}
		interval = backoff(interval)
	}
}

// resizeExec sizes the session's terminal to first, then to every size
// sizes delivers, until it is closed or done.
//
// Resizes are paced resizeGap apart, the latest size replacing one that
// waits: Podman 4.3.1 (conmon 2.1.6) can drop the second of two resizes
// that reach it a millisecond apart (seen here about one time in five:
// the terminal kept the first size for good), and the last size is the
// one that must arrive. A resize the engine refuses (Podman 4.3 refuses
// one before the session counts as running) is tried again a few times
// unless a newer size replaces it.
func (d *Driver) resizeExec(ctx context.Context, execID string, first runtime.TermSize, sizes <-chan runtime.TermSize, done <-chan struct{}) {
	var (
		pending *runtime.TermSize
		tries   int
		wait    <-chan time.Time // until the next resize may go
	)
	if first != (runtime.TermSize{}) {
		pending = &first
	}
	for {
		if pending != nil && wait == nil {
			err := d.cli.ContainerExecResize(ctx, execID, container.ResizeOptions{Height: uint(pending.Rows), Width: uint(pending.Cols)})
			tries++
			if err == nil || tries >= resizeTries {
				pending = nil // a failed resize leaves the terminal as it was
			}
			wait = time.After(resizeGap)
		}
		select {
		case <-done:
			return
		case <-wait:
			wait = nil
		case s, ok := <-sizes:
			if !ok {
				sizes = nil // send what waits, then end
				continue
			}
			pending, tries = &s, 0
		}
		if sizes == nil && pending == nil {
			return
		}
	}
}

// resizeGap is the least time between two resizes of a session, and
// resizeTries how often a refused resize is tried.
const (
	resizeGap   = 100 * time.Millisecond
	resizeTries = 10
)

// notRunning reports whether the engine refused an exec because the
// container does not run: Docker answers 409 ("is not running", "is
// paused"), Podman 4.3 a 500 "container state improper".
func notRunning(err error) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	return cerrdefs.IsConflict(err) || strings.Contains(msg, "state improper") ||
		strings.Contains(msg, "is not running") || strings.Contains(msg, "is paused")
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// killExec kills an exec session's process. Neither Docker nor Podman has
// an API for it (closing the connection leaves it running), so it is
// signalled directly when the engine runs on this machine: the session's
// inspection gives the host pid, which killProcess signals only if it is
// in the container's cgroup (so a remote engine's pid never names a local
// process). Anything else leaves the command running until it ends.
func (d *Driver) killExec(containerID, execID string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ei, err := d.cli.ContainerExecInspect(ctx, execID)
	if err != nil || !ei.Running || ei.Pid <= 0 {
		return
	}
	killProcess(ei.Pid, containerID)
}
