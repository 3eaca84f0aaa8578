package docker

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/slipwayhq/slipway/pkg/runtime"
	"github.com/slipwayhq/slipway/pkg/runtime/runtimetest"
)

// TestUsageOf: the engines' answers, as Docker (cgroup v1 and v2) and
// Podman 4.3.1 give them.
func TestUsageOf(t *testing.T) {
	for _, c := range []struct {
		name, body string
		cpu        time.Duration
		mem        int64
	}{
		{"podman-4.3.1", `{"read":"2026-12-05T01:05:26.420041642Z","cpu_stats":{"cpu_usage":{"total_usage":149375199,"percpu_usage":[100361734,49013465]}},"memory_stats":{"usage":786432,"limit":25276194816}}`,
			149375199, 786432},
		{"docker-cgroup-v2", `{"read":"2026-12-05T01:05:26Z","cpu_stats":{"cpu_usage":{"total_usage":2000000000}},"memory_stats":{"usage":10000000,"stats":{"inactive_file":4000000,"file":5000000}}}`,
			2 * time.Second, 6000000},
		{"docker-cgroup-v1", `{"read":"2026-12-05T01:05:26Z","cpu_stats":{"cpu_usage":{"total_usage":5}},"memory_stats":{"usage":10000000,"stats":{"total_inactive_file":3000000,"cache":5000000}}}`,
			5, 7000000},
		{"cache-only", `{"read":"2026-12-05T01:05:26Z","memory_stats":{"usage":10000000,"stats":{"cache":1000000}}}`,
			0, 9000000},
	} {
		var s container.StatsResponse
		if err := json.Unmarshal([]byte(c.body), &s); err != nil {
			t.Fatal(err)
		}
		u := usageOf(s)
		if u.CPU != c.cpu || u.MemoryBytes != c.mem || u.At.IsZero() {
			t.Errorf("%s: %+v, want CPU %v, memory %d and a time", c.name, u, c.cpu, c.mem)
		}
	}
}

// Bounds of testUsage's busy loop: its CPU time must grow by usageGrowth
// within usageWithin. On an idle machine that takes about usageGrowth; on
// a loaded one the loop gets a smaller share of a core and takes longer,
// which is no fault of Usage, so only the bounded wait can fail it: CPU
// time counted in the wrong unit (a thousand times too small) or not
// growing never gets there.
const (
	usageGrowth = time.Second
	usageWithin = 90 * time.Second
)

// testUsage: a busy workload's CPU time grows, at most at one CPU (one
// thread), and a workload holding memory shows it (the conformance case
// Usage only asks for some of each, and checks ErrNotRunning and
// ErrNotFound).
func testUsage(t *testing.T, d *Driver, img string) {
	ctx := runtimetest.Context(t)
	busy := runtimetest.Start(t, d, runtime.Spec{Image: img, Command: []string{"/bin/sh", "-c", `while :; do :; done`}})
	// The shell keeps the 30 MB it read in memory.
	holder := runtimetest.Start(t, d, runtime.Spec{Image: img, Command: []string{"/bin/sh", "-c",
		`x=$(head -c 30000000 /dev/zero | tr '\0' a); echo held; sleep 600; echo "${#x}"`}})
	idle := runtimetest.Start(t, d, runtime.Spec{Image: img, Command: []string{"sleep", "600"}})
	t.Cleanup(func() {
		for _, id := range []string{busy, holder, idle} {
			_ = d.Stop(ctx, id, 0)
		}
	})

	sample := func() runtime.Usage {
		t.Helper()
		u, err := d.Usage(ctx, busy)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	// started is taken before the first sample and ended after the last,
	// so ended-started is at least the time between the two reads of the
	// counter: the rate over it is never above the true one.
	started := time.Now()
	first := sample()
	last := first
	for last.CPU-first.CPU < usageGrowth {
		if time.Since(started) > usageWithin {
			t.Fatalf("a busy loop's CPU time grew by %v in %v, want %v within %v", last.CPU-first.CPU, time.Since(started).Round(time.Millisecond), usageGrowth, usageWithin)
		}
		time.Sleep(100 * time.Millisecond)
		if u := sample(); u.CPU < last.CPU {
			t.Fatalf("CPU time went back from %v to %v", last.CPU, u.CPU)
		} else {
			last = u
		}
	}
	ended := time.Now()
	// One thread cannot use more than one CPU; the allowance covers the
	// engine's timer granularity, not a unit error (a thousand times).
	rate := float64(last.CPU-first.CPU) / float64(ended.Sub(started))
	if rate > 1.25 {
		t.Errorf("a busy loop used %v in %v (%.2f CPUs), want at most one", last.CPU-first.CPU, ended.Sub(started), rate)
	}
	t.Logf("a busy loop used %v in %v (%.2f CPUs)", last.CPU-first.CPU, ended.Sub(started).Round(time.Millisecond), rate)
	if since := time.Since(last.At); since < -time.Minute || since > time.Minute || !last.At.After(first.At) {
		t.Errorf("samples taken at %v then %v", first.At, last.At)
	}

	for deadline := time.Now().Add(30 * time.Second); ; {
		logs := runtimetest.Texts(t, runtimetest.Logs(t, d, holder, false), "stdout")
		if len(logs) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the memory holder never held")
		}
		time.Sleep(100 * time.Millisecond)
	}
	held, err := d.Usage(ctx, holder)
	if err != nil {
		t.Fatal(err)
	}
	little, err := d.Usage(ctx, idle)
	if err != nil {
		t.Fatal(err)
	}
	if little.MemoryBytes <= 0 || held.MemoryBytes < little.MemoryBytes+25_000_000 {
		t.Errorf("memory: %d holding 30 MB, %d idle; want more than 0 and 25 MB between them", held.MemoryBytes, little.MemoryBytes)
	}
}
