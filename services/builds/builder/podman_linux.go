package builder

import (
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// killMarked sends SIGKILL to every live process of this machine whose
// soft RLIMIT_RTTIME is marker and returns how many it found (killed but
// not yet gone count too; zombies do not).
//
// A match is pinned with a pidfd and read again before the signal, which
// goes through the pidfd: a pid reused meanwhile is never signalled.
func killMarked(marker uint64) int {
	want := strconv.FormatUint(marker, 10)
	marked := func(pid string) bool {
		limits, err := os.ReadFile("/proc/" + pid + "/limits")
		if err != nil {
			return false
		}
		soft, ok := rttimeSoft(string(limits))
		if !ok || soft != want {
			return false
		}
		stat, err := os.ReadFile("/proc/" + pid + "/stat")
		i := strings.LastIndexByte(string(stat), ')')
		return err == nil && i > 0 && !strings.HasPrefix(strings.TrimSpace(string(stat[i+1:])), "Z")
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 1 || !marked(e.Name()) {
			continue
		}
		fd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			continue // gone
		}
		if marked(e.Name()) && unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0) == nil {
			n++
		}
		unix.Close(fd)
	}
	return n
}
