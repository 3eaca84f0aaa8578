package testenv

import (
	"bytes"
	"os"
	"strconv"
	"testing"
)

// Processes returns the pids of the processes of this machine whose
// command line (its arguments joined by spaces) contains s, read from
// /proc: it needs no pgrep, which a minimal system lacks. It fails the test
// when /proc cannot be read, so that "none" is never a blind answer.
func Processes(t testing.TB, s string) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatalf("testenv.Processes: %v", err)
	}
	self := os.Getpid()
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue // gone meanwhile
		}
		if bytes.Contains(bytes.ReplaceAll(b, []byte{0}, []byte{' '}), []byte(s)) {
			pids = append(pids, pid)
		}
	}
	return pids
}
