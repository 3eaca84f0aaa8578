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

// testUsage: a busy workload's CPU time grows at about one CPU, and a
// workload holding memory shows it (the conformance case Usage only asks
// for some of each, and checks ErrNotRunning and ErrNotFound).
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

	first, err := d.Usage(ctx, busy)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	second, err := d.Usage(ctx, busy)
	if err != nil {
		t.Fatal(err)
	}
	if rate := float64(second.CPU-first.CPU) / float64(second.At.Sub(first.At)); second.CPU <= first.CPU || rate < 0.2 || rate > 2.5 {
		t.Errorf("a busy loop used %v in %v (%.2f CPUs), want about one", second.CPU-first.CPU, second.At.Sub(first.At), rate)
	}
	if since := time.Since(second.At); since < -time.Minute || since > time.Minute {
		t.Errorf("sample taken at %v", second.At)
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
