package process

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pkg/runtime/runtimetest"
)

// TestRemoveUnderConcurrentList: removing finished runs while other
// callers list the driver's workloads (every jobs supervisor lists them to
// find an attempt's workload) leaves no directory behind. A listing used
// to see a run half removed (its exit file gone, its spec not yet), take
// it for an unfinished run and watch it, recreating files in the
// directory being removed: "directory not empty", and a leftover no later
// start could identify.
func TestRemoveUnderConcurrentList(t *testing.T) {
	dir := t.TempDir()
	d := newDriver(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	stop := make(chan struct{})
	var listers sync.WaitGroup
	for range 4 {
		listers.Add(1)
		go func() {
			defer listers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, _ = d.List(ctx, map[string]string{"x": "y"})
			}
		}()
	}
	const runs = 100
	var wg sync.WaitGroup
	errs := make(chan error, runs)
	for range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := d.Start(ctx, sh("echo out; echo err >&2"))
			if err != nil {
				errs <- err
				return
			}
			if _, err := d.Wait(ctx, id); err != nil {
				errs <- err
				return
			}
			for range d.Logs(ctx, id, false) {
			}
			if err := d.Remove(ctx, id); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(stop)
	listers.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Watchers a listing started may still be winding down.
	time.Sleep(300 * time.Millisecond)
	if left := entries(t, dir); len(left) != 0 {
		t.Fatalf("left behind after removing every run: %v", left)
	}
}

// TestStartSweepsLeftovers: a new driver removes what removals an earlier
// one did not finish left behind, and nothing of a run that is whole.
func TestStartSweepsLeftovers(t *testing.T) {
	dir := t.TempDir()
	d := newDriver(t, dir)
	keep := runtimetest.Start(t, d, sh("echo kept"))
	runtimetest.Wait(t, d, keep)
	_ = d.Close()
	// A run directory without its spec (what the race above left: a lock,
	// a log and an exit file), a removal interrupted after its rename, and
	// a start that died before its rename.
	for _, p := range []string{
		filepath.Join(dir, "0123456789abcdef01234567", "exit"),
		filepath.Join(dir, "0123456789abcdef01234567", "lock"),
		filepath.Join(dir, ".removing-89abcdef0123456789abcdef", "work", "file"),
		filepath.Join(dir, ".new-fedcba9876543210fedcba98", "spec.json"),
	} {
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("{}"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	d = newDriver(t, dir)
	if left := entries(t, dir); len(left) != 1 || left[0] != keep {
		t.Fatalf("after a restart the state directory holds %v, want only %s", left, keep)
	}
	if err := d.Remove(context.Background(), keep); err != nil {
		t.Fatal(err)
	}
	if left := entries(t, dir); len(left) != 0 {
		t.Fatalf("left behind: %v", left)
	}
}

func entries(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}
