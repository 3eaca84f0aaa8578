package procfs_test

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/slipwayhq/slipway/pkg/procfs"
)

// TestSelf: the test binary finds itself with the fields the kernel gives
// it.
func TestSelf(t *testing.T) {
	pids, err := procfs.PIDs()
	if err != nil {
		t.Fatal(err)
	}
	self := os.Getpid()
	if !slices.Contains(pids, self) {
		t.Fatalf("PIDs lacks this process %d", self)
	}
	st, err := procfs.ReadStat(self)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Live() || st.PPID != os.Getppid() || st.Start == 0 || st.RSS <= 0 {
		t.Errorf("stat %+v", st)
	}
	soft, hard, err := procfs.ReadLimit(self, procfs.LimitRTTime)
	if err != nil || soft == "" || hard == "" {
		t.Errorf("rttime %q %q %v", soft, hard, err)
	}
	ns, err := procfs.NS(self, "pid")
	if err != nil || !strings.HasPrefix(ns, "pid:[") {
		t.Errorf("pid namespace %q %v", ns, err)
	}
	cmd, err := procfs.Cmdline(self)
	if err != nil || !strings.HasPrefix(cmd, os.Args[0]+" ") {
		t.Errorf("cmdline %q %v", cmd, err)
	}
	if _, err := procfs.ReadStat(-1); err == nil {
		t.Error("a stat for pid -1")
	}
}

// TestParseStat: a command name with spaces and parentheses does not
// shift the fields.
func TestParseStat(t *testing.T) {
	line := "42 (a) b (c) S 7 42 42 0 -1 4194560 100 0 0 0 11 12 13 14 20 0 1 0 9999 1000000 250 18446744073709551615\n"
	st, err := procfs.ParseStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	want := procfs.Stat{State: 'S', PPID: 7, Pgrp: 42, UTime: 11, STime: 12, CUTime: 13, CSTime: 14, Start: 9999, RSS: 250}
	if st != want {
		t.Errorf("stat %+v, want %+v", st, want)
	}
	if _, err := procfs.ParseStat([]byte("42 (x) S 1 2")); err == nil {
		t.Error("a short stat parsed")
	}
}

// TestParseLimit: soft and hard limits as the kernel writes them.
func TestParseLimit(t *testing.T) {
	limits := "Limit                     Soft Limit           Hard Limit           Units     \n" +
		"Max realtime priority     0                    0                    \n" +
		"Max realtime timeout      4398046511105        4398046511106        us        \n"
	if soft, hard, ok := procfs.ParseLimit(limits, procfs.LimitRTTime); !ok || soft != "4398046511105" || hard != "4398046511106" {
		t.Errorf("ParseLimit = %q %q %v", soft, hard, ok)
	}
	if _, _, ok := procfs.ParseLimit("Max open files 1024 1024 files\n", procfs.LimitRTTime); ok {
		t.Error("found a limit in a text without it")
	}
}
