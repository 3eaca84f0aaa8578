package process

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/slipwayhq/slipway/pkg/procfs"
	"github.com/slipwayhq/slipway/pkg/runtime"
)

// Usage: where a run has cgroups, they count all of it (the workload, what
// is exec'd into it, and the run's own helpers: its shim, bubblewrap and,
// with a private network, slirp4netns): CPU time from cpuacct.usage (v1)
// or cpu.stat's usage_usec (v2), memory from memory.usage_in_bytes (v1)
// or memory.current (v2) less the inactive file cache that the kernel
// reclaims first (as `docker stats` reports it). Without cgroups (none
// usable on the host, or unsandboxed) the driver sums /proc of the run's
// live processes: those in its sandbox's PID namespace, or in its process
// group when unsandboxed. Their CPU times (utime+stime, plus cutime+cstime
// of children they reaped) and resident set sizes; what an exited process
// used and nobody reaped is not counted.

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on
// every Linux architecture Go supports.
const clockTicks = 100

// Usage implements runtime.Driver.
func (d *Driver) Usage(ctx context.Context, id string) (runtime.Usage, error) {
	st, err := d.status(id)
	if err != nil {
		return runtime.Usage{}, err
	}
	if st.State != runtime.StateRunning {
		return runtime.Usage{}, runtime.ErrNotRunning
	}
	var sf specFile
	var pf pidFile
	if err := readJSON(d.path(id, "spec.json"), &sf); err != nil {
		return runtime.Usage{}, fmt.Errorf("process: %s: %w", id, err)
	}
	if err := readJSON(d.path(id, "pid"), &pf); err != nil || pf.PID <= 0 || !alive(&pf) {
		return runtime.Usage{}, runtime.ErrNotRunning
	}
	u := runtime.Usage{At: time.Now()}
	if len(sf.Cgroups) > 0 {
		if cgroupUsage(sf.Cgroups, &u) {
			return u, nil
		}
	}
	var pids []int
	if sf.Sandboxed {
		_, ns, ok := sandboxInitNS(d.path(id, "info"), &pf)
		if !ok {
			return u, nil // the sandbox is not up yet: nothing used
		}
		pids = pidsInNS(ns)
	} else {
		pids = groupPIDs(pf.PGID)
	}
	page := int64(os.Getpagesize())
	for _, pid := range pids {
		cpu, rss, err := procUsage(pid)
		if err == nil {
			u.CPU += cpu
			u.MemoryBytes += rss * page
		}
	}
	return u, nil
}

// cgroupUsage fills u from the run's cgroups dirs; false if they have no
// accounting files (gone, or controllers missing).
func cgroupUsage(dirs []string, u *runtime.Usage) bool {
	var cpuOK, memOK bool
	for _, d := range dirs {
		if n, err := readInt(filepath.Join(d, "cpuacct.usage")); err == nil { // v1, nanoseconds
			u.CPU, cpuOK = time.Duration(n), true
		}
		if st, err := readKV(filepath.Join(d, "cpu.stat")); err == nil { // v2
			if n, ok := st["usage_usec"]; ok {
				u.CPU, cpuOK = time.Duration(n)*time.Microsecond, true
			}
		}
		mem, err := readInt(filepath.Join(d, "memory.current")) // v2
		inactive := "inactive_file"
		if err != nil {
			mem, err = readInt(filepath.Join(d, "memory.usage_in_bytes")) // v1
			inactive = "total_inactive_file"
		}
		if err == nil {
			if st, err := readKV(filepath.Join(d, "memory.stat")); err == nil && st[inactive] < mem {
				mem -= st[inactive]
			}
			u.MemoryBytes, memOK = mem, true
		}
	}
	return cpuOK && memOK
}

func readInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// readKV reads a cgroup file of "key value" lines.
func readKV(path string) (map[string]int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]int64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), " "); ok {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				out[k] = n
			}
		}
	}
	return out, sc.Err()
}

// pidsInNS are the processes of PID namespace ns.
func pidsInNS(ns string) []int {
	pids, _ := procfs.PIDs()
	var out []int
	for _, pid := range pids {
		if got, err := procfs.NS(pid, "pid"); err == nil && got == ns {
			out = append(out, pid)
		}
	}
	return out
}

// groupPIDs are the live processes of process group pgid.
func groupPIDs(pgid int) []int {
	pids, _ := procfs.PIDs()
	var out []int
	for _, pid := range pids {
		if st, err := procfs.ReadStat(pid); err == nil && st.Pgrp == pgid && st.Live() {
			out = append(out, pid)
		}
	}
	return out
}

// procUsage is a process's CPU time (its own and its reaped children's)
// and resident pages.
func procUsage(pid int) (time.Duration, int64, error) {
	st, err := procfs.ReadStat(pid)
	if err != nil {
		return 0, 0, err
	}
	ticks := st.UTime + st.STime + st.CUTime + st.CSTime
	return time.Duration(ticks) * time.Second / clockTicks, st.RSS, nil
}
