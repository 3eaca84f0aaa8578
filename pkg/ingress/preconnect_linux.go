package ingress

import (
	"errors"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// preconnectSupported: alive can tell a live spare on Linux.
const preconnectSupported = true

// alive reports whether conn, which no request has used, is still open
// with nothing to read: a non-blocking peek would block (EAGAIN). End of
// stream (the instance closed it), an error (reset) or data the instance
// sent unasked (a 408 before closing) all make it unusable.
func alive(conn net.Conn) bool {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	var peekErr error
	var b [1]byte
	err = rc.Read(func(fd uintptr) bool {
		_, _, peekErr = unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		return true // never wait for readability
	})
	return err == nil && errors.Is(peekErr, unix.EAGAIN)
}
