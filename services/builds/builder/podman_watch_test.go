//go:build linux

package builder

import (
	"context"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/slipwayhq/slipway/pkg/runtime/process"
	"github.com/slipwayhq/slipway/pkg/testenv"
)

// TestStopStepsWatchesLateSteps: stopping aborted builds on Podman returns
// at once (an abort is recorded promptly; start-up recovery does not wait
// on each interrupted build in turn), and a marked process that starts
// well after the stop, as a step whose set-up is slow does, is killed all
// the same; once it is, the watch ends.
func TestStopStepsWatchesLateSteps(t *testing.T) {
	host := testenv.Podman(t)
	api := testenv.EngineClient(t, host)
	procDir, err := os.MkdirTemp("", "builder-proc-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(procDir) })
	drv, err := process.New(procDir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Config{Process: drv, Docker: api, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if !b.podman(ctx) { // asked once, not timed
		t.Fatal("the engine is not taken for Podman")
	}
	ids := []string{"late-" + t.Name(), "other-1-" + t.Name(), "other-2-" + t.Name()}
	start := time.Now()
	for _, id := range ids {
		b.stopSteps(ctx, id)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("stopping %d builds with nothing running took %s", len(ids), d)
	}

	// The step's process starts after the quiet window the watch used to
	// end on.
	time.Sleep(stepQuiet + 2*time.Second)
	marker := stepMarker(ids[0])
	cmd := exec.Command("sleep", "300")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	if err := unix.Prlimit(cmd.Process.Pid, unix.RLIMIT_RTTIME, &unix.Rlimit{Cur: marker, Max: marker}, nil); err != nil {
		_ = cmd.Process.Kill()
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Errorf("the late step ended by itself: %v", err)
		}
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("a marked process that started after the stop was not killed")
	}
	deadline := time.Now().Add(stepQuiet + 2*time.Second)
	for b.steps.watching(marker) {
		if time.Now().After(deadline) {
			t.Fatal("the watch goes on after the build's step was killed and nothing more started")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
