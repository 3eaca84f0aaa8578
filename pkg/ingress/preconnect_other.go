//go:build !linux

package ingress

import "net"

// preconnectSupported: without a way to check a spare right before use
// (alive), the ingress does not pre-connect: a spare the instance closed
// would fail its request.
const preconnectSupported = false

// alive is never called where preconnectSupported is false.
func alive(net.Conn) bool { return false }
