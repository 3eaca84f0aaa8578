//go:build linux

package ingress_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pkg/ingress"
)

// connBackend is an instance on 127.0.0.1 that counts the connections it
// accepts and has open, and the requests it serves, among them those
// that came first on a connection accepted before the client sent the
// request (which only a spare connection can be).
type connBackend struct {
	ingress.Backend
	srv                               *http.Server
	accepts, open, requests, preconns atomic.Int64
}

type acceptedKey struct{}

// connInfo is what the backend knows of one of its connections.
type connInfo struct {
	accepted time.Time
	served   atomic.Int64
}

// sentHeader carries the time the test's client sent a request.
const sentHeader = "X-Test-Sent"

// newConnBackend starts a connBackend. closeEach makes it answer
// "Connection: close" (as busybox httpd does); idle > 0 makes it close a
// connection that brings no request within idle (a header read timeout).
func newConnBackend(t *testing.T, name string, closeEach bool, idle time.Duration) *connBackend {
	t.Helper()
	b := &connBackend{}
	b.srv = &http.Server{
		ReadHeaderTimeout: idle,
		ConnContext: func(ctx context.Context, _ net.Conn) context.Context {
			return context.WithValue(ctx, acceptedKey{}, &connInfo{accepted: time.Now()})
		},
		ConnState: func(_ net.Conn, s http.ConnState) {
			switch s {
			case http.StateNew:
				b.accepts.Add(1)
				b.open.Add(1)
			case http.StateClosed, http.StateHijacked:
				b.open.Add(-1)
			}
		},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b.requests.Add(1)
			ci := r.Context().Value(acceptedKey{}).(*connInfo)
			if ns, err := strconv.ParseInt(r.Header.Get(sentHeader), 10, 64); err == nil &&
				ci.served.Add(1) == 1 && ci.accepted.Before(time.Unix(0, ns)) {
				b.preconns.Add(1)
			}
			if closeEach {
				w.Header().Set("Connection", "close")
			}
			_, _ = w.Write([]byte(name))
		}),
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = b.srv.Serve(lis) }()
	t.Cleanup(func() { _ = b.srv.Close() })
	b.Backend = ingress.Backend{ID: name, Addr: lis.Addr().String()}
	return b
}

// sendStamped sends GET / to host through the ingress at base, stamped
// with the time it is sent, and fails the test on anything but a 200.
func sendStamped(t *testing.T, base, host string) {
	t.Helper()
	if err := trySendStamped(base, host); err != nil {
		t.Fatal(err)
	}
}

func trySendStamped(base, host string) error {
	req, err := http.NewRequest(http.MethodGet, base+"/", nil)
	if err != nil {
		return err
	}
	req.Host = host
	req.Header.Set(sentHeader, strconv.FormatInt(time.Now().UnixNano(), 10))
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

const churnHost = "p01--web--demo.localhost"

// TestPreconnectClosingBackend: requests to an instance that closes every
// connection are served on connections opened before they were sent,
// sequential or concurrent, and the spares stay within the bound.
func TestPreconnectClosingBackend(t *testing.T) {
	be := newConnBackend(t, "web", true, 0)
	in, base := newIngress(t, ingress.Config{})
	mustSet(t, in, route("demo", "web", "p01", be.Backend))

	// Sequential, with a gap like the time a client takes between
	// requests: the spare opened after one response is ready for the
	// next request.
	const n = 200
	for range n {
		sendStamped(t, base, churnHost)
		time.Sleep(time.Millisecond)
	}
	if pre := be.preconns.Load(); pre < n*9/10 {
		t.Errorf("%d of %d sequential requests came on a pre-opened connection, want ≥ 90%%", pre, n)
	}
	if st := in.SpareStats(); st.Used < n*9/10 || st.Used+st.Missed > n || st.Dead != 0 {
		t.Errorf("spare stats %+v after %d sequential requests: want ≥ 90%% used, none dead", st, n)
	}
	// Extra connections: the spares, at most the default 4 at a time.
	if extra := be.accepts.Load() - be.requests.Load(); extra < 1 || extra > ingress.DefaultPreconnect {
		t.Errorf("%d connections for %d requests: %d spares, want 1 to %d", be.accepts.Load(), be.requests.Load(), extra, ingress.DefaultPreconnect)
	}

	// Concurrent: four clients.
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	preBefore, reqBefore := be.preconns.Load(), be.requests.Load()
	for range 4 {
		wg.Go(func() {
			for range n / 4 {
				if err := trySendStamped(base, churnHost); err != nil {
					errs <- err
					return
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if pre, reqs := be.preconns.Load()-preBefore, be.requests.Load()-reqBefore; pre < reqs*3/4 {
		t.Errorf("%d of %d concurrent requests came on a pre-opened connection, want ≥ 75%%", pre, reqs)
	}
	if extra := be.accepts.Load() - be.requests.Load(); extra > ingress.DefaultPreconnect {
		t.Errorf("%d spares, want at most %d", extra, ingress.DefaultPreconnect)
	}
}

// TestPreconnectOff: Preconnect < 0 opens a connection per request, on
// demand.
func TestPreconnectOff(t *testing.T) {
	be := newConnBackend(t, "web", true, 0)
	in, base := newIngress(t, ingress.Config{Preconnect: -1})
	mustSet(t, in, route("demo", "web", "p01", be.Backend))
	for range 50 {
		sendStamped(t, base, churnHost)
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	if pre, acc := be.preconns.Load(), be.accepts.Load(); pre != 0 || acc != 50 {
		t.Errorf("%d pre-opened connections, %d accepts; want 0 and 50", pre, acc)
	}
}

// TestPreconnectKeepAliveBackend: an instance that keeps connections
// alive gets no connection beyond those the requests use, sequential or
// concurrent.
func TestPreconnectKeepAliveBackend(t *testing.T) {
	be := newConnBackend(t, "web", false, 0)
	in, base := newIngress(t, ingress.Config{SpareMaxAge: 100 * time.Millisecond})
	mustSet(t, in, route("demo", "web", "p01", be.Backend))
	for range 100 {
		sendStamped(t, base, churnHost)
	}
	if acc := be.accepts.Load(); acc != 1 {
		t.Errorf("%d connections for 100 sequential requests, want 1", acc)
	}
	for range 20 {
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				if err := trySendStamped(base, churnHost); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
	time.Sleep(300 * time.Millisecond) // three spare lives
	// Every connection opened is still open, kept alive for reuse: none
	// was a spare that expired.
	if acc, open := be.accepts.Load(), be.open.Load(); acc != open {
		t.Errorf("%d connections opened, %d of them closed, want none closed", acc, acc-open)
	}
	// (Counting requests that came first on a connection opened before
	// them says nothing here: the transport keeps a connection it dialed
	// for a request that then found an idle one.)
	if st := in.SpareStats(); st != (ingress.SpareStats{}) {
		t.Errorf("spare stats %+v for a keep-alive instance, want all zero", st)
	}
}

// TestPreconnectNeverUsesClosedSpare: an instance that closes
// connections that bring no request after 50 ms, with requests spaced
// around that: a spare it closed is never sent a request (which would
// fail, as the transport does not retry on a fresh connection).
func TestPreconnectNeverUsesClosedSpare(t *testing.T) {
	be := newConnBackend(t, "web", true, 50*time.Millisecond)
	in, base := newIngress(t, ingress.Config{})
	mustSet(t, in, route("demo", "web", "p01", be.Backend))
	gaps := []time.Duration{time.Millisecond, 70 * time.Millisecond, 2 * time.Millisecond, 55 * time.Millisecond, 90 * time.Millisecond}
	for i := range 120 {
		if err := trySendStamped(base, churnHost); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		time.Sleep(gaps[i%len(gaps)])
	}
	// Spares were used (the short gaps), so the check was exercised on
	// live and dead ones alike.
	if be.preconns.Load() == 0 {
		t.Error("no request came on a pre-opened connection")
	}
}

// waitOpen waits until be has no open connection (closed true) or some.
func waitOpen(t *testing.T, be *connBackend, closed bool, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for (be.open.Load() == 0) != closed {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections open after %v", be.open.Load(), within)
		}
		time.Sleep(time.Millisecond)
	}
}

// churn sends requests until be holds a spare: a connection that brought
// no request, still open.
func churn(t *testing.T, be *connBackend, base string) {
	t.Helper()
	unrequested := func() int64 { return be.accepts.Load() - be.requests.Load() }
	before := unrequested()
	for range 5 {
		sendStamped(t, base, churnHost)
		time.Sleep(time.Millisecond)
	}
	deadline := time.Now().Add(time.Second)
	for unrequested() <= before || be.open.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no spare: %d accepts, %d requests, %d open", be.accepts.Load(), be.requests.Load(), be.open.Load())
		}
		time.Sleep(time.Millisecond)
	}
}

// TestPreconnectSparesClosedOnSet: an instance taken out of the table has
// its spares closed at once, so its graceful stop does not wait for them
// (Go's Shutdown waits 5 s for a connection that sent no request).
func TestPreconnectSparesClosedOnSet(t *testing.T) {
	old := newConnBackend(t, "old", true, 0)
	in, base := newIngress(t, ingress.Config{SpareMaxAge: time.Minute})
	mustSet(t, in, route("demo", "web", "p01", old.Backend))
	churn(t, old, base)

	mustSet(t, in, route("demo", "web", "p01", named(t, "new")))
	waitOpen(t, old, true, 100*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := old.srv.Shutdown(ctx); err != nil {
		t.Errorf("graceful stop of the removed instance: %v", err)
	}
	// The ingress makes no more for it.
	time.Sleep(50 * time.Millisecond)
	if acc, reqs := old.accepts.Load(), old.requests.Load(); acc > reqs+ingress.DefaultPreconnect {
		t.Errorf("%d accepts for %d requests", acc, reqs)
	}
}

// TestPreconnectSparesOfInstance: spares opened to one instance are not
// handed to another given the same address (a port reused while the
// first is still stopping): they are closed when the instance changes.
func TestPreconnectSparesOfInstance(t *testing.T) {
	be := newConnBackend(t, "web", true, 0)
	in, base := newIngress(t, ingress.Config{SpareMaxAge: time.Minute})
	mustSet(t, in, route("demo", "web", "p01", be.Backend))
	churn(t, be, base)
	mustSet(t, in, route("demo", "web", "p01", ingress.Backend{ID: "web-2", Addr: be.Addr}))
	waitOpen(t, be, true, 100*time.Millisecond)
}

// TestPreconnectSparesClosedOnClose: Ingress.Close closes every spare.
func TestPreconnectSparesClosedOnClose(t *testing.T) {
	be := newConnBackend(t, "web", true, 0)
	in, base := newIngress(t, ingress.Config{SpareMaxAge: time.Minute})
	mustSet(t, in, route("demo", "web", "p01", be.Backend))
	churn(t, be, base)
	if err := in.Close(); err != nil {
		t.Fatal(err)
	}
	waitOpen(t, be, true, 100*time.Millisecond)
	// Requests still route, with no spares.
	sendStamped(t, base, churnHost)
	sendStamped(t, base, churnHost)
	time.Sleep(50 * time.Millisecond)
	if n := be.open.Load(); n != 0 {
		t.Errorf("%d connections open after Close", n)
	}
}

// TestPreconnectSparesExpire: spares unused for SpareMaxAge are closed,
// and none are made again until requests come.
func TestPreconnectSparesExpire(t *testing.T) {
	be := newConnBackend(t, "web", true, 0)
	in, base := newIngress(t, ingress.Config{SpareMaxAge: 100 * time.Millisecond})
	mustSet(t, in, route("demo", "web", "p01", be.Backend))
	churn(t, be, base)
	waitOpen(t, be, true, 200*time.Millisecond)
	acc := be.accepts.Load()
	time.Sleep(500 * time.Millisecond) // five lives
	if n, a := be.open.Load(), be.accepts.Load(); n != 0 || a != acc {
		t.Errorf("without traffic: %d connections open, %d new ones; want none", n, a-acc)
	}
	// Traffic again: spares again.
	churn(t, be, base)
}

// serialBackend is an instance that serves one connection at a time and
// closes it after the response, as Python's http.server.HTTPServer or a
// single sync gunicorn worker does: while it reads a connection that
// brings no request, every other connection waits in its accept queue.
func serialBackend(t *testing.T) ingress.Backend {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lis.Close() })
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 4096)
			n := 0
			for n < len(buf) {
				m, err := c.Read(buf[n:])
				n += m
				if err != nil || strings.Contains(string(buf[:n]), "\r\n\r\n") {
					break
				}
			}
			if strings.Contains(string(buf[:n]), "\r\n\r\n") {
				_, _ = c.Write([]byte("HTTP/1.0 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nserial"))
			}
			_ = c.Close()
		}
	}()
	return ingress.Backend{ID: "serial", Addr: lis.Addr().String()}
}

// TestPreconnectSerialBackend: spares do not hold up a server that serves
// one connection at a time for long. Its other clients (Slipway's own
// health probes, other services) wait behind a spare at most its short
// age, and a burst of requests through the ingress is not queued behind
// spares opened for it.
func TestPreconnectSerialBackend(t *testing.T) {
	be := serialBackend(t)
	in, base := newIngress(t, ingress.Config{})
	mustSet(t, in, route("demo", "web", "p01", be))
	direct := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	var worstDirect, worstBurst time.Duration
	for round := range 6 {
		for range 5 {
			sendStamped(t, base, churnHost)
			time.Sleep(time.Millisecond)
		}
		// A probe straight to the instance, right after the ingress's
		// traffic: a spare may be ahead of it in the accept queue.
		start := time.Now()
		resp, err := direct.Get("http://" + be.Addr + "/")
		if err != nil {
			t.Fatalf("round %d: direct: %v", round, err)
		}
		resp.Body.Close()
		worstDirect = max(worstDirect, time.Since(start))

		// A burst through the ingress.
		start = time.Now()
		var wg sync.WaitGroup
		for range 6 {
			wg.Go(func() {
				if err := trySendStamped(base, churnHost); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		worstBurst = max(worstBurst, time.Since(start))
		time.Sleep(time.Duration(150+100*round) * time.Millisecond)
	}
	t.Logf("worst direct request %v, worst burst of 6 through the ingress %v", worstDirect, worstBurst)
	// The bound is the spare age (DefaultSpareMaxAge, 100 ms) plus
	// scheduling slack; with spares kept 1 s, and a burst dialling past
	// the spares under way, both were ~1 s.
	if limit := 350 * time.Millisecond; worstDirect > limit || worstBurst > limit {
		t.Errorf("worst direct request %v, worst burst of 6 through the ingress %v; want both under %v", worstDirect, worstBurst, limit)
	}
}
