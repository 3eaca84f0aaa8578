package docker

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/slipwayhq/slipway/pkg/runtime"
)

// Usage implements runtime.Driver from one sample of the engine's stats
// (GET /containers/{id}/stats?stream=false&one-shot=true):
// cpu_stats.cpu_usage.total_usage is the container's processor time in
// nanoseconds, and its memory is memory_stats.usage less the page cache the
// kernel can reclaim, where the engine gives it: inactive_file on cgroup
// v2, total_inactive_file on v1 (as the docker CLI counts), else cache.
//
// Podman 4.3.1's compat answer has the same shape, with total_usage in
// nanoseconds (execs' time included: they run in the container's cgroup)
// and memory_stats holding only usage and limit (no stats map), which is
// then taken as it is.
func (d *Driver) Usage(ctx context.Context, id string) (runtime.Usage, error) {
	ci, err := d.inspect(ctx, id)
	if err != nil {
		return runtime.Usage{}, err
	}
	if phaseOf(ci.State) != phaseRunning {
		return runtime.Usage{}, fmt.Errorf("docker: %s: %w", id, runtime.ErrNotRunning)
	}
	resp, err := d.cli.ContainerStatsOneShot(ctx, ci.ID)
	if err != nil {
		if notRunning(err) {
			return runtime.Usage{}, fmt.Errorf("docker: %s: %w (%v)", id, runtime.ErrNotRunning, err)
		}
		return runtime.Usage{}, wrap(id, fmt.Errorf("stats: %w", err))
	}
	defer resp.Body.Close()
	var s container.StatsResponse
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return runtime.Usage{}, wrap(id, fmt.Errorf("stats: %w", err))
	}
	u := usageOf(s)
	if u.At.IsZero() {
		u.At = time.Now()
	}
	return u, nil
}

// usageOf turns the engine's stats into a Usage.
func usageOf(s container.StatsResponse) runtime.Usage {
	mem := int64(s.MemoryStats.Usage)
	for _, k := range []string{"inactive_file", "total_inactive_file", "cache"} {
		if v, ok := s.MemoryStats.Stats[k]; ok {
			if v < s.MemoryStats.Usage {
				mem = int64(s.MemoryStats.Usage - v)
			}
			break
		}
	}
	u := runtime.Usage{CPU: time.Duration(s.CPUStats.CPUUsage.TotalUsage), MemoryBytes: mem}
	if s.Read.Year() > 1 {
		u.At = s.Read
	}
	return u
}
