//go:build linux

package testenv

import "syscall"

// setParentDeathSignal asks the kernel to send sig to the child when the
// thread that forked it exits. Together with startProcess (which forks from a
// locked OS thread that lives exactly as long as the child) this means a
// test binary that is killed, panics on -timeout, or forgets testenv.Main
// still takes its servers down with it instead of leaking them.
func setParentDeathSignal(attr *syscall.SysProcAttr, sig syscall.Signal) {
	attr.Pdeathsig = sig
}
