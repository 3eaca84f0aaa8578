package process

import (
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pkg/runtime"
	"github.com/slipwayhq/slipway/pkg/runtime/runtimetest"
)

// hogScript burns some CPU, then holds 50 MB (dd's buffer, filled from
// /dev/zero, blocked writing to a pipe nobody reads) and says ready.
const hogScript = `i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done
dd if=/dev/zero bs=50M count=1 2>/dev/null | { echo ready; sleep 120; }`

// checkUsage samples id once it is ready: at least 40 MB and some CPU.
func checkUsage(t *testing.T, d *Driver, id string) runtime.Usage {
	t.Helper()
	waitReady(t, d, id)
	var u runtime.Usage
	var err error
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if u, err = d.Usage(runtimetest.Context(t), id); err != nil {
			t.Fatal(err)
		}
		if u.MemoryBytes >= 40<<20 && u.CPU > 0 {
			return u
		}
	}
	t.Fatalf("usage %+v, want at least 40 MB and some CPU time", u)
	return u
}

// TestUsageCgroups: with cgroups, Usage reads them (on this host's v1,
// the cpuacct hierarchy the run now joins too).
func TestUsageCgroups(t *testing.T) {
	d := newDriver(t, t.TempDir())
	if d.sb.cg == nil {
		t.Fatalf("no cgroups on this host: %s", d.sb.cgWhy)
	}
	id := runtimetest.Start(t, d, sh(hogScript))
	defer stop(t, d, id)
	checkUsage(t, d, id)
	var sf specFile
	if err := readJSON(d.path(id, "spec.json"), &sf); err != nil {
		t.Fatal(err)
	}
	var u runtime.Usage
	if !cgroupUsage(sf.Cgroups, &u) {
		t.Fatalf("no CPU or memory accounting in the run's cgroups %v", sf.Cgroups)
	}
}

// TestUsageWithoutCgroups: without cgroups (a host with none usable, or
// unsandboxed), Usage sums /proc of the run's processes.
func TestUsageWithoutCgroups(t *testing.T) {
	t.Run("sandboxed", func(t *testing.T) {
		d := newDriver(t, t.TempDir())
		d.sb.cg = nil // as on a host without a usable hierarchy
		id := runtimetest.Start(t, d, sh(hogScript))
		defer stop(t, d, id)
		checkUsage(t, d, id)
	})
	t.Run("unsandboxed", func(t *testing.T) {
		d := newPortDriver(t, t.TempDir(), Options{Unsandboxed: true})
		id := runtimetest.Start(t, d, sh(hogScript))
		defer stop(t, d, id)
		checkUsage(t, d, id)
	})
}
