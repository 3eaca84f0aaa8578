package probe

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// serve starts an HTTP server on 127.0.0.1 and returns its port.
func serve(t *testing.T, h http.Handler) int {
	t.Helper()
	srv := httptest.NewServer(h) // listens on 127.0.0.1
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().(*net.TCPAddr).Port
}

// freePort returns a port on 127.0.0.1 with nothing listening.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	return port
}

func check(c Checker, timeout time.Duration) error {
	return runWithTimeout(context.Background(), c, timeout)
}

func TestHTTPCheckerStatuses(t *testing.T) {
	var code atomic.Int32
	var paths atomic.Value
	port := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths.Store(r.URL.Path)
		w.WriteHeader(int(code.Load()))
	}))
	c := HTTPChecker(port, "/healthz")
	for _, tc := range []struct {
		code    int
		healthy bool
	}{{200, true}, {204, true}, {301, true}, {399, true}, {400, false}, {404, false}, {500, false}, {503, false}} {
		code.Store(int32(tc.code))
		err := check(c, time.Second)
		if (err == nil) != tc.healthy {
			t.Errorf("status %d: err %v, want healthy %v", tc.code, err, tc.healthy)
		}
		if err != nil && !strings.Contains(err.Error(), "answered "+strconv.Itoa(tc.code)) {
			t.Errorf("status %d: message %q", tc.code, err)
		}
	}
	if got := paths.Load(); got != "/healthz" {
		t.Fatalf("probed path %v", got)
	}
}

// A redirect is the answer: following it could take the probe anywhere,
// and the kubelet does not follow one to another host either.
func TestHTTPCheckerDoesNotFollowRedirects(t *testing.T) {
	var followed atomic.Bool
	port := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/broken" {
			followed.Store(true)
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		http.Redirect(w, r, "/broken", http.StatusFound)
	}))
	if err := check(HTTPChecker(port, "/health"), time.Second); err != nil {
		t.Fatalf("302: %v", err)
	}
	if followed.Load() {
		t.Fatal("the redirect was followed")
	}
}

func TestHTTPCheckerTimesOut(t *testing.T) {
	release := make(chan struct{})
	port := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // hangs past the timeout
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer close(release)
	start := time.Now()
	err := check(HTTPChecker(port, "/"), 200*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("err %v, want a time-out", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %v for a 200ms timeout", d)
	}
}

// An endless body is read up to maxBody, not to the end.
func TestHTTPCheckerReadsABoundedBody(t *testing.T) {
	port := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := []byte(strings.Repeat("x", 4096))
		for r.Context().Err() == nil {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	start := time.Now()
	if err := check(HTTPChecker(port, "/"), 5*time.Second); err != nil {
		t.Fatalf("endless 200: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %v: the body was not bounded", d)
	}
}

func TestHTTPCheckerConnectionRefused(t *testing.T) {
	err := check(HTTPChecker(freePort(t), "/"), time.Second)
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("err %v, want connection refused", err)
	}
	if strings.Contains(err.Error(), "127.0.0.1") || strings.Contains(err.Error(), "dial") {
		t.Fatalf("message leaks internals: %q", err)
	}
}

func TestTCPChecker(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	c := TCPChecker(port)
	if err := check(c, time.Second); err != nil {
		t.Fatalf("listening: %v", err)
	}
	_ = l.Close()
	if err := check(c, time.Second); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("closed: err %v, want connection refused", err)
	}
}

func TestCmdChecker(t *testing.T) {
	var gotArgv []string
	exec := func(ctx context.Context, argv []string) (int, error) {
		gotArgv = argv
		switch argv[0] {
		case "ok":
			return 0, nil
		case "fail":
			return 3, nil
		case "hang":
			<-ctx.Done()
			return -1, ctx.Err()
		}
		return -1, errors.New("exec /bin/nope: no such file or directory")
	}
	c, err := NewChecker(HealthCheck{Protocol: CMD, Cmd: `ok "two words" three`}, exec)
	if err != nil {
		t.Fatal(err)
	}
	if err := check(c, time.Second); err != nil {
		t.Fatalf("exit 0: %v", err)
	}
	if !slices.Equal(gotArgv, []string{"ok", "two words", "three"}) {
		t.Fatalf("argv %q", gotArgv)
	}
	if err := check(CmdChecker(exec, []string{"fail"}), time.Second); err == nil || !strings.Contains(err.Error(), "exited with code 3") {
		t.Fatalf("exit 3: %v", err)
	}
	err = check(CmdChecker(exec, []string{"nope"}), time.Second)
	if err == nil || strings.Contains(err.Error(), "/bin/nope") {
		t.Fatalf("exec error: %v (want a failure without the driver's internals)", err)
	}
	if err := check(CmdChecker(exec, []string{"hang"}), 50*time.Millisecond); err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("hang: %v, want timed out", err)
	}
	if _, err := NewChecker(HealthCheck{Protocol: CMD, Cmd: "ok"}, nil); err == nil {
		t.Fatal("a CMD checker without Exec was built")
	}
}

// TestCheckersAt: a check of an instance's port 8080 dials where the
// driver published it, and its messages name 8080, the number the
// service's owner knows, not the published address.
func TestCheckersAt(t *testing.T) {
	var path atomic.Value
	port := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path.Store(r.URL.Path)
		if r.URL.Path == "/bad" {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	published := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	addr := func(p int) (string, error) {
		if p != 8080 {
			return "", errors.New("not published")
		}
		return published, nil
	}
	for _, c := range []HealthCheck{
		{Protocol: HTTP, Type: Readiness, Path: "/healthz", Port: 8080},
		{Protocol: TCP, Type: Readiness, Port: 8080},
	} {
		ch, err := NewCheckerAt(c, addr, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := check(ch, time.Second); err != nil {
			t.Fatalf("%s: %v", c.Protocol, err)
		}
	}
	if got := path.Load(); got != "/healthz" {
		t.Fatalf("path %v", got)
	}
	if err := check(HTTPCheckerAt(published, 8080, "/bad"), time.Second); err == nil || err.Error() != "HTTP health check on port 8080 answered 500" {
		t.Fatalf("err %v", err)
	}
	if err := check(TCPCheckerAt(published, 8080), time.Second); err != nil {
		t.Fatal(err)
	}
	// A port the driver did not publish fails the check, in words.
	for _, c := range []HealthCheck{
		{Protocol: HTTP, Type: Readiness, Path: "/", Port: 9090},
		{Protocol: TCP, Type: Readiness, Port: 9090},
	} {
		ch, _ := NewCheckerAt(c, addr, nil)
		if err := check(ch, time.Second); err == nil || !strings.Contains(err.Error(), "port 9090: the port is not reachable") {
			t.Fatalf("%s: err %v", c.Protocol, err)
		}
	}
}

// TestTCPCheckerSeesThroughForwarders: a forwarder (slirp4netns,
// docker-proxy) accepts the connection and closes it at once when
// nothing listens behind it; that is no healthy instance. A listener that
// holds the connection, or greets first, is.
func TestTCPCheckerSeesThroughForwarders(t *testing.T) {
	listen := func(handle func(net.Conn)) int {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = l.Close() })
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				go handle(c)
			}
		}()
		return l.Addr().(*net.TCPAddr).Port
	}
	closing := listen(func(c net.Conn) { _ = c.Close() })
	if err := check(TCPChecker(closing), time.Second); err == nil || !strings.Contains(err.Error(), "closed at once") {
		t.Fatalf("forwarder with nothing behind: err %v", err)
	}
	holding := listen(func(c net.Conn) { time.Sleep(time.Second); _ = c.Close() })
	if err := check(TCPChecker(holding), time.Second); err != nil {
		t.Fatalf("holding listener: %v", err)
	}
	greeting := listen(func(c net.Conn) { _, _ = c.Write([]byte("220 hello\r\n")); _ = c.Close() })
	if err := check(TCPChecker(greeting), time.Second); err != nil {
		t.Fatalf("greeting listener: %v", err)
	}
}
