// Package httpserver builds the HTTP servers of a Slipway process with
// bounded time and connections, so that a slow or hostile client cannot
// hold a connection, a goroutine and a file descriptor for ever: headers
// and bodies must arrive within limits, answers must be taken within a
// limit, idle keep-alive connections are closed, and the number of open
// connections is capped below the process's file descriptor limit.
//
// Streaming routes (WebSocket log tails, later exec) outlive these limits
// on their own terms: they lift the connection's deadlines with
// http.ResponseController before they upgrade (see Stream) and keep their
// own write timeouts and pings.
package httpserver

import (
	"net"
	"net/http"
	"time"

	"golang.org/x/net/netutil"
)

// Defaults of the limits, documented in the README's configuration table.
const (
	// DefaultReadHeaderTimeout bounds the arrival of a request's headers.
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultReadTimeout bounds the arrival of a whole request, body
	// included: a 1 MiB body (the API's largest) needs about 17 KiB/s.
	DefaultReadTimeout = 60 * time.Second
	// DefaultWriteTimeout bounds the time from the end of a request's
	// headers to the end of its answer.
	DefaultWriteTimeout = 60 * time.Second
	// DefaultIdleTimeout closes keep-alive connections without a request
	// for that long.
	DefaultIdleTimeout = 2 * time.Minute
	// MinConnections is the least MaxConnections derives from the file
	// descriptor limit.
	MinConnections = 16
)

// Limits bound what one client may hold of a server.
type Limits struct {
	// ReadHeaderTimeout bounds the arrival of a request's headers.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds the arrival of a whole request, body included.
	ReadTimeout time.Duration
	// WriteTimeout bounds the time from the end of a request's headers
	// to the end of its answer.
	WriteTimeout time.Duration
	// IdleTimeout closes keep-alive connections idle for that long.
	IdleTimeout time.Duration
	// MaxConnections caps the connections open at once; beyond it new
	// connections wait (in the kernel's accept queue) until one closes.
	// Zero: DefaultMaxConnections.
	MaxConnections int
}

// DefaultLimits are the limits with every default.
func DefaultLimits() Limits {
	return Limits{
		ReadHeaderTimeout: DefaultReadHeaderTimeout,
		ReadTimeout:       DefaultReadTimeout,
		WriteTimeout:      DefaultWriteTimeout,
		IdleTimeout:       DefaultIdleTimeout,
		MaxConnections:    DefaultMaxConnections(),
	}
}

// DefaultMaxConnections is half of the process's open-file limit (at
// least MinConnections): the other half stays for databases, NATS, log
// files and workloads, so that a flood of connections is refused by the
// cap, not by the kernel in the middle of something else.
func DefaultMaxConnections() int {
	return max(int(openFileLimit()/2), MinConnections)
}

// New returns a server for h with l's timeouts. Serve it on a listener
// from Listen (or Limit) so that the connection cap applies too.
func New(h http.Handler, l Limits) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		ReadTimeout:       l.ReadTimeout,
		WriteTimeout:      l.WriteTimeout,
		IdleTimeout:       l.IdleTimeout,
	}
}

// Limit caps the connections lis hands out at once at l.MaxConnections
// (DefaultMaxConnections when zero). netutil.LimitListener (the Go team's
// golang.org/x/net) waits for a slot before it accepts, so a client over
// the cap waits in the accept queue instead of costing a descriptor and a
// goroutine, and the connections already open keep being served.
func Limit(lis net.Listener, l Limits) net.Listener {
	n := l.MaxConnections
	if n <= 0 {
		n = DefaultMaxConnections()
	}
	return netutil.LimitListener(lis, n)
}

// Stream lifts the server's read and write deadlines from w's connection,
// for a handler that streams (a WebSocket upgrade, a long download): such
// a route bounds each write and notices dead peers itself (pings). Call
// it before the upgrade; it fails only for a writer that cannot set
// deadlines (an HTTP/2 or test recorder without them), where there is
// nothing to lift.
func Stream(w http.ResponseWriter) error {
	rc := http.NewResponseController(w)
	if err := rc.SetReadDeadline(time.Time{}); err != nil {
		return err
	}
	return rc.SetWriteDeadline(time.Time{})
}
