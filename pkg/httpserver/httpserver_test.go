package httpserver_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pkg/httpserver"
)

// serve runs h on loopback with l and returns its address.
func serve(t *testing.T, h http.Handler, l httpserver.Limits) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httpserver.New(h, l)
	go func() { _ = srv.Serve(httpserver.Limit(lis, l)) }()
	t.Cleanup(func() { _ = srv.Close() })
	return lis.Addr().String()
}

// closedWithin reads from c until the server closes it, and reports
// whether that happened within d. Whatever the server answered before
// closing (a 408, say) is read and dropped.
func closedWithin(t *testing.T, c net.Conn, d time.Duration) bool {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// trickle writes one byte of s every interval until s is spent or a
// write fails (the server hung up).
func trickle(c net.Conn, s string, every time.Duration) {
	for i := range len(s) {
		if _, err := c.Write([]byte{s[i]}); err != nil {
			return
		}
		time.Sleep(every)
	}
}

// TestTricklingClientsAreCut: a client that sends its body (or its
// headers) a byte at a time is disconnected once the read limits pass,
// and the handler's read of the body fails instead of waiting for ever.
func TestTricklingClientsAreCut(t *testing.T) {
	bodyErr := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		bodyErr <- err
	})
	l := httpserver.Limits{ReadHeaderTimeout: 300 * time.Millisecond, ReadTimeout: 500 * time.Millisecond,
		WriteTimeout: time.Second, IdleTimeout: time.Second, MaxConnections: 8}
	addr := serve(t, h, l)

	t.Run("body", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := io.WriteString(c, "POST /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		go trickle(c, strings.Repeat("x", 1000), 50*time.Millisecond) // 50 s at this pace
		if !closedWithin(t, c, 10*time.Second) {
			t.Fatal("a client trickling its body still holds the connection after 10 s (read limit 500 ms)")
		}
		select {
		case err := <-bodyErr:
			if err == nil {
				t.Fatal("the handler read the whole trickled body")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the handler is still reading the trickled body")
		}
	})
	t.Run("headers", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		go trickle(c, "GET /v1/projects HTTP/1.1\r\nHost: x\r\nX-Slow: "+strings.Repeat("y", 1000), 50*time.Millisecond)
		if !closedWithin(t, c, 10*time.Second) {
			t.Fatal("a client trickling its headers still holds the connection after 10 s (header limit 300 ms)")
		}
	})
	t.Run("idle", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// Connected, then silent: the header limit applies from the start.
		if !closedWithin(t, c, 10*time.Second) {
			t.Fatal("a silent connection is still open after 10 s")
		}
	})
}

// TestConnectionCap: beyond MaxConnections a new connection waits, unserved,
// while the open ones keep being served; it is served as soon as one
// closes.
func TestConnectionCap(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
	l := httpserver.Limits{ReadHeaderTimeout: time.Minute, ReadTimeout: time.Minute, WriteTimeout: time.Minute,
		IdleTimeout: time.Minute, MaxConnections: 2}
	addr := serve(t, h, l)

	// Two keep-alive connections take the two slots.
	var held []net.Conn
	var readers []*bufio.Reader
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held, readers = append(held, c), append(readers, bufio.NewReader(c))
	}
	get := func(i int) {
		t.Helper()
		_ = held[i].SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(held[i], "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		res, err := http.ReadResponse(readers[i], nil)
		if err != nil {
			t.Fatalf("held connection %d: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("held connection %d: HTTP %d", i, res.StatusCode)
		}
	}
	get(0)
	get(1)

	// A third client waits.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 20 * time.Second}
	third := make(chan error, 1)
	go func() {
		res, err := client.Get("http://" + addr + "/health")
		if err == nil {
			res.Body.Close()
		}
		third <- err
	}()
	select {
	case err := <-third:
		t.Fatalf("a third connection was served over a cap of 2 (err %v)", err)
	case <-time.After(300 * time.Millisecond):
	}
	// The server stays healthy for the connections it holds.
	get(0)
	get(1)

	// One slot frees: the waiting client is served.
	_ = held[1].Close()
	select {
	case err := <-third:
		if err != nil {
			t.Fatalf("the waiting client, once a slot freed: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting client was not served after a slot freed")
	}
	get(0)
}

// TestStreamLiftsDeadlines: a handler that calls Stream writes for longer
// than the write limit and reads after the read limit.
func TestStreamLiftsDeadlines(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stream" {
			if err := httpserver.Stream(w); err != nil {
				t.Errorf("Stream: %v", err)
			}
		}
		for i := range 6 {
			if _, err := io.WriteString(w, "tick\n"); err != nil {
				return
			}
			http.NewResponseController(w).Flush()
			if i < 5 {
				time.Sleep(100 * time.Millisecond)
			}
		}
	})
	l := httpserver.Limits{ReadHeaderTimeout: time.Second, ReadTimeout: 200 * time.Millisecond,
		WriteTimeout: 200 * time.Millisecond, IdleTimeout: time.Second, MaxConnections: 4}
	addr := serve(t, h, l)
	count := func(path string) int {
		res, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return strings.Count(string(b), "tick")
	}
	if n := count("/stream"); n != 6 {
		t.Errorf("a streaming handler got %d of 6 ticks out over 500 ms with a 200 ms write limit", n)
	}
	if n := count("/plain"); n == 6 {
		t.Errorf("a plain handler wrote for 500 ms past a 200 ms write limit: the limit is not applied")
	}
}

// TestDefaults: the derived connection cap stays under the open-file
// limit and above the floor.
func TestDefaults(t *testing.T) {
	d := httpserver.DefaultLimits()
	if d.MaxConnections < httpserver.MinConnections || d.ReadTimeout <= 0 || d.WriteTimeout <= 0 || d.IdleTimeout <= 0 || d.ReadHeaderTimeout <= 0 {
		t.Fatalf("defaults %+v", d)
	}
}
