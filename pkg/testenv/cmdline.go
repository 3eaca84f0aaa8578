package testenv

import (
	"os"
	"strings"
	"testing"

	"github.com/slipwayhq/slipway/pkg/procfs"
)

// Processes returns the pids of the processes of this machine whose
// command line (its arguments joined by spaces) contains s, read from
// /proc: it needs no pgrep, which a minimal system lacks. It fails the test
// when /proc cannot be read, so that "none" is never a blind answer.
func Processes(t testing.TB, s string) []int {
	t.Helper()
	all, err := procfs.PIDs()
	if err != nil {
		t.Fatalf("testenv.Processes: %v", err)
	}
	self := os.Getpid()
	var pids []int
	for _, pid := range all {
		if pid == self {
			continue
		}
		if cmd, err := procfs.Cmdline(pid); err == nil && strings.Contains(cmd, s) {
			pids = append(pids, pid)
		}
	}
	return pids
}
