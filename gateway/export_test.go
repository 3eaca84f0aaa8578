package gateway

import "time"

// SetTailInitTimeout sets how long gateways built afterwards wait for a
// log tail's init message, and returns a function restoring the default.
func SetTailInitTimeout(d time.Duration) (restore func()) {
	old := tailInitTimeout
	tailInitTimeout = d
	return func() { tailInitTimeout = old }
}
