package docker

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pkg/runtime"
	"github.com/slipwayhq/slipway/pkg/runtime/runtimetest"
)

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
// stdout and stderr over many interleaved frames; stdin reaches the
// command after them and its end (the connection's half-close) ends the
// command's input.
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
	// Without Stdin the command's input is empty.
	code, err = d.Exec(runtimetest.Context(t), id, runtime.ExecSpec{Command: []string{"cat"}})
	if err != nil || code != 0 {
		t.Errorf("cat without stdin: %d, %v", code, err)
	}
}

// testExecBrokenWriter: a writer that fails ends the command too (and
// its children), since nothing would read it any more; the engine runs
// here, so its processes can be seen to end. (Cancelling is the
// conformance case ExecCancel's.)
func testExecBrokenWriter(t *testing.T, d *Driver, img string) {
	id := running(t, d, img)
	// The marker is in the environment of the shell and its child.
	marker := "exec-broken-writer-" + strconv.Itoa(os.Getpid())
	began := time.Now()
	_, err := d.Exec(runtimetest.Context(t), id, runtime.ExecSpec{Command: []string{"/bin/sh", "-c", `echo started; sleep 1000; :`},
		Env: map[string]string{"MARKER": marker}, Stdout: brokenWriter{}})
	if err == nil || time.Since(began) > 10*time.Second {
		t.Errorf("Exec with a broken writer: %v after %v", err, time.Since(began))
	}
	waitGone(t, marker)
	if st, err := d.Status(runtimetest.Context(t), id); err != nil || st.State != runtime.StateRunning {
		t.Errorf("container after the exec: %+v, %v", st, err)
	}
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

// testExecResizeLast: a resize that follows another at once still
// arrives. Podman 4.3.1's conmon could drop the second of two resizes a
// millisecond apart (here the driver's own first one, the start's size,
// and the caller's), about one time in five, leaving the terminal at the
// old size for good; five rounds catch that most of the time.
func testExecResizeLast(t *testing.T, d *Driver, img string) {
	id := running(t, d, img)
	for round := 0; round < 5; round++ {
		stdin, feed := io.Pipe()
		out, outW := io.Pipe()
		sizes := make(chan runtime.TermSize, 1)
		sizes <- runtime.TermSize{Rows: 30, Cols: 100} // at once
		result := make(chan error, 1)
		// A terminal has no end of input: the command ends itself once
		// it has the new size, or ctx ends it.
		ctx, cancel := context.WithTimeout(runtimetest.Context(t), 10*time.Second)
		defer cancel()
		go func() {
			_, err := d.Exec(ctx, id, runtime.ExecSpec{
				Command: []string{"/bin/sh", "-c", `while read x; do s=$(stty size); echo "$s"; [ "$s" = "30 100" ] && exit 0; done`},
				TTY:     true, Size: runtime.TermSize{Rows: 24, Cols: 80}, Resize: sizes,
				Stdin: stdin, Stdout: outW,
			})
			outW.Close()
			result <- err
		}()
		sc := bufio.NewScanner(out)
		got := ""
		for deadline := time.Now().Add(3 * time.Second); got != "30 100" && time.Now().Before(deadline); {
			time.Sleep(100 * time.Millisecond)
			if _, err := feed.Write([]byte("\r")); err != nil {
				t.Fatal(err)
			}
			for sc.Scan() {
				if l := strings.TrimSpace(sc.Text()); l != "" {
					got = l
					break
				}
			}
		}
		cancel()
		feed.Close()
		go func() { _, _ = io.Copy(io.Discard, out) }()
		<-result
		if got != "30 100" {
			t.Fatalf("round %d: the terminal stayed %q after a resize to 30 100", round, got)
		}
	}
}

// conmonsOf lists this machine's conmon processes serving the container
// whose full id is cid (its own and one pair per exec session: "-c <cid>"
// on their command lines).
func conmonsOf(cid string) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		args := strings.Split(string(cmd), "\x00")
		if len(args) == 0 || !strings.HasSuffix(args[0], "conmon") {
			continue
		}
		for i := 0; i+1 < len(args); i++ {
			if args[i] == "-c" && args[i+1] == cid {
				out = append(out, pid)
				break
			}
		}
	}
	return out
}

// execConmonBound is how long after a container's last exec and its
// removal its conmon processes may remain: Podman keeps every API exec
// session, and a pair of conmon processes for it, for the engine's
// exit_command_delay (Docker's five-minute exec reaper; 300 s by default,
// which testenv.Podman lowers to 15 s), then runs `podman container
// cleanup --exec`.
const execConmonBound = 45 * time.Second

// testExecConmons: exec sessions leave no conmon processes behind for
// good: once the container is removed, all of its conmons end within the
// engine's exit_command_delay, and the exit codes were read before that.
func testExecConmons(t *testing.T, d *Driver, img string) {
	ctx := runtimetest.Context(t)
	id := runtimetest.Start(t, d, runtime.Spec{Image: img, Command: []string{"sleep", "600"}})
	ci, err := d.cli.ContainerInspect(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	const execs = 3
	for i := range execs {
		if code, err := d.Exec(ctx, id, runtime.ExecSpec{Command: []string{"/bin/sh", "-c", "exit " + strconv.Itoa(i+3)}}); err != nil || code != i+3 {
			t.Fatalf("Exec %d = %d, %v", i, code, err)
		}
	}
	t.Logf("conmon processes of the container after %d execs: %d", execs, len(conmonsOf(ci.ID)))
	if err := d.Stop(ctx, id, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Wait(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := d.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	removed := time.Now()
	for left := conmonsOf(ci.ID); len(left) > 0; left = conmonsOf(ci.ID) {
		if time.Since(removed) > execConmonBound {
			t.Fatalf("%d conmon processes of the removed container still run %v after its removal: %v", len(left), execConmonBound, left)
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("its conmon processes ended %v after its removal", time.Since(removed).Round(time.Second))
}
