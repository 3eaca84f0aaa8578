package builder

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"strings"

	"github.com/slipwayhq/slipway/pkg/procfs"
)

// ErrInUse: an artifact a running workload uses is not removed unless
// forced (retention tries again later).
var ErrInUse = errors.New("in use by a running workload")

// artifactInUse reports whether a process of this host runs from the
// artifact tree dir: one whose mount namespace has it mounted (a
// sandboxed release sees it at /app; /proc/<pid>/mountinfo names the
// mount's source by its path in its file system, which ends in
// artifacts/<build>/app whatever the file system) or, unsandboxed, whose
// working directory is in it. A process the server cannot look at counts
// as not using it: the server runs as root where sandboxes run, and reads
// every one.
func artifactInUse(dir string) bool {
	suffix := string(filepath.Separator) + filepath.Join(filepath.Base(filepath.Dir(filepath.Dir(dir))), filepath.Base(filepath.Dir(dir)), filepath.Base(dir))
	pids, err := procfs.PIDs()
	if err != nil {
		return false
	}
	for _, pid := range pids {
		if cwd, err := os.Readlink(procfs.Path(pid, "cwd")); err == nil && (cwd == dir || strings.HasPrefix(cwd, dir+"/")) {
			return true
		}
		if mountsFrom(procfs.Path(pid, "mountinfo"), suffix) {
			return true
		}
	}
	return false
}

// mountsFrom reports whether a mountinfo file lists a mount whose root (its
// fourth field, the path of the mounted directory in its file system)
// ends in suffix.
func mountsFrom(mountinfo, suffix string) bool {
	f, err := os.Open(mountinfo)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && strings.HasSuffix(fields[3], suffix) {
			return true
		}
	}
	return false
}
