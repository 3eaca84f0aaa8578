//go:build unix && !linux

package testenv

import "syscall"

// setParentDeathSignal is a no-op outside Linux: there is no portable
// equivalent of PR_SET_PDEATHSIG, so on other platforms only the orderly
// shutdown paths (t.Cleanup, testenv.Main) stop the servers.
func setParentDeathSignal(attr *syscall.SysProcAttr, sig syscall.Signal) {}
