package process

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cgroups limits workloads through the host's cgroup hierarchy: the
// unified one (v2) where the host has it, else the v1 controllers cpu,
// memory and pids (freezer too, when mounted, to kill a run's processes
// without a race). Each run gets <parent>/<run id> in every hierarchy used.
type cgroups struct {
	v2 bool
	// dirs maps a controller ("" for v2) to the parent directory of the
	// runs' cgroups in its hierarchy.
	dirs map[string]string
	// home maps each of dirs' values to the server's own cgroup in that
	// hierarchy, where a run's shim goes back to remove the run's cgroup
	// when the run ends ("" when unknown).
	home map[string]string
}

// homes finds the server's own cgroup in each hierarchy of cg from
// /proc/self/cgroup, given each controller's mount point.
func (c *cgroups) homes(mounts map[string]string) {
	c.home = map[string]string{}
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		for ctrl, parent := range c.dirs {
			switch {
			case c.v2 && f[0] == "0" && f[1] == "":
				c.home[parent] = filepath.Join("/sys/fs/cgroup", f[2])
			case !c.v2 && contains(strings.Split(f[1], ","), ctrl):
				c.home[parent] = filepath.Join(mounts[ctrl], f[2])
			}
		}
	}
}

const cgroup2Magic = 0x63677270

// v1Controllers are the v1 hierarchies a run joins; freezer and cpuacct
// (its CPU time, for Usage) are optional, and cpuacct is most often
// mounted with cpu, whose directory then serves both.
var v1Controllers = []string{"cpu", "memory", "pids", "freezer", "cpuacct"}

func optionalV1(c string) bool { return c == "freezer" || c == "cpuacct" }

// detectCgroups finds a usable hierarchy and creates parent in it; nil and
// why when there is none.
func detectCgroups(parent string) (*cgroups, string) {
	parent = strings.Trim(filepath.Clean("/"+parent), "/")
	if parent == "" || strings.HasPrefix(parent, "..") {
		return nil, fmt.Sprintf("invalid cgroup parent %q", parent)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs("/sys/fs/cgroup", &st); err == nil && st.Type == cgroup2Magic {
		return detectV2(parent)
	}
	mounts, err := v1Mounts()
	if err != nil {
		return nil, "reading /proc/self/mountinfo: " + err.Error()
	}
	if len(mounts) == 0 {
		return nil, "no cgroup hierarchy is mounted at /sys/fs/cgroup"
	}
	cg := &cgroups{dirs: map[string]string{}}
	used := map[string]bool{}
	for _, c := range v1Controllers {
		m, ok := mounts[c]
		if !ok {
			if optionalV1(c) {
				continue
			}
			return nil, "the cgroup v1 " + c + " controller is not mounted"
		}
		if used[m] {
			continue // mounted with an earlier controller: its directory
		}
		used[m] = true
		dir := filepath.Join(m, parent)
		if optionalV1(c) {
			if os.MkdirAll(dir, 0o755) != nil || canCreate(dir) != nil {
				continue
			}
			cg.dirs[c] = dir
			continue
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Sprintf("cannot create cgroup %s (%v); run as root or set process-cgroup to a cgroup delegated to uid %d", dir, err, os.Getuid())
		}
		if err := canCreate(dir); err != nil {
			return nil, fmt.Sprintf("cannot create cgroups in %s (%v); run as root or set process-cgroup to a cgroup delegated to uid %d", dir, err, os.Getuid())
		}
		cg.dirs[c] = dir
	}
	cg.homes(mounts)
	return cg, ""
}

func detectV2(parent string) (*cgroups, string) {
	root := "/sys/fs/cgroup"
	// Controllers must be enabled for the children of every ancestor.
	dir := root
	for _, elem := range append(strings.Split(parent, "/"), "") {
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
		if err != nil {
			return nil, "cgroup v2: " + err.Error()
		}
		have := strings.Fields(string(b))
		for _, c := range []string{"cpu", "memory", "pids"} {
			if !contains(have, c) {
				return nil, fmt.Sprintf("cgroup v2: the %s controller is not available in %s", c, dir)
			}
		}
		if elem == "" {
			break
		}
		if err := os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte("+cpu +memory +pids"), 0); err != nil {
			return nil, fmt.Sprintf("cgroup v2: cannot enable controllers in %s (%v); run as root or set process-cgroup to a cgroup delegated to uid %d", dir, err, os.Getuid())
		}
		dir = filepath.Join(dir, elem)
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Sprintf("cgroup v2: cannot create %s (%v); run as root or set process-cgroup to a cgroup delegated to uid %d", dir, err, os.Getuid())
		}
	}
	if err := canCreate(dir); err != nil {
		return nil, fmt.Sprintf("cgroup v2: cannot create cgroups in %s (%v); run as root or set process-cgroup to a cgroup delegated to uid %d", dir, err, os.Getuid())
	}
	cg := &cgroups{v2: true, dirs: map[string]string{"": dir}}
	cg.homes(nil)
	return cg, ""
}

// canCreate checks that runs' cgroups can be made in dir (which may exist
// already, made by another user) by making and removing one.
func canCreate(dir string) error {
	probe := filepath.Join(dir, fmt.Sprintf(".probe-%d", os.Getpid()))
	if err := os.Mkdir(probe, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	return os.Remove(probe)
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// v1Mounts maps each v1 controller to its mount point.
func v1Mounts() (map[string]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		pf, qf := strings.Fields(pre), strings.Fields(post)
		if len(pf) < 5 || len(qf) < 3 || qf[0] != "cgroup" {
			continue
		}
		for _, opt := range strings.Split(qf[2], ",") {
			if contains(v1Controllers, opt) {
				if _, dup := out[opt]; !dup {
					out[opt] = pf[4]
				}
			}
		}
	}
	return out, sc.Err()
}

func (c *cgroups) describe() string {
	v := "v1"
	if c.v2 {
		v = "v2"
	}
	var dirs []string
	for _, d := range c.dirs {
		dirs = append(dirs, d)
	}
	return "cgroup " + v + " limits (cpu, memory, pids) under " + strings.Join(dirs, ", ")
}

// create makes the run's cgroups with its limits (zero: none, but the
// process count is always capped) and returns their directories.
func (c *cgroups) create(id string, milliCPU, memoryMB int64, procs int) ([]string, error) {
	var made []string
	fail := func(err error) ([]string, error) {
		for _, d := range made {
			_ = os.Remove(d)
		}
		return nil, err
	}
	for ctrl, parent := range c.dirs {
		dir := filepath.Join(parent, id)
		if err := os.Mkdir(dir, 0o755); err != nil {
			return fail(fmt.Errorf("cgroup %s: %w", dir, err))
		}
		made = append(made, dir)
		var files [][2]string
		switch {
		case c.v2:
			files = append(files, [2]string{"pids.max", strconv.Itoa(procs)})
			if milliCPU > 0 {
				files = append(files, [2]string{"cpu.max", strconv.FormatInt(milliCPU*100, 10) + " 100000"})
			}
			if memoryMB > 0 {
				files = append(files, [2]string{"memory.max", strconv.FormatInt(memoryMB<<20, 10)}, [2]string{"memory.swap.max?", "0"})
			}
		case ctrl == "pids":
			files = append(files, [2]string{"pids.max", strconv.Itoa(procs)})
		case ctrl == "cpu" && milliCPU > 0:
			files = append(files, [2]string{"cpu.cfs_period_us", "100000"}, [2]string{"cpu.cfs_quota_us", strconv.FormatInt(milliCPU*100, 10)})
		case ctrl == "memory" && memoryMB > 0:
			b := strconv.FormatInt(memoryMB<<20, 10)
			// memsw (memory plus swap) exists with swap accounting; it
			// must not be below the memory limit, so it comes second.
			files = append(files, [2]string{"memory.limit_in_bytes", b}, [2]string{"memory.memsw.limit_in_bytes?", b})
		}
		for _, f := range files {
			name, optional := strings.CutSuffix(f[0], "?")
			if err := os.WriteFile(filepath.Join(dir, name), []byte(f[1]), 0); err != nil && !(optional && errors.Is(err, os.ErrNotExist)) {
				return fail(fmt.Errorf("cgroup %s: setting %s: %w", dir, name, err))
			}
		}
	}
	return made, nil
}

// staleAfter is how long a run's cgroup may stay empty before a driver
// takes it for a leftover: a live run's cgroup always holds its shim, except
// for the moment between its creation and the shim joining it.
const staleAfter = time.Minute

// sweep removes the leftover cgroups of runs that ended with nothing to
// remove them (a shim killed while no driver watched it), of any driver
// sharing the parent: those empty for longer than staleAfter.
func (c *cgroups) sweep() {
	for _, parent := range c.dirs {
		ents, err := os.ReadDir(parent)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if !e.IsDir() || !idPattern.MatchString(e.Name()) {
				continue
			}
			dir := filepath.Join(parent, e.Name())
			fi, err := os.Stat(dir)
			if err != nil || time.Since(fi.ModTime()) < staleAfter || len(procsOf(dir)) > 0 {
				continue
			}
			_ = os.Remove(dir) // fails, harmlessly, if something joined meanwhile
		}
	}
}

// leaveScript is shell that moves the shim out of the run's cgroups dirs
// (back to the server's) and removes them, for the end of the shim: a run
// that ends while no driver watches it leaves no cgroup behind. Whatever
// fails here (something of the run still in them) is for killAll.
func (c *cgroups) leaveScript(dirs []string) string {
	var s []string
	for _, d := range dirs {
		if home := c.home[filepath.Dir(d)]; home != "" {
			s = append(s, "echo $$ >"+shellQuote(filepath.Join(home, "cgroup.procs")))
		}
	}
	for _, d := range dirs {
		s = append(s, "rmdir "+shellQuote(d))
	}
	return "{ " + strings.Join(s, "; ") + "; } 2>/dev/null\n"
}

// killAll kills every process left in the run's cgroups dirs and removes
// them; it gives up after a while (a later finish or Remove tries again).
func killAll(dirs []string) {
	if len(dirs) == 0 {
		return
	}
	var freezer string
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "freezer.state")); err == nil {
			freezer = d
		}
		// cgroup v2 (5.14+) kills the whole cgroup at once.
		_ = os.WriteFile(filepath.Join(d, "cgroup.kill"), []byte("1"), 0)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		var pids []int
		for _, d := range dirs {
			pids = append(pids, procsOf(d)...)
		}
		if len(pids) == 0 {
			break
		}
		// Frozen, nothing can fork away while it is being killed.
		if freezer != "" {
			_ = os.WriteFile(filepath.Join(freezer, "freezer.state"), []byte("FROZEN"), 0)
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if freezer != "" {
			_ = os.WriteFile(filepath.Join(freezer, "freezer.state"), []byte("THAWED"), 0)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, d := range dirs {
		for i := 0; i < 100; i++ {
			if err := os.Remove(d); err == nil || errors.Is(err, os.ErrNotExist) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func procsOf(dir string) []int {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	return pids
}
