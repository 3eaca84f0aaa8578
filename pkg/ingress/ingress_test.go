package ingress_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/ingress"
)

// start serves in on a loopback listener and returns its base URL.
func start(t testing.TB, in *ingress.Ingress) string {
	t.Helper()
	srv := httptest.NewServer(in) // 127.0.0.1:0
	t.Cleanup(srv.Close)
	return srv.URL
}

func newIngress(t testing.TB, cfg ingress.Config) (*ingress.Ingress, string) {
	t.Helper()
	in, err := ingress.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return in, start(t, in)
}

// named is an instance that answers its name and the headers it got as
// JSON, with the status of ?status= if given.
func named(t testing.TB, name string) ingress.Backend {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		status := http.StatusOK
		if s := r.URL.Query().Get("status"); s != "" {
			status, _ = strconv.Atoi(s)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(echo{Name: name, Host: r.Host, Header: r.Header})
	}))
	t.Cleanup(srv.Close)
	return ingress.Backend{ID: name, Addr: srv.Listener.Addr().String()}
}

type echo struct {
	Name   string
	Host   string
	Header http.Header
}

var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

// get sends method to base with the Host header host.
func send(t testing.TB, method, base, host, path string, body io.Reader) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, base+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, data
}

func mustSet(t testing.TB, in *ingress.Ingress, routes ...ingress.Route) {
	t.Helper()
	if err := in.Set(routes); err != nil {
		t.Fatal(err)
	}
}

func route(project, service, port string, backends ...ingress.Backend) ingress.Route {
	return ingress.Route{Project: project, Service: service, Port: port, Backends: backends}
}

// envelope decodes an error answer and checks its status, reason and
// headers.
func envelope(t *testing.T, resp *http.Response, body []byte, status int, reason apierr.Reason) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d: %s", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var env apierr.Envelope
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	if env.Error.Status != status || env.Error.ID != reason || env.Error.Message == "" {
		t.Errorf("envelope %+v, want status %d id %s", env.Error, status, reason)
	}
}

func TestRoutesByHost(t *testing.T) {
	in, base := newIngress(t, ingress.Config{})
	mustSet(t, in, route("demo", "web", "p01", named(t, "web")), route("demo", "api", "p01", named(t, "api")),
		route("other", "web", "http", named(t, "other")))
	for host, want := range map[string]string{
		"p01--web--demo.localhost":       "web",
		"P01--Web--DEMO.LocalHost:8000":  "web",
		"p01--web--demo.localhost.":      "web",
		"p01--api--demo.localhost:80":    "api",
		"http--web--other.localhost":     "other",
		in.Host("demo", "api", "p01"):    "api",
		in.Host("Other", "WEB", "HTTP"):  "other",
		"p01--api--demo.localhost.:1234": "api",
	} {
		resp, body := send(t, http.MethodGet, base, host, "/", nil)
		var e echo
		if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &e) != nil || e.Name != want {
			t.Errorf("%s: %d %s, want %s", host, resp.StatusCode, body, want)
		}
	}
	for _, host := range []string{
		"p02--web--demo.localhost", "p01--web--demo.example.com", "x.p01--web--demo.localhost",
		"localhost", ".localhost", "p01--web--demo", "127.0.0.1", "p01--web--demolocalhost",
	} {
		resp, body := send(t, http.MethodGet, base, host, "/", nil)
		envelope(t, resp, body, http.StatusNotFound, apierr.ReasonRouteNotFound)
	}
}

func TestBaseDomain(t *testing.T) {
	in, base := newIngress(t, ingress.Config{BaseDomain: "Apps.Example.TEST."})
	mustSet(t, in, route("demo", "web", "p01", named(t, "web")))
	if h := in.Host("demo", "web", "p01"); h != "p01--web--demo.apps.example.test" {
		t.Errorf("Host = %q", h)
	}
	resp, body := send(t, http.MethodGet, base, "p01--web--demo.APPS.example.test:8000", "/", nil)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("%d %s", resp.StatusCode, body)
	}
	resp, body = send(t, http.MethodGet, base, "p01--web--demo.localhost", "/", nil)
	envelope(t, resp, body, http.StatusNotFound, apierr.ReasonRouteNotFound)
}

func TestNoReadyInstance(t *testing.T) {
	in, base := newIngress(t, ingress.Config{RetryAfter: 1500 * time.Millisecond})
	mustSet(t, in, route("demo", "web", "p01"))
	resp, body := send(t, http.MethodGet, base, "p01--web--demo.localhost", "/", nil)
	envelope(t, resp, body, http.StatusServiceUnavailable, apierr.ReasonUnavailable)
	if ra := resp.Header.Get("Retry-After"); ra != "2" {
		t.Errorf("Retry-After %q, want 2 (rounded up)", ra)
	}
}

func TestSetRejects(t *testing.T) {
	in, base := newIngress(t, ingress.Config{})
	good := route("demo", "web", "p01", named(t, "web"))
	mustSet(t, in, good)
	for name, routes := range map[string][]ingress.Route{
		"empty part":     {route("demo", "", "p01")},
		"dotted part":    {route("de.mo", "web", "p01")},
		"double hyphen":  {route("demo", "my--web", "p01")},
		"duplicate host": {route("demo", "web", "p01"), route("DEMO", "Web", "p01")},
		"backend w/o id": {route("demo", "web", "p01", ingress.Backend{Addr: "127.0.0.1:1"})},
		"backend w/o ad": {route("demo", "web", "p01", ingress.Backend{ID: "x"})},
	} {
		if err := in.Set(routes); err == nil {
			t.Errorf("%s: Set accepted %+v", name, routes)
		}
	}
	// The old table stays.
	if resp, body := send(t, http.MethodGet, base, "p01--web--demo.localhost", "/", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("after refused Sets: %d %s", resp.StatusCode, body)
	}
}

// TestForwardedHeaders: the instance gets the client's Host and
// X-Forwarded-* set by the ingress from the connection, whatever the
// client claimed.
func TestForwardedHeaders(t *testing.T) {
	in, base := newIngress(t, ingress.Config{})
	mustSet(t, in, route("demo", "web", "p01", named(t, "web")))
	req, _ := http.NewRequest(http.MethodGet, base+"/path?q=1", nil)
	req.Host = "p01--web--demo.localhost:8000"
	req.Header.Set("X-Forwarded-For", "203.0.113.7")
	req.Header.Set("X-Forwarded-Host", "evil.example")
	req.Header.Set("X-Forwarded-Proto", "https")
	req.Header.Set("Forwarded", "for=203.0.113.7")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e echo
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		t.Fatal(err)
	}
	if e.Host != "p01--web--demo.localhost:8000" {
		t.Errorf("Host %q", e.Host)
	}
	for k, want := range map[string]string{
		"X-Forwarded-For":   "127.0.0.1",
		"X-Forwarded-Host":  "p01--web--demo.localhost:8000",
		"X-Forwarded-Proto": "http",
		"Forwarded":         "",
	} {
		if got := strings.Join(e.Header.Values(k), ","); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
}

func TestWebSocket(t *testing.T) {
	in, base := newIngress(t, ingress.Config{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(1 << 20)
		for {
			typ, data, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, append([]byte("echo:"), data...)); err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	mustSet(t, in, route("demo", "ws", "p01", ingress.Backend{ID: "ws", Addr: srv.Listener.Addr().String()}))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/socket", &websocket.DialOptions{Host: "p01--ws--demo.localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	c.SetReadLimit(1 << 20)
	for i, msg := range []string{"hello", "world", strings.Repeat("x", 100_000)} {
		typ := websocket.MessageText
		if i == 1 {
			typ = websocket.MessageBinary
		}
		if err := c.Write(ctx, typ, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		gotTyp, got, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if gotTyp != typ || string(got) != "echo:"+msg {
			t.Errorf("got %v %.20q, want %v %.20q", gotTyp, got, typ, "echo:"+msg)
		}
	}
	if n := in.InFlight("ws"); n != 1 {
		t.Errorf("InFlight during the WebSocket = %d, want 1", n)
	}
	_ = c.Close(websocket.StatusNormalClosure, "")
	waitIdle(t, in, "ws")
}

func waitIdle(t *testing.T, in *ingress.Ingress, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := in.WaitIdle(ctx, id); err != nil {
		t.Fatalf("WaitIdle(%s): %v (InFlight %d)", id, err, in.InFlight(id))
	}
}

// TestStreaming: each chunk the instance flushes reaches the client before
// the instance writes the next, and a response that streams far longer
// than the response-header timeout is not cut. The ReverseProxy flushes
// server-sent events and responses without a length on its own; a
// response of known length (a download) streams only because of
// FlushInterval -1.
func TestStreaming(t *testing.T) {
	for name, length := range map[string]bool{"event stream": false, "known length": true} {
		t.Run(name, func(t *testing.T) {
			in, base := newIngress(t, ingress.Config{ResponseHeaderTimeout: 200 * time.Millisecond})
			next, stop := make(chan struct{}), make(chan struct{})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if length {
					w.Header().Set("Content-Type", "text/plain")
					w.Header().Set("Content-Length", strconv.Itoa(3*len("data: 0\n\n")))
				} else {
					w.Header().Set("Content-Type", "text/event-stream")
				}
				for i := range 3 {
					fmt.Fprintf(w, "data: %d\n\n", i)
					w.(http.Flusher).Flush()
					select {
					case <-next:
					case <-stop:
						return
					}
				}
			}))
			t.Cleanup(srv.Close)
			t.Cleanup(func() { close(stop) }) // runs first: a failed test does not wait on the handler
			mustSet(t, in, route("demo", "sse", "p01", ingress.Backend{ID: "sse", Addr: srv.Listener.Addr().String()}))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/events", nil)
			req.Host = "p01--sse--demo.localhost"
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			rd := bufio.NewReader(resp.Body)
			for i := range 3 {
				line := make(chan string, 1)
				go func() {
					l, _ := rd.ReadString('\n')
					_, _ = rd.ReadString('\n')
					line <- l
				}()
				select {
				case got := <-line:
					if want := fmt.Sprintf("data: %d\n", i); got != want {
						t.Fatalf("chunk %d: %q, want %q", i, got, want)
					}
				case <-ctx.Done():
					// Only after this read may the instance write the
					// next chunk: the proxy held this one back.
					t.Fatalf("chunk %d did not arrive before the next was written", i)
				}
				time.Sleep(300 * time.Millisecond) // longer than ResponseHeaderTimeout
				next <- struct{}{}
			}
			if rest, err := io.ReadAll(rd); err != nil || len(rest) != 0 {
				t.Errorf("after the stream: %q, %v", rest, err)
			}
		})
	}
}

// TestRequestBodyStreams: the instance reads the start of a request body
// while the client is still writing it.
func TestRequestBodyStreams(t *testing.T) {
	in, base := newIngress(t, ingress.Config{})
	first := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 5)
		if _, err := io.ReadFull(r.Body, buf); err != nil {
			return
		}
		first <- string(buf)
		rest, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s%s", buf, rest)
	}))
	t.Cleanup(srv.Close)
	mustSet(t, in, route("demo", "up", "p01", ingress.Backend{ID: "up", Addr: srv.Listener.Addr().String()}))
	pr, pw := io.Pipe()
	done := make(chan []byte, 1)
	go func() {
		_, body := send(t, http.MethodPost, base, "p01--up--demo.localhost", "/", pr)
		done <- body
	}()
	if _, err := pw.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-first:
		if got != "hello" {
			t.Errorf("first part %q", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the instance did not get the body's start before its end")
	}
	_, _ = pw.Write([]byte(" world"))
	_ = pw.Close()
	if got := string(<-done); got != "hello world" {
		t.Errorf("echo %q", got)
	}
}

func TestLoadSpread(t *testing.T) {
	in, base := newIngress(t, ingress.Config{})
	mustSet(t, in, route("demo", "web", "p01", named(t, "a"), named(t, "b"), named(t, "c")))
	counts := map[string]int{}
	for range 300 {
		_, body := send(t, http.MethodGet, base, "p01--web--demo.localhost", "/", nil)
		var e echo
		if err := json.Unmarshal(body, &e); err != nil {
			t.Fatal(err)
		}
		counts[e.Name]++
	}
	for _, name := range []string{"a", "b", "c"} {
		if counts[name] < 90 || counts[name] > 110 {
			t.Errorf("spread %v, want about 100 each", counts)
			break
		}
	}
}

// TestLeastOutstanding: an instance busy with a slow request gets no new
// ones while another is idle.
func TestLeastOutstanding(t *testing.T) {
	in, base := newIngress(t, ingress.Config{})
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		fmt.Fprint(w, "slow")
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) })
	mustSet(t, in, route("demo", "web", "p01", ingress.Backend{ID: "slow", Addr: slow.Listener.Addr().String()}))
	go func() {
		req, _ := http.NewRequest(http.MethodGet, base, nil)
		req.Host = "p01--web--demo.localhost"
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	waitFor(t, func() bool { return in.InFlight("slow") == 1 })
	mustSet(t, in, route("demo", "web", "p01", ingress.Backend{ID: "slow", Addr: slow.Listener.Addr().String()}, named(t, "fast")))
	for range 10 {
		_, body := send(t, http.MethodGet, base, "p01--web--demo.localhost", "/", nil)
		var e echo
		if err := json.Unmarshal(body, &e); err != nil || e.Name != "fast" {
			t.Fatalf("%s: went to the busy instance", body)
		}
	}
	if n := in.InFlight("slow"); n != 1 {
		t.Errorf("InFlight(slow) = %d, want 1: the kept backend lost its count", n)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSetUnderLoad: requests sent while the table swaps between sets of
// live instances all succeed.
func TestSetUnderLoad(t *testing.T) {
	in, base := newIngress(t, ingress.Config{})
	a, b, c := named(t, "a"), named(t, "b"), named(t, "c")
	sets := [][]ingress.Backend{{a, b}, {c}, {b, c}, {a}}
	mustSet(t, in, route("demo", "web", "p01", sets[0]...))
	stop := make(chan struct{})
	var sent, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest(http.MethodGet, base, nil)
				req.Host = "p01--web--demo.localhost"
				resp, err := client.Do(req)
				sent.Add(1)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
			}
		})
	}
	for i := range 400 {
		mustSet(t, in, route("demo", "web", "p01", sets[i%len(sets)]...))
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if failed.Load() != 0 || sent.Load() < 100 {
		t.Errorf("%d of %d requests failed (first: %v)", failed.Load(), sent.Load(), firstErr.Load())
	}
	t.Logf("%d requests over 400 swaps", sent.Load())
}

// TestDrain: a backend removed from the table gets no new request, and the
// one it is serving completes; InFlight then reaches 0.
func TestDrain(t *testing.T) {
	in, base := newIngress(t, ingress.Config{})
	release := make(chan struct{})
	old := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		fmt.Fprint(w, "old done")
	}))
	t.Cleanup(old.Close)
	mustSet(t, in, route("demo", "web", "p01", ingress.Backend{ID: "old", Addr: old.Listener.Addr().String()}))
	done := make(chan string, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, base, nil)
		req.Host = "p01--web--demo.localhost"
		resp, err := client.Do(req)
		if err != nil {
			done <- err.Error()
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		done <- fmt.Sprintf("%d %s", resp.StatusCode, body)
	}()
	waitFor(t, func() bool { return in.InFlight("old") == 1 })
	mustSet(t, in, route("demo", "web", "p01", named(t, "new")))
	for range 5 {
		_, body := send(t, http.MethodGet, base, "p01--web--demo.localhost", "/", nil)
		var e echo
		if err := json.Unmarshal(body, &e); err != nil || e.Name != "new" {
			t.Fatalf("%s: a request went to the removed backend", body)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := in.WaitIdle(ctx, "old"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitIdle with a request in flight = %v", err)
	}
	if n := in.InFlight("old"); n != 1 {
		t.Errorf("InFlight(old) after removal = %d, want 1", n)
	}
	close(release)
	if got := <-done; got != "200 old done" {
		t.Errorf("in-flight request on the removed backend: %s", got)
	}
	waitIdle(t, in, "old")
	if n := in.InFlight("new"); n != 0 {
		t.Errorf("InFlight(new) = %d", n)
	}
}

// deadAddr is a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestDeadBackend(t *testing.T) {
	in, base := newIngress(t, ingress.Config{})
	dead := ingress.Backend{ID: "dead", Addr: deadAddr(t)}
	host := "p01--web--demo.localhost"

	mustSet(t, in, route("demo", "web", "p01", dead))
	resp, body := send(t, http.MethodGet, base, host, "/", nil)
	envelope(t, resp, body, http.StatusBadGateway, apierr.HTTPStatusReason(http.StatusBadGateway))

	// With a live instance beside it, every GET and HEAD succeeds: one
	// that picked the dead instance is retried on the live one.
	mustSet(t, in, route("demo", "web", "p01", dead, named(t, "live")))
	for i := range 10 {
		method := http.MethodGet
		if i%2 == 1 {
			method = http.MethodHead
		}
		if resp, body := send(t, method, base, host, "/", nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("%s %d: %d %s", method, i, resp.StatusCode, body)
		}
	}
	// A POST with a body is not repeated: those that picked the dead
	// instance get 502.
	var bad int
	for range 10 {
		resp, body := send(t, http.MethodPost, base, host, "/", strings.NewReader("payload"))
		switch resp.StatusCode {
		case http.StatusOK:
		case http.StatusBadGateway:
			envelope(t, resp, body, http.StatusBadGateway, apierr.HTTPStatusReason(http.StatusBadGateway))
			bad++
		default:
			t.Fatalf("POST: %d %s", resp.StatusCode, body)
		}
	}
	if bad == 0 || bad == 10 {
		t.Errorf("%d of 10 POSTs got 502; want those that picked the dead instance only", bad)
	}
	if in.InFlight("dead") != 0 || in.InFlight("live") != 0 {
		t.Errorf("InFlight dead %d live %d, want 0", in.InFlight("dead"), in.InFlight("live"))
	}
}

func TestResponseHeaderTimeout(t *testing.T) {
	in, base := newIngress(t, ingress.Config{ResponseHeaderTimeout: 100 * time.Millisecond})
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	mustSet(t, in, route("demo", "web", "p01", ingress.Backend{ID: "mute", Addr: srv.Listener.Addr().String()}))
	resp, body := send(t, http.MethodGet, base, "p01--web--demo.localhost", "/", nil)
	envelope(t, resp, body, http.StatusGatewayTimeout, apierr.HTTPStatusReason(http.StatusGatewayTimeout))
}

func TestCounters(t *testing.T) {
	reg := prometheus.NewRegistry()
	in, base := newIngress(t, ingress.Config{Registerer: reg})
	mustSet(t, in, route("demo", "web", "p01", named(t, "web")), route("demo", "empty", "p01"))
	host := "p01--web--demo.localhost"
	for _, status := range []string{"200", "200", "204", "404", "429", "500", "503"} {
		send(t, http.MethodGet, base, host, "/?status="+status, nil)
	}
	send(t, http.MethodGet, base, "p01--empty--demo.localhost", "/", nil) // 503 from the ingress
	send(t, http.MethodGet, base, "nope--web--demo.localhost", "/", nil)  // 404, no route: not counted
	want := map[string]ingress.Stats{
		"web":   {Requests: 7, HTTP4xx: 2, HTTP5xx: 2},
		"empty": {Requests: 1, HTTP5xx: 1},
	}
	for service, w := range want {
		if got := in.Stats("DEMO", service, "p01"); got != w {
			t.Errorf("Stats(%s) = %+v, want %+v", service, got, w)
		}
	}
	// Counters survive the route leaving the table.
	mustSet(t, in)
	if got := in.Stats("demo", "web", "p01"); got != want["web"] {
		t.Errorf("Stats after removal = %+v", got)
	}

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			got[fmt.Sprintf("%s{%s/%s/%s}", f.GetName(), l["project"], l["service"], l["port"])] = m.GetCounter().GetValue()
		}
	}
	for k, v := range map[string]float64{
		"slipway_ingress_requests_total{demo/web/p01}":             7,
		"slipway_ingress_http_4xx_responses_total{demo/web/p01}":   2,
		"slipway_ingress_http_5xx_responses_total{demo/web/p01}":   2,
		"slipway_ingress_requests_total{demo/empty/p01}":           1,
		"slipway_ingress_http_5xx_responses_total{demo/empty/p01}": 1,
	} {
		if got[k] != v {
			t.Errorf("%s = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
	// Pre-connecting's outcomes are exported too (all 0 here: the
	// instance keeps its connections alive).
	outcomes := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "slipway_ingress_preconnect_spares_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, p := range m.GetLabel() {
				if p.GetName() == "outcome" {
					outcomes[p.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	if len(outcomes) != 4 || outcomes["used"]+outcomes["missed"]+outcomes["expired"]+outcomes["dead"] != 0 {
		t.Errorf("slipway_ingress_preconnect_spares_total by outcome: %v, want used, missed, expired and dead, all 0", outcomes)
	}
}

// TestProxyReusesCopyBuffers: proxying a small response allocates far
// less than the 32 KiB copy buffer httputil.ReverseProxy makes per
// request without a BufferPool (it was 65% of the bytes allocated per
// proxied request, by BenchmarkIngress's memory profile).
func TestProxyReusesCopyBuffers(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	in, err := ingress.New(ingress.Config{})
	if err != nil {
		t.Fatal(err)
	}
	mustSet(t, in, route("demo", "web", "p01", ingress.Backend{ID: "web", Addr: srv.Listener.Addr().String()}))
	serve := func() {
		req := httptest.NewRequest(http.MethodGet, "http://p01--web--demo.localhost/", nil)
		rec := httptest.NewRecorder()
		in.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK || rec.Body.String() != "ok" {
			t.Fatalf("HTTP %d %q", rec.Code, rec.Body)
		}
	}
	for range 50 {
		serve() // warm the connection and the pool
	}
	const n = 500
	var before, after goruntime.MemStats
	goruntime.GC()
	goruntime.ReadMemStats(&before)
	for range n {
		serve()
	}
	goruntime.ReadMemStats(&after)
	// Both ends of the loopback connection are in this process: what the
	// backend and the transport allocate counts too, ~10 KiB a request.
	if per := (after.TotalAlloc - before.TotalAlloc) / n; per > 24<<10 {
		t.Errorf("%d bytes allocated per proxied request, want under 24 KiB (no copy buffer per request)", per)
	}
}
