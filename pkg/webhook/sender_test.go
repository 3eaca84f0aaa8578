package webhook

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/slipwayhq/slipway/pkg/netguard"
)

// receiver is a real HTTP server on 127.0.0.1 that counts the connections
// it accepts and keeps the last request.
type receiver struct {
	*httptest.Server
	conns atomic.Int64
	mu    sync.Mutex
	hdr   http.Header
	body  []byte
}

func newReceiver(t *testing.T, h http.HandlerFunc) *receiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{}
	r.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.hdr, r.body = req.Header.Clone(), b
		r.mu.Unlock()
		h(w, req)
	}))
	r.Listener = &countingListener{Listener: ln, n: &r.conns}
	r.Start()
	t.Cleanup(r.Close)
	return r
}

type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// loopback is the rule that lets tests reach their receivers.
func loopback(t *testing.T) *netguard.Rule {
	t.Helper()
	r, err := netguard.Parse([]string{"127.0.0.1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestSendSuccess(t *testing.T) {
	rcv := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	s := NewSender(SenderOptions{Rule: loopback(t)})
	key := SigningKey("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	body := []byte(`{"event":"build:success","data":{}}`)
	extra := http.Header{}
	extra.Set("X-Northflank-Notification-Event-Id", "evt_1")
	extra.Set("Content-Type", "text/plain") // ours wins
	now := time.Now()
	res := s.Send(context.Background(), Request{URL: rcv.URL + "/hook", ID: "evt_1", Time: now, Body: body, Header: extra, SigningKey: key})
	if res.Err != nil || res.StatusCode != http.StatusNoContent || res.Retry || res.Latency <= 0 {
		t.Fatalf("Send = %+v, want 204, no error, no retry, a latency", res)
	}
	rcv.mu.Lock()
	h, got := rcv.hdr, rcv.body
	rcv.mu.Unlock()
	if string(got) != string(body) {
		t.Fatalf("the receiver got %q", got)
	}
	for k, want := range map[string]string{
		"Content-Type": "application/json", "User-Agent": "Slipway-Webhooks/1",
		"X-Northflank-Notification-Event-Id": "evt_1", HeaderID: "evt_1",
	} {
		if h.Get(k) != want {
			t.Errorf("header %s = %q, want %q", k, h.Get(k), want)
		}
	}
	lib, err := standardwebhooks.NewWebhookRaw(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := lib.Verify(got, h); err != nil {
		t.Fatalf("the Standard Webhooks library rejects the delivery: %v", err)
	}

	// Without a key, no signature.
	if res := s.Send(context.Background(), Request{URL: rcv.URL, ID: "evt_2", Time: now, Body: body}); res.Err != nil {
		t.Fatal(res.Err)
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if rcv.hdr.Get(HeaderSignature) != "" || rcv.hdr.Get(HeaderID) != "evt_2" {
		t.Fatalf("unsigned delivery headers: %v", rcv.hdr)
	}
}

func TestSendServerErrorIsRetried(t *testing.T) {
	for _, code := range []int{500, 503, 429, 408, 404} {
		rcv := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) })
		res := NewSender(SenderOptions{Rule: loopback(t)}).Send(context.Background(), Request{URL: rcv.URL, ID: "e", Time: time.Now(), Body: []byte("{}")})
		if res.StatusCode != code || res.Err == nil || !res.Retry {
			t.Fatalf("HTTP %d: Send = %+v, want an error to retry", code, res)
		}
		if !strings.Contains(res.Err.Error(), "HTTP "+strconv.Itoa(code)) || strings.Contains(res.Err.Error(), "127.0.0.1") {
			t.Fatalf("HTTP %d: error %q", code, res.Err)
		}
	}
}

func TestSendTimesOutWithinTheTimeout(t *testing.T) {
	rcv := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	s := NewSender(SenderOptions{Rule: loopback(t), Timeout: 300 * time.Millisecond})
	start := time.Now()
	res := s.Send(context.Background(), Request{URL: rcv.URL, ID: "e", Time: time.Now(), Body: []byte("{}")})
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Send took %s with a 300ms timeout", took)
	}
	if res.Err == nil || !res.Retry || res.StatusCode != 0 || !strings.Contains(res.Err.Error(), "did not answer within 300ms") {
		t.Fatalf("Send = %+v, want a timeout to retry", res)
	}
}

// A receiver that answers 200 and then streams forever: the Sender reads
// what its limit allows and is done, long before its timeout.
func TestSendReadsABoundedResponse(t *testing.T) {
	var written atomic.Int64
	rcv := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		chunk := make([]byte, 32<<10)
		for r.Context().Err() == nil {
			n, err := w.Write(chunk)
			written.Add(int64(n))
			if err != nil {
				return
			}
		}
	})
	s := NewSender(SenderOptions{Rule: loopback(t), Timeout: 10 * time.Second, MaxResponseBytes: 1 << 10})
	start := time.Now()
	res := s.Send(context.Background(), Request{URL: rcv.URL, ID: "e", Time: time.Now(), Body: []byte("{}")})
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("Send took %s: it read the endless body", took)
	}
	if res.Err != nil || res.StatusCode != 200 {
		t.Fatalf("Send = %+v, want 200", res)
	}
	if n := written.Load(); n > 64<<20 {
		t.Fatalf("the receiver wrote %d bytes before the Sender let go", n)
	}
}

func TestSendDoesNotFollowRedirects(t *testing.T) {
	target := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) {})
	rcv := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL, http.StatusTemporaryRedirect)
	})
	res := NewSender(SenderOptions{Rule: loopback(t)}).Send(context.Background(), Request{URL: rcv.URL, ID: "e", Time: time.Now(), Body: []byte("{}")})
	if res.StatusCode != http.StatusTemporaryRedirect || res.Err == nil || !strings.Contains(res.Err.Error(), "redirect") {
		t.Fatalf("Send = %+v, want a failed 307", res)
	}
	if n := target.conns.Load(); n != 0 {
		t.Fatalf("the redirect was followed (%d connections)", n)
	}
}

func TestSendRefusesAddressesTheRuleDoesNotAllow(t *testing.T) {
	rcv := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) {})
	port := rcv.Listener.Addr().(*net.TCPAddr).Port
	denied, err := netguard.Parse([]string{"127.0.0.1"}, []string{"localhost"})
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		rule *netguard.Rule
		url  string
	}{
		"loopback, default rule":         {nil, rcv.URL},
		"localhost, default rule":        {nil, "http://localhost:" + strconv.Itoa(port)},
		"denied name of allowed address": {denied, "http://localhost:" + strconv.Itoa(port)},
	} {
		res := NewSender(SenderOptions{Rule: tc.rule}).Send(context.Background(), Request{URL: tc.url, ID: "e", Time: time.Now(), Body: []byte("{}")})
		if res.Err == nil || res.Retry || res.StatusCode != 0 || !strings.Contains(res.Err.Error(), "does not allow") {
			t.Fatalf("%s: Send = %+v, want a refusal not to retry", name, res)
		}
		if strings.Contains(res.Err.Error(), "127.0.0.1") {
			t.Fatalf("%s: the error names the address: %v", name, res.Err)
		}
	}
	if n := rcv.conns.Load(); n != 0 {
		t.Fatalf("refused sends connected %d times", n)
	}
}

func TestSendInvalidURLsAndUnreachableReceivers(t *testing.T) {
	s := NewSender(SenderOptions{Rule: loopback(t), Timeout: 2 * time.Second})
	for _, u := range []string{"ftp://127.0.0.1/x", "http://", "::not a url", "http://user:pw@127.0.0.1/"} {
		if res := s.Send(context.Background(), Request{URL: u, ID: "e", Time: time.Now()}); res.Err == nil || res.Retry {
			t.Errorf("%q: Send = %+v, want an invalid URL not to retry", u, res)
		}
	}
	// A closed port on an allowed address: a network error, worth retrying.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	res := s.Send(context.Background(), Request{URL: "http://" + addr + "/", ID: "e", Time: time.Now()})
	if res.Err == nil || !res.Retry || strings.Contains(res.Err.Error(), "127.0.0.1") {
		t.Fatalf("closed port: Send = %+v, want a network error to retry, naming no address", res)
	}
}

func TestBackoff(t *testing.T) {
	base, max := time.Second, time.Minute
	for attempt, d := range map[int]time.Duration{1: 1, 2: 2, 3: 4, 4: 8, 6: 32, 7: 60, 50: 60, 1 << 30: 60} {
		d *= time.Second
		seen := map[time.Duration]bool{}
		for range 200 {
			got := Backoff(attempt, base, max)
			if got < d/2 || got > d {
				t.Fatalf("Backoff(%d) = %s, want within [%s, %s]", attempt, got, d/2, d)
			}
			seen[got] = true
		}
		if len(seen) < 2 {
			t.Fatalf("Backoff(%d) has no jitter: %v", attempt, seen)
		}
	}
	if got := Backoff(0, base, max); got < base/2 || got > base {
		t.Fatalf("Backoff(0) = %s", got)
	}
	if got := Backoff(100, time.Duration(1<<62), time.Duration(1<<62+1)); got <= 0 {
		t.Fatalf("Backoff overflows: %s", got)
	}
}
