package e2e

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestSlowClientsAndConnectionCap drives the binary's HTTP server with
// short limits: a client trickling its request body, authenticated or not,
// is disconnected after the read limit; beyond the connection cap a new
// client waits while the open connections keep being served, and is served
// once one closes.
func TestSlowClientsAndConnectionCap(t *testing.T) {
	inst := startSlipway(t, "SLIPWAY_HTTP_READ_TIMEOUT=1s", "SLIPWAY_HTTP_READ_HEADER_TIMEOUT=30s", "SLIPWAY_HTTP_MAX_CONNECTIONS=3")
	addr := inst.HTTPAddr

	for _, auth := range []string{"", "Authorization: Bearer " + adminToken + "\r\n"} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(c, "POST /v1/projects HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"+auth+"Content-Length: 1000\r\n\r\n{"); err != nil {
			t.Fatal(err)
		}
		go func() { // one byte every 100 ms: 100 s for the body
			for range 999 {
				if _, err := c.Write([]byte(" ")); err != nil {
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		}()
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
		_, err = io.Copy(io.Discard, c)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("a client trickling its body (authenticated: %v) still holds its connection after 20 s; the read limit is 1 s", auth != "")
		}
		_ = c.Close()
	}

	// Three keep-alive connections take the three slots.
	type held struct {
		c net.Conn
		r *bufio.Reader
	}
	var conns []held
	get := func(h held) {
		t.Helper()
		_ = h.c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(h.c, "GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		res, err := http.ReadResponse(h.r, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		_ = res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET /health/live on an open connection: HTTP %d", res.StatusCode)
		}
	}
	// The harness's own client may hold idle connections: close them so
	// that the slots are the test's.
	httpClient.CloseIdleConnections()
	for range 3 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		h := held{c, bufio.NewReader(c)}
		conns = append(conns, h)
		get(h)
	}
	waiting := make(chan error, 1)
	go func() {
		client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}
		res, err := client.Get("http://" + addr + "/v1/projects")
		if err == nil {
			_ = res.Body.Close()
		}
		waiting <- err
	}()
	select {
	case err := <-waiting:
		t.Fatalf("a fourth connection was served over a cap of 3 (%v)", err)
	case <-time.After(time.Second):
	}
	for _, h := range conns {
		get(h) // the open connections are still served
	}
	_ = conns[2].c.Close()
	select {
	case err := <-waiting:
		if err != nil {
			t.Fatalf("the waiting client, once a slot freed: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the waiting client was not served after a slot freed")
	}
}

// TestOAuthSecretGuessingLockedOut drives the binary's OAuth2 token
// endpoint: wrong client secrets are answered five times, then every
// attempt, the right secret included, is a 429 with Retry-After in the
// endpoint's RFC 6749 error format.
func TestOAuthSecretGuessingLockedOut(t *testing.T) {
	inst := startSlipway(t)
	client := callJSON(t, "POST", inst.URL+"/v1/oauth-clients",
		`{"name":"Guessed robot","grantTypes":["client_credentials"],"scopes":["project_read"]}`).data(t)
	id, _ := client["id"].(string)
	sec, _ := client["secret"].(string)
	token := func(secret string) (int, http.Header, map[string]any) {
		t.Helper()
		req, err := http.NewRequest("POST", inst.URL+"/oauth2/token", strings.NewReader("grant_type=client_credentials&scope=project_read"))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(id, secret)
		res, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(res.Body).Decode(&body)
		return res.StatusCode, res.Header, body
	}
	for i := range 6 {
		if status, _, body := token("slw_sk_wrong"); status != http.StatusUnauthorized {
			t.Fatalf("wrong secret %d: HTTP %d %v, want 401", i+1, status, body)
		}
	}
	for _, secret := range []string{"slw_sk_wrong", sec} {
		status, header, body := token(secret)
		if status != http.StatusTooManyRequests || body["error"] != "temporarily_unavailable" || header.Get("Retry-After") == "" {
			t.Fatalf("during the lockout: HTTP %d %v (Retry-After %q), want 429 temporarily_unavailable", status, body, header.Get("Retry-After"))
		}
	}
}
