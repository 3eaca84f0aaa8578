package docker

import (
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// killProcess kills the host process pid and its process group if pid is
// in the cgroup of container containerID. The engines start an exec's
// command as a session and group leader (runc calls setsid), so the group
// is the command and the children it did not move elsewhere.
//
// A pidfd pins the process first, so that a pid reused after the command
// ended is never signalled: the cgroup is read after the pidfd is open,
// and the process is then shown alive through the pidfd, so the read was
// of the same process. While it lives no other group can have its id.
func killProcess(pid int, containerID string) bool {
	if containerID == "" || pid <= 1 {
		return false
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return false // not in this pid namespace (a remote engine), or gone
	}
	defer unix.Close(fd)
	cg, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil || !strings.Contains(string(cg), containerID) {
		return false
	}
	if unix.PidfdSendSignal(fd, 0, nil, 0) != nil {
		return false
	}
	if pgid, err := unix.Getpgid(pid); err == nil && pgid == pid {
		_ = unix.Kill(-pid, unix.SIGKILL)
	}
	return unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0) == nil
}
