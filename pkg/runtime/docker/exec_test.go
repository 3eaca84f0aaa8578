package docker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pkg/runtime"
	"github.com/slipwayhq/slipway/pkg/runtime/runtimetest"
)

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// running starts a container that runs until the test ends.
func running(t *testing.T, d *Driver, img string) string {
	t.Helper()
	id := runtimetest.Start(t, d, runtime.Spec{Image: img, Command: []string{"sleep", "600"},
		Env: map[string]string{"OWN": "own-value"}})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = d.Stop(ctx, id, 0)
	})
	return id
}

// testExecStreams: the engine's multiplexed stream is split back into
// stdout and stderr, large outputs included; stdin reaches the command
// and its end (the connection's half-close) ends the command's input.
func testExecStreams(t *testing.T, d *Driver, img string) {
	id := running(t, d, img)
	var stdout, stderr bytes.Buffer
	// More than one stdcopy frame of each, interleaved.
	code, err := d.Exec(runtimetest.Context(t), id, runtime.ExecSpec{
		Command: []string{"/bin/sh", "-c", `i=0; while [ $i -lt 2000 ]; do echo "out $i"; echo "err $i" >&2; i=$((i+1)); done; cat; exit 7`},
		Stdin:   strings.NewReader("from stdin\nsecond line"),
		Stdout:  &stdout, Stderr: &stderr,
	})
	if err != nil || code != 7 {
		t.Fatalf("Exec = %d, %v; want 7", code, err)
	}
	outs := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
	errs := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
	if len(outs) != 2002 || len(errs) != 2000 {
		t.Fatalf("%d stdout and %d stderr lines, want 2002 and 2000", len(outs), len(errs))
	}
	for i := 0; i < 2000; i++ {
		if outs[i] != "out "+strconv.Itoa(i) || errs[i] != "err "+strconv.Itoa(i) {
			t.Fatalf("line %d: %q, %q", i, outs[i], errs[i])
		}
	}
	if outs[2000] != "from stdin" || outs[2001] != "second line" {
		t.Errorf("stdin echoed as %q", outs[2000:])
	}
	// Without Stdin the command's input is empty; nil writers discard.
	code, err = d.Exec(runtimetest.Context(t), id, runtime.ExecSpec{Command: []string{"cat"}})
	if err != nil || code != 0 {
		t.Errorf("cat without stdin: %d, %v", code, err)
	}
}

// testExecTTY: on a terminal, output all comes on Stdout, the terminal
// has the asked size and later sizes reach it.
func testExecTTY(t *testing.T, d *Driver, img string) {
	id := running(t, d, img)
	var out bytes.Buffer
	code, err := d.Exec(runtimetest.Context(t), id, runtime.ExecSpec{
		Command: []string{"/bin/sh", "-c", `tty; stty size; echo to-stderr >&2`},
		TTY:     true, Size: runtime.TermSize{Rows: 33, Cols: 111},
		Stdout: &out, Stderr: failWriter{t},
	})
	if err != nil || code != 0 {
		t.Fatalf("Exec = %d, %v", code, err)
	}
	lines := strings.Split(strings.TrimSpace(strings.ReplaceAll(out.String(), "\r\n", "\n")), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "/dev/pts/") || lines[1] != "33 111" || lines[2] != "to-stderr" {
		t.Errorf("terminal output %q, want a /dev/pts tty, 33 111, to-stderr", out.String())
	}

	// Input on a terminal, and a resize while it runs: the engine
	// applies it asynchronously, so the command waits to see it.
	sizes := make(chan runtime.TermSize)
	var live syncBuffer
	result := make(chan error, 1)
	go func() {
		code, err := d.Exec(runtimetest.Context(t), id, runtime.ExecSpec{
			Command: []string{"/bin/sh", "-c", `read x; echo "got $x"; i=0
while [ "$(stty size)" != "44 55" ]; do i=$((i+1)); [ $i -gt 100 ] && exit 1; sleep 0.1; done; echo resized`},
			TTY: true, Size: runtime.TermSize{Rows: 10, Cols: 20}, Resize: sizes,
			Stdin: strings.NewReader("typed\r"), Stdout: &live,
		})
		if err == nil && code != 0 {
			err = fmt.Errorf("exit code %d", code)
		}
		result <- err
	}()
	waitOutput(t, &live, "got typed")
	sizes <- runtime.TermSize{Rows: 44, Cols: 55}
	if err := <-result; err != nil {
		t.Errorf("after a resize: %v; output %q", err, live.String())
	}
	close(sizes)
}

type failWriter struct{ t *testing.T }

func (w failWriter) Write(p []byte) (int, error) {
	w.t.Errorf("wrote %q to Stderr of a TTY", p)
	return len(p), nil
}

func waitOutput(t *testing.T, b *syncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(b.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in %q", want, b.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testExecCancel: cancelling ctx returns at once and kills the command
// and its children (the engine runs here, so they can be seen to end).
func testExecCancel(t *testing.T, d *Driver, img string) {
	id := running(t, d, img)
	marker := "exec-cancel-" + strconv.Itoa(os.Getpid())
	ctx, cancel := context.WithCancel(runtimetest.Context(t))
	var out syncBuffer
	result := make(chan error, 1)
	go func() {
		// The marker is in the environment of the shell and its child.
		_, err := d.Exec(ctx, id, runtime.ExecSpec{Command: []string{"/bin/sh", "-c", `echo started; sleep 1000; :`},
			Env: map[string]string{"MARKER": marker}, Stdout: &out})
		result <- err
	}()
	waitOutput(t, &out, "started")
	if n := len(hostPids(marker)); n != 2 {
		t.Fatalf("%d processes of the exec to be seen, want the shell and its sleep", n)
	}
	cancel()
	select {
	case err := <-result:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled Exec: %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a cancelled Exec still waits")
	}
	waitGone(t, marker)
	// The container itself is untouched.
	if st, err := d.Status(runtimetest.Context(t), id); err != nil || st.State != runtime.StateRunning {
		t.Errorf("container after the cancel: %+v, %v", st, err)
	}

	// A writer that fails ends the command as well: nothing would read it.
	marker += "-writer"
	began := time.Now()
	_, err := d.Exec(runtimetest.Context(t), id, runtime.ExecSpec{Command: []string{"/bin/sh", "-c", `echo started; sleep 1000; :`},
		Env: map[string]string{"MARKER": marker}, Stdout: brokenWriter{}})
	if err == nil || time.Since(began) > 10*time.Second {
		t.Errorf("Exec with a broken writer: %v after %v", err, time.Since(began))
	}
	waitGone(t, marker)
}

type brokenWriter struct{}

func (brokenWriter) Write([]byte) (int, error) { return 0, errors.New("broken") }

// waitGone waits until no process carries marker.
func waitGone(t *testing.T, marker string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(hostPids(marker)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the command still runs: %v", hostPids(marker))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// hostPids lists this machine's live processes whose environment holds
// marker.
func hostPids(marker string) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil || !bytes.Contains(cmd, []byte(marker)) {
			continue
		}
		if st, err := os.ReadFile("/proc/" + e.Name() + "/stat"); err == nil {
			if i := bytes.LastIndexByte(st, ')'); i > 0 && len(st) > i+2 && (st[i+2] == 'Z' || st[i+2] == 'X') {
				continue
			}
		}
		out = append(out, pid)
	}
	return out
}

// testExecEnvAndErrors: the command gets the container's environment and
// Env on top, starts in WorkDir, runs as the container's user; a stopped
// container is ErrNotRunning, an unknown one ErrNotFound.
func testExecEnvAndErrors(t *testing.T, d *Driver, img string) {
	id := running(t, d, img)
	var out bytes.Buffer
	code, err := d.Exec(runtimetest.Context(t), id, runtime.ExecSpec{
		Command: []string{"/bin/sh", "-c", `echo "$OWN $ADDED $(pwd) $(id -u)"`},
		Env:     map[string]string{"ADDED": "added-value"}, WorkDir: "/tmp", Stdout: &out,
	})
	if err != nil || code != 0 || strings.TrimSpace(out.String()) != "own-value added-value /tmp 0" {
		t.Errorf("Exec = %d, %v, %q; want own-value added-value /tmp 0", code, err, out.String())
	}
	// The engine reports a missing program as an exit code (126 or
	// 127) or as an error; either way not as success.
	if code, err := d.Exec(runtimetest.Context(t), id, runtime.ExecSpec{Command: []string{"/nonexistent"}}); err == nil && code == 0 {
		t.Errorf("a missing program: %d, %v", code, err)
	}

	if _, err := d.Exec(runtimetest.Context(t), "no-such-container", runtime.ExecSpec{Command: []string{"true"}}); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("unknown container: %v, want ErrNotFound", err)
	}
	if err := d.Stop(runtimetest.Context(t), id, 0); err != nil {
		t.Fatal(err)
	}
	runtimetest.Wait(t, d, id)
	if _, err := d.Exec(runtimetest.Context(t), id, runtime.ExecSpec{Command: []string{"true"}}); !errors.Is(err, runtime.ErrNotRunning) {
		t.Errorf("stopped container: %v, want ErrNotRunning", err)
	}
}
