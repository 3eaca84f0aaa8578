package builder

import (
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/slipwayhq/slipway/pkg/procfs"
)

// killMarked sends SIGKILL to every live process of this machine whose
// soft or hard RLIMIT_RTTIME is marker, and to the live processes
// descending from one, and returns how many it found (killed but not yet
// gone count too; zombies do not).
//
// The hard limit counts because a step may lower its soft limit (which
// its children inherit) and raise it again; the descendants count because
// a step may lower its hard limit too, for good, and start children
// without the marker. That is best effort against a hostile step: one
// whose marked ancestors all unmarked themselves is not found (a step's
// first process is its PID namespace's init, and killing a marked init
// kills all of its namespace).
//
// Every target is pinned with a pidfd and checked again before the
// signal, which goes through the pidfd: a pid reused meanwhile is never
// signalled. All are found before any is signalled, so that a child is
// not lost to reparenting when its marked parent dies first.
func killMarked(marker uint64) int {
	want := strconv.FormatUint(marker, 10)
	isMarked := func(pid int) bool {
		soft, hard, err := procfs.ReadLimit(pid, procfs.LimitRTTime)
		return err == nil && (soft == want || hard == want)
	}
	pids, err := procfs.PIDs()
	if err != nil {
		return 0
	}
	stats := map[int]procfs.Stat{}
	children := map[int][]int{}
	var marked []int
	for _, pid := range pids {
		st, err := procfs.ReadStat(pid)
		if err != nil || pid <= 1 || !st.Live() {
			continue
		}
		stats[pid] = st
		children[st.PPID] = append(children[st.PPID], pid)
		if isMarked(pid) {
			marked = append(marked, pid)
		}
	}
	// The marked processes first, each checked for its marker again; then
	// their descendants, each checked to be the process found (same start).
	targets := map[int]bool{}
	var order []int
	var walk func(pid int, byMarker bool)
	walk = func(pid int, byMarker bool) {
		if _, ok := targets[pid]; ok {
			return
		}
		targets[pid] = byMarker
		order = append(order, pid)
		for _, c := range children[pid] {
			walk(c, false)
		}
	}
	for _, pid := range marked {
		walk(pid, true)
	}
	var fds []int
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	var pinned []int
	for _, pid := range order {
		fd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			continue // gone
		}
		fds = append(fds, fd)
		st, err := procfs.ReadStat(pid)
		if err != nil || !st.Live() || st.Start != stats[pid].Start || (targets[pid] && !isMarked(pid)) {
			continue
		}
		pinned = append(pinned, fd)
	}
	n := 0
	for _, fd := range pinned {
		if unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0) == nil {
			n++
		}
	}
	return n
}
