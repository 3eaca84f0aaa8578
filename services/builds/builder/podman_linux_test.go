package builder

import (
	"crypto/rand"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/slipwayhq/slipway/pkg/procfs"
)

// markedSleep starts `sleep 600` and gives it RLIMIT_RTTIME soft and hard
// limits as a step (or a hostile step) could; it is killed at the end of
// the test whatever happens.
func markedSleep(t *testing.T, soft, hard uint64) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	return startMarked(t, cmd, soft, hard)
}

func startMarked(t *testing.T, cmd *exec.Cmd, soft, hard uint64) *exec.Cmd {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
	if err := unix.Prlimit(cmd.Process.Pid, unix.RLIMIT_RTTIME, &unix.Rlimit{Cur: soft, Max: hard}, nil); err != nil {
		t.Fatal(err)
	}
	return cmd
}

// testMarker is a marker of a build id of its own, so that killMarked
// never finds processes of anything else running on the machine.
func testMarker(t *testing.T) uint64 {
	t.Helper()
	return stepMarker("killmarked-test-" + rand.Text())
}

// killedSoon reports whether pid is gone (or a zombie) within a few
// seconds.
func killedSoon(pid int) bool {
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if st, err := procfs.ReadStat(pid); err != nil || !st.Live() {
			return true
		}
	}
	return false
}

func runs(pid int) bool {
	st, err := procfs.ReadStat(pid)
	return err == nil && st.Live()
}

// TestKillMarkedOnlyItsMarker: killMarked kills the processes of its
// marker, not those of another build's.
func TestKillMarkedOnlyItsMarker(t *testing.T) {
	a, b := testMarker(t), testMarker(t)
	pa := markedSleep(t, a, a)
	pb := markedSleep(t, b, b)
	if n := killMarked(a); n != 1 {
		t.Errorf("killMarked(A) found %d processes, want 1", n)
	}
	if !killedSoon(pa.Process.Pid) {
		t.Error("A's process runs on")
	}
	if !runs(pb.Process.Pid) {
		t.Error("B's process was killed too")
	}
}

// TestKillMarkedLoweredSoftLimit: a step that lowers its soft limit (a
// process may, and raise it again up to the hard one) is still found.
func TestKillMarkedLoweredSoftLimit(t *testing.T) {
	m := testMarker(t)
	p := markedSleep(t, 1000, m)
	if n := killMarked(m); n != 1 {
		t.Errorf("killMarked found %d processes, want 1", n)
	}
	if !killedSoon(p.Process.Pid) {
		t.Error("the process with a lowered soft limit runs on")
	}
}

// TestKillMarkedDescendants: a child whose limits were lowered for good
// (soft and hard) by a step whose shell keeps the marker is killed with
// it.
func TestKillMarkedDescendants(t *testing.T) {
	m := testMarker(t)
	sh := startMarked(t, exec.Command("sh", "-c", "sleep 600 & wait"), m, m)
	var child int
	for end := time.Now().Add(5 * time.Second); child == 0; time.Sleep(20 * time.Millisecond) {
		pids, _ := procfs.PIDs()
		for _, pid := range pids {
			if st, err := procfs.ReadStat(pid); err == nil && st.PPID == sh.Process.Pid {
				child = pid
			}
		}
		if time.Now().After(end) {
			t.Fatal("the shell started no child")
		}
	}
	// Not ours to wait for: the shell reaps it, or init once the shell is
	// gone; killed at the end whatever happens.
	t.Cleanup(func() { _ = syscall.Kill(child, syscall.SIGKILL) })
	if err := unix.Prlimit(child, unix.RLIMIT_RTTIME, &unix.Rlimit{Cur: 1000, Max: 1000}, nil); err != nil {
		t.Fatal(err)
	}
	if soft, hard, _ := procfs.ReadLimit(child, procfs.LimitRTTime); soft != "1000" || hard != "1000" {
		t.Fatalf("the child's limits %s:%s", soft, hard)
	}
	if n := killMarked(m); n != 2 {
		t.Errorf("killMarked found %d processes, want 2 (the shell and its child)", n)
	}
	if !killedSoon(sh.Process.Pid) || !killedSoon(child) {
		t.Errorf("left running: shell %v, child %v (%s)", runs(sh.Process.Pid), runs(child), strconv.Itoa(child))
	}
}
