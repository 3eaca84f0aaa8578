//go:build unix

package httpserver

import "syscall"

// openFileLimit is the process's soft limit of open files (Go raises it
// to the hard limit at start-up), or 1024 when it cannot be read.
func openFileLimit() uint64 {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil || r.Cur == 0 {
		return 1024
	}
	return r.Cur
}
