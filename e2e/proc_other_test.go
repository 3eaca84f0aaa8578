//go:build !linux

package e2e

import "syscall"

// setParentDeathSignal is a no-op where the kernel has no parent-death
// signal; t.Cleanup still stops every started Slipway.
func setParentDeathSignal(*syscall.SysProcAttr) {}
