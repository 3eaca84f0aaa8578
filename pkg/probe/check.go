package probe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"
)

// Exec runs argv inside an instance and returns its exit code; the
// runtime driver provides it. An error means the command could not be
// run at all (which fails the check as well). It must return when ctx is
// done.
type Exec func(ctx context.Context, argv []string) (exitCode int, err error)

// Checker runs one health check once. It returns nil when the instance
// is healthy and otherwise an error whose message says why, in words fit
// for an instance's status (no internals of Slipway). It must return
// when ctx is done; the Prober sets ctx's deadline from timeoutSeconds.
type Checker interface {
	Check(ctx context.Context) error
}

// CheckerFunc adapts a function to Checker.
type CheckerFunc func(ctx context.Context) error

// Check calls f.
func (f CheckerFunc) Check(ctx context.Context) error { return f(ctx) }

// Addr maps an instance's internal port to the host:port the server
// reaches it at. A runtime driver publishes an instance's port on another
// loopback port (runtime.Status.Ports), so a check of "port 8080" must
// dial that address, not 127.0.0.1:8080. An error means the port is not
// reachable (not published, or the instance is gone) and fails the check.
type Addr func(port int) (string, error)

// Loopback is the Addr of an instance that listens on the host's own
// network: 127.0.0.1:<port>.
func Loopback(port int) (string, error) {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), nil
}

// NewChecker returns the checker of c; exec is needed for CMD checks
// only. c must have passed Validate. HTTP and TCP checks dial
// 127.0.0.1:<port>; NewCheckerAt dials elsewhere.
func NewChecker(c HealthCheck, exec Exec) (Checker, error) {
	return NewCheckerAt(c, Loopback, exec)
}

// NewCheckerAt is NewChecker for an instance whose ports the server
// reaches through addr.
func NewCheckerAt(c HealthCheck, addr Addr, exec Exec) (Checker, error) {
	if addr == nil {
		addr = Loopback
	}
	switch c.Protocol {
	case HTTP:
		return httpChecker(addr, c.Port, c.Path), nil
	case TCP:
		return tcpChecker(addr, c.Port), nil
	case CMD:
		argv, err := c.Argv()
		if err != nil || len(argv) == 0 {
			return nil, fmt.Errorf("probe: cmd %q is not a command", c.Cmd)
		}
		if exec == nil {
			return nil, errors.New("probe: a CMD health check needs an Exec")
		}
		return CmdChecker(exec, argv), nil
	}
	return nil, fmt.Errorf("probe: unknown protocol %q", c.Protocol)
}

// maxBody is how much of an HTTP answer is read; the kubelet reads 10 KiB
// too. Reading (rather than closing at once) lets the instance finish
// writing a small answer without a reset.
const maxBody = 10 << 10

// httpClient is shared by all HTTP checks. It never uses a proxy (probes
// go to 127.0.0.1 and nowhere else), never follows a
// redirect (a 3xx is the answer, as with the kubelet, and a redirect must
// not take the probe off 127.0.0.1), and opens a fresh connection per
// check so a check proves the instance still accepts connections.
var httpClient = &http.Client{
	Transport: &http.Transport{
		Proxy:                  nil,
		DialContext:            (&net.Dialer{}).DialContext,
		DisableKeepAlives:      true,
		DisableCompression:     true,
		MaxResponseHeaderBytes: 64 << 10,
	},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// HTTPChecker checks with GET http://127.0.0.1:<port><path>: a status from
// 200 to 399 is healthy, anything else (or no answer before ctx's
// deadline) is not.
func HTTPChecker(port int, path string) Checker {
	return httpChecker(Loopback, port, path)
}

// HTTPCheckerAt is HTTPChecker for a port the server reaches at addr
// ("127.0.0.1:40123"); messages still name port, the instance's own
// number, which is the one its owner knows.
func HTTPCheckerAt(addr string, port int, path string) Checker {
	return httpChecker(func(int) (string, error) { return addr, nil }, port, path)
}

func httpChecker(addr Addr, port int, path string) Checker {
	return CheckerFunc(func(ctx context.Context) error {
		hostport, err := addr(port)
		if err != nil {
			return fmt.Errorf("HTTP health check on port %d: the port is not reachable", port)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+hostport+path, nil)
		if err != nil {
			return fmt.Errorf("HTTP health check of %s: invalid request", path)
		}
		req.Header.Set("User-Agent", "slipway-probe/1")
		req.Header.Set("Accept", "*/*")
		resp, err := httpClient.Do(req)
		if err != nil {
			return fmt.Errorf("HTTP health check on port %d: %s", port, failure(ctx, err))
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
		_ = resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode > 399 {
			return fmt.Errorf("HTTP health check on port %d answered %d", port, resp.StatusCode)
		}
		return nil
	})
}

// tcpSettle is how long a TCP check waits, once connected, for the
// connection to be closed by a forwarder with nothing behind it; a
// forwarder does so within a millisecond.
const tcpSettle = 50 * time.Millisecond

// TCPChecker checks that 127.0.0.1:<port> accepts a connection and keeps
// it open (see tcpChecker).
func TCPChecker(port int) Checker {
	return tcpChecker(Loopback, port)
}

// TCPCheckerAt is TCPChecker for a port the server reaches at addr.
func TCPCheckerAt(addr string, port int) Checker {
	return tcpChecker(func(int) (string, error) { return addr, nil }, port)
}

func tcpChecker(addr Addr, port int) Checker {
	return CheckerFunc(func(ctx context.Context) error {
		hostport, err := addr(port)
		if err != nil {
			return fmt.Errorf("TCP health check on port %d: the port is not reachable", port)
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", hostport)
		if err != nil {
			return fmt.Errorf("TCP health check on port %d: %s", port, failure(ctx, err))
		}
		defer conn.Close()
		// A port published by a user-space forwarder (slirp4netns for the
		// process driver, docker-proxy, rootlessport) accepts every
		// connection itself and closes it at once when nothing listens
		// behind it yet, so connecting proves nothing there. A listener
		// keeps the connection open (or speaks first): wait a moment for
		// the forwarder's close.
		settle := tcpSettle
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < settle {
			settle = time.Until(dl)
		}
		_ = conn.SetReadDeadline(time.Now().Add(settle))
		var b [1]byte
		_, err = conn.Read(b[:])
		var ne net.Error
		if err == nil || errors.As(err, &ne) && ne.Timeout() {
			return nil
		}
		return fmt.Errorf("TCP health check on port %d: the connection was closed at once", port)
	})
}

// CmdChecker checks by running argv through exec: exit code 0 is healthy.
func CmdChecker(exec Exec, argv []string) Checker {
	return CheckerFunc(func(ctx context.Context) error {
		code, err := exec(ctx, argv)
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("CMD health check: %s", failure(ctx, ctx.Err()))
		case err != nil:
			return errors.New("CMD health check: the command could not be run")
		case code != 0:
			return fmt.Errorf("CMD health check exited with code %d", code)
		}
		return nil
	})
}

// failure says in a few words why a check got no answer, without the
// addresses and syscalls a Go network error carries.
func failure(ctx context.Context, err error) string {
	var ne net.Error
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timed out"
	case ctx.Err() != nil:
		return "canceled"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	}
	return "no answer"
}

// runWithTimeout runs one check with its timeout.
func runWithTimeout(ctx context.Context, c Checker, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return c.Check(ctx)
}
