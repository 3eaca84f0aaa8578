// Package procfs reads what Linux's /proc says about the processes of this
// machine: which there are, a process's stat fields, its resource limits,
// its namespaces and its command line. It is the one place that walks
// /proc, for the runtime drivers, the builder and the test harness.
//
// It builds everywhere (it only reads files), but only Linux has the
// files: elsewhere PIDs fails and every reader answers an error, which
// its callers already treat as "no such process".
package procfs

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"strings"
)

// root is where procfs is mounted.
const root = "/proc"

// ErrBadStat: a stat file did not have the kernel's shape.
var ErrBadStat = errors.New("procfs: malformed stat")

// PIDs lists the processes of this machine (in the server's PID
// namespace) at the moment /proc is read; any may be gone by the time it
// is looked at, so every reader below may fail for one of them.
func PIDs() ([]int, error) {
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	out := make([]int, 0, len(ents))
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil && pid > 0 {
			out = append(out, pid)
		}
	}
	return out, nil
}

// Path is the path of a process's file name in /proc (cwd, mountinfo,
// status, ...), for the files this package does not parse.
func Path(pid int, name string) string {
	return root + "/" + strconv.Itoa(pid) + "/" + name
}

// Stat holds the fields of /proc/<pid>/stat that Slipway uses.
type Stat struct {
	// State is the one-letter state: R, S, D, T, Z (zombie), X (dead), ...
	State byte
	// PPID is the parent's pid.
	PPID int
	// Pgrp is the process group.
	Pgrp int
	// UTime, STime, CUTime and CSTime are the CPU times of the process
	// and of the children it reaped, in clock ticks (USER_HZ).
	UTime, STime, CUTime, CSTime int64
	// Start is when the process started, in clock ticks after boot: with
	// the pid, it tells a process from a later one that reused its pid.
	Start uint64
	// RSS is the resident set size in pages.
	RSS int64
}

// Live reports whether the process still runs: neither a zombie nor dead.
func (s Stat) Live() bool { return s.State != 'Z' && s.State != 'X' }

// ReadStat reads /proc/<pid>/stat.
func ReadStat(pid int) (Stat, error) {
	b, err := os.ReadFile(Path(pid, "stat"))
	if err != nil {
		return Stat{}, err
	}
	return ParseStat(b)
}

// ParseStat parses a stat file's text. The command name (field 2) may
// hold spaces and parentheses, so the fields are counted from its last
// ')'.
func ParseStat(b []byte) (Stat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return Stat{}, ErrBadStat
	}
	// f[0] is field 3 (state); field n is f[n-3].
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 22 || len(f[0]) != 1 {
		return Stat{}, ErrBadStat
	}
	num := func(n int) int64 {
		v, _ := strconv.ParseInt(f[n-3], 10, 64)
		return v
	}
	start, _ := strconv.ParseUint(f[22-3], 10, 64)
	return Stat{
		State: f[0][0],
		PPID:  int(num(4)),
		Pgrp:  int(num(5)),
		UTime: num(14), STime: num(15), CUTime: num(16), CSTime: num(17),
		Start: start,
		RSS:   num(24),
	}, nil
}

// Limit names of /proc/<pid>/limits, as the kernel writes them.
const (
	// LimitRTTime is RLIMIT_RTTIME.
	LimitRTTime = "Max realtime timeout"
)

// ReadLimit reads a process's soft and hard limit name (one of the
// Limit constants) as /proc/<pid>/limits writes them: a number or
// "unlimited".
func ReadLimit(pid int, name string) (soft, hard string, err error) {
	b, err := os.ReadFile(Path(pid, "limits"))
	if err != nil {
		return "", "", err
	}
	soft, hard, ok := ParseLimit(string(b), name)
	if !ok {
		return "", "", errors.New("procfs: no " + name + " in limits")
	}
	return soft, hard, nil
}

// ParseLimit finds the soft and hard limit name in a limits file's text.
func ParseLimit(limits, name string) (soft, hard string, ok bool) {
	for _, l := range strings.Split(limits, "\n") {
		if rest, found := strings.CutPrefix(l, name); found && (rest == "" || rest[0] == ' ') {
			f := strings.Fields(rest)
			if len(f) < 2 {
				return "", "", false
			}
			return f[0], f[1], true
		}
	}
	return "", "", false
}

// NS is the namespace of kind (pid, mnt, net, user, ...) a process is in,
// as its /proc/<pid>/ns link names it ("pid:[4026531836]"): two processes
// share a namespace when the names are equal.
func NS(pid int, kind string) (string, error) {
	return os.Readlink(Path(pid, "ns/"+kind))
}

// Cmdline is a process's command line, its arguments joined by spaces
// (the last one's terminating NUL too); empty for a zombie or a kernel
// thread.
func Cmdline(pid int) (string, error) {
	b, err := os.ReadFile(Path(pid, "cmdline"))
	if err != nil {
		return "", err
	}
	return string(bytes.ReplaceAll(b, []byte{0}, []byte{' '})), nil
}
