//go:build linux

package e2e

import "syscall"

// setParentDeathSignal makes the kernel kill a started Slipway when the
// thread that forked it exits, so a test binary that is killed (e.g. by
// go test -timeout) does not leave servers running. See startProcess.
func setParentDeathSignal(attr *syscall.SysProcAttr) { attr.Pdeathsig = syscall.SIGKILL }
