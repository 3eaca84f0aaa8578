package builder

import (
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/slipwayhq/slipway/pkg/procfs"
)

// killMarked sends SIGKILL to every live process of this machine whose
// soft RLIMIT_RTTIME is marker and returns how many it found (killed but
// not yet gone count too; zombies do not).
//
// A match is pinned with a pidfd and read again before the signal, which
// goes through the pidfd: a pid reused meanwhile is never signalled.
func killMarked(marker uint64) int {
	want := strconv.FormatUint(marker, 10)
	marked := func(pid int) bool {
		soft, _, err := procfs.ReadLimit(pid, procfs.LimitRTTime)
		if err != nil || soft != want {
			return false
		}
		st, err := procfs.ReadStat(pid)
		return err == nil && st.State != 'Z'
	}
	pids, err := procfs.PIDs()
	if err != nil {
		return 0
	}
	n := 0
	for _, pid := range pids {
		if pid <= 1 || !marked(pid) {
			continue
		}
		fd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			continue // gone
		}
		if marked(pid) && unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0) == nil {
			n++
		}
		unix.Close(fd)
	}
	return n
}
