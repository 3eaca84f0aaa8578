package gateway_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/slipwayhq/slipway/gateway"
	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/authz"
	"github.com/slipwayhq/slipway/pkg/component"
	"github.com/slipwayhq/slipway/pkg/idempotency"
	"github.com/slipwayhq/slipway/pkg/quota"
	"github.com/slipwayhq/slipway/pkg/sqldb"
	"github.com/slipwayhq/slipway/pkg/sqldb/sqltest"
	"github.com/slipwayhq/slipway/pkg/testenv"
	"github.com/slipwayhq/slipway/services/projects"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// keyStore is a fresh Idempotency-Key store on engine.
func keyStore(t testing.TB, engine sqldb.Dialect) idempotency.Store {
	return idempotency.NewSQLStore(sqltest.Open(t, engine, idempotency.Migrations))
}

// newIdempotentGateway serves a gateway keeping Idempotency-Keys in keys,
// in front of the projects service at conn, and returns its base URL. Two
// gateways over one store are two replicas (or one restarted).
func newIdempotentGateway(t testing.TB, keys idempotency.Store, conn grpc.ClientConnInterface) string {
	t.Helper()
	reg := prometheus.NewRegistry()
	gw, err := gateway.New(context.Background(), gateway.Options{Logger: quiet, Registerer: reg, Gatherer: reg, Version: "test",
		Backends: []component.Backend{{Name: "projects", API: *projects.Component.API, Conn: conn}},
		Auth:     authz.New(tokens, "internal"), Quota: quota.NewMemory(time.Hour), Plans: quota.Plans{Default: 1_000_000},
		Idempotency: keys})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(gw)
	t.Cleanup(ts.Close)
	return ts.URL
}

// post sends a POST (Bearer test-token unless header says otherwise) from
// any goroutine.
func post(url, body string, header ...string) (response, error) {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return response{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer test-token")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, raw: raw}, err
}

func projectCount(t *testing.T, base string) int {
	t.Helper()
	r := do(t, "GET", base+"/v1/projects", "")
	return len(r.body["data"].(map[string]any)["projects"].([]any))
}

func TestIdempotentRetryGetsTheFirstResponse(t *testing.T) {
	base := newIdempotentGateway(t, keyStore(t, sqldb.SQLite), projectsBackend(t))
	const body = `{"name":"Retried","description":"first"}`
	first := do(t, "POST", base+"/v1/projects", body, "Idempotency-Key", "create-retried")
	if first.status != 200 || first.header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("first create: %d %v %s", first.status, first.header, first.raw)
	}
	for range 2 {
		again := do(t, "POST", base+"/v1/projects", body, "Idempotency-Key", "create-retried")
		if again.status != 200 || string(again.raw) != string(first.raw) {
			t.Fatalf("retry = %d %s, want the first response %s", again.status, again.raw, first.raw)
		}
		if again.header.Get("Idempotent-Replayed") != "true" || again.header.Get("Content-Type") != "application/json" {
			t.Fatalf("retry headers = %v", again.header)
		}
		if again.header.Get("X-Request-Id") == first.header.Get("X-Request-Id") {
			t.Fatal("a replay repeats the first request's X-Request-Id")
		}
	}
	if n := projectCount(t, base); n != 1 {
		t.Fatalf("%d projects after a create and its retries, want 1", n)
	}
	// Without the key the same request runs again, and meets the first.
	errorOf(t, do(t, "POST", base+"/v1/projects", body), 409)

	// The same key for another request: another body, another target.
	for name, r := range map[string]response{
		"body":  do(t, "POST", base+"/v1/projects", `{"name":"Retried","description":"second"}`, "Idempotency-Key", "create-retried"),
		"query": do(t, "POST", base+"/v1/projects?x=1", body, "Idempotency-Key", "create-retried"),
		"path":  do(t, "POST", base+"/v1/teams/acme/projects", body, "Idempotency-Key", "create-retried"),
	} {
		if e := errorOf(t, r, 422); e["id"] != "IDEMPOTENCY_KEY_REUSED" {
			t.Errorf("other %s with the key: %s", name, r.raw)
		}
	}
	if n := projectCount(t, base); n != 1 {
		t.Fatalf("%d projects, want 1", n)
	}

	// Errors other than server errors are kept like successes: a retry of
	// a create that met a taken id gets the same 409.
	conflict := do(t, "POST", base+"/v1/projects", body, "Idempotency-Key", "create-conflict")
	errorOf(t, conflict, 409)
	again := do(t, "POST", base+"/v1/projects", body, "Idempotency-Key", "create-conflict")
	if again.status != 409 || string(again.raw) != string(conflict.raw) || again.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry of a 409 = %d %v %s", again.status, again.header, again.raw)
	}

	// Other methods ignore the header.
	r := do(t, "PATCH", base+"/v1/projects/retried", `{"description":"patched"}`, "Idempotency-Key", "create-retried")
	if r.status != 200 || r.header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("PATCH with a key = %d %v %s", r.status, r.header, r.raw)
	}
}

// TestIdempotentConcurrentRetries sends one create ten times at once with
// one key, on both engines of the key store: one runs, the others wait
// for it and get its answer.
func TestIdempotentConcurrentRetries(t *testing.T) {
	sqltest.EachEngine(t, func(t *testing.T, engine sqldb.Dialect) {
		keys := keyStore(t, engine)
		backend := projectsBackend(t)
		// Two replicas over one store, as compose runs on PostgreSQL.
		bases := []string{newIdempotentGateway(t, keys, backend), newIdempotentGateway(t, keys, backend)}
		const n = 10
		var (
			wg        sync.WaitGroup
			responses = make([]response, n)
			start     = make(chan struct{})
		)
		for i := range n {
			wg.Go(func() {
				<-start
				r, err := post(bases[i%2]+"/v1/projects", `{"name":"Concurrent"}`, "Idempotency-Key", "concurrent-"+string(engine))
				if err != nil {
					t.Error(err)
				}
				responses[i] = r
			})
		}
		close(start)
		wg.Wait()
		replayed := 0
		for i, r := range responses {
			if r.status != 200 || string(r.raw) != string(responses[0].raw) {
				t.Fatalf("response %d = %d %s, want 200 %s", i, r.status, r.raw, responses[0].raw)
			}
			if r.header.Get("Idempotent-Replayed") == "true" {
				replayed++
			}
		}
		if replayed != n-1 {
			t.Errorf("%d of %d responses replayed, want %d", replayed, n, n-1)
		}
		if c := projectCount(t, bases[0]); c != 1 {
			t.Fatalf("%d projects after %d concurrent retries, want 1", c, n)
		}
	})
}

func TestIdempotencyKeysArePerCredential(t *testing.T) {
	base := newIdempotentGateway(t, keyStore(t, sqldb.SQLite), projectsBackend(t))
	const body = `{"name":"Mine"}`
	if r := do(t, "POST", base+"/v1/projects", body, "Idempotency-Key", "shared-key"); r.status != 200 {
		t.Fatalf("create: %d %s", r.status, r.raw)
	}
	// Another credential's request with the key and another body is not
	// refused: it runs.
	r := do(t, "POST", base+"/v1/projects", `{"name":"Theirs"}`, "Idempotency-Key", "shared-key", "Authorization", "Bearer other-admin")
	if r.status != 200 || r.body["data"].(map[string]any)["id"] != "theirs" {
		t.Fatalf("other credential, other body: %d %s", r.status, r.raw)
	}
	// Nor is another caller's answer replayed for the same key and body:
	// the viewer's request runs, and is forbidden.
	r = do(t, "POST", base+"/v1/projects", body, "Idempotency-Key", "shared-key", "Authorization", "Bearer viewer")
	if errorOf(t, r, 403); r.header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("other credential got a replay: %v", r.header)
	}
	// An unknown credential is refused before its key is looked at.
	errorOf(t, do(t, "POST", base+"/v1/projects", body, "Idempotency-Key", "shared-key", "Authorization", "Bearer nobody"), 401)
}

// TestIdempotentServerErrorsAreNotKept: a create that failed with a
// server error (its backend unreachable) is run again by its retry,
// through another replica sharing the keys, which reaches the backend.
func TestIdempotentServerErrorsAreNotKept(t *testing.T) {
	keys := keyStore(t, sqldb.SQLite)
	lis, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	_ = lis.Close() // nothing listens there now: connections are refused
	down, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = down.Close() })
	failing := newIdempotentGateway(t, keys, down)
	const body = `{"name":"After Outage"}`
	r, err := post(failing+"/v1/projects", body, "Idempotency-Key", "outage")
	if err != nil {
		t.Fatal(err)
	}
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("create with the backend down: %d %s, want 503", r.status, r.raw)
	}
	working := newIdempotentGateway(t, keys, projectsBackend(t))
	r = do(t, "POST", working+"/v1/projects", body, "Idempotency-Key", "outage")
	if r.status != 200 || r.header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("retry after a 503 = %d %v %s, want a fresh 200", r.status, r.header, r.raw)
	}
	if again := do(t, "POST", working+"/v1/projects", body, "Idempotency-Key", "outage"); string(again.raw) != string(r.raw) {
		t.Fatalf("second retry = %s, want %s", again.raw, r.raw)
	}
}

// TestIdempotentRetryWaitsForTheFirst: a retry that finds the first
// request still running waits for its answer; when it does not come in
// time, 409; a claim whose lease lapsed (its process died) is taken over.
func TestIdempotentRetryWaitsForTheFirst(t *testing.T) {
	defer gateway.SetIdempotencyWait(2 * time.Second)()
	ctx := context.Background()
	keys := keyStore(t, sqldb.SQLite)
	base := newIdempotentGateway(t, keys, projectsBackend(t))
	const body = `{"name":"Slow"}`
	fp := gateway.IdempotencyFingerprint("POST", "/v1/projects", body)
	claimAt := func(key, token string, now time.Time) idempotency.Key {
		t.Helper()
		k := gateway.IdempotencyRecordKey("Bearer test-token", key)
		_, claimed, err := keys.Begin(ctx, idempotency.Claim{Key: k, Fingerprint: fp, Token: token, Now: now, LeaseUntil: now.Add(time.Minute), ExpiresAt: now.Add(time.Hour)})
		if err != nil || !claimed {
			t.Fatalf("claim %s: %v %v", key, claimed, err)
		}
		return k
	}

	// A first request "running" elsewhere answers while the retry waits.
	k := claimAt("running", "elsewhere", time.Now())
	go func() {
		time.Sleep(300 * time.Millisecond)
		_ = keys.Complete(ctx, k, "elsewhere", idempotency.Response{Status: 200, ContentType: "application/json", Body: []byte(`{"data":{"id":"slow"}}`)})
	}()
	r := do(t, "POST", base+"/v1/projects", body, "Idempotency-Key", "running")
	if r.status != 200 || string(r.raw) != `{"data":{"id":"slow"}}` || r.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry of a running request = %d %v %s", r.status, r.header, r.raw)
	}
	// A different request with that key is refused at once, running or not.
	claimAt("busy", "elsewhere", time.Now())
	errorOf(t, do(t, "POST", base+"/v1/projects", `{"name":"Other"}`, "Idempotency-Key", "busy"), 422)

	// The first never answers: the wait runs out.
	started := time.Now()
	if e := errorOf(t, do(t, "POST", base+"/v1/projects", body, "Idempotency-Key", "busy"), 409); e["id"] != "IDEMPOTENCY_KEY_IN_USE" {
		t.Fatalf("wait ran out: %v", e)
	}
	if waited := time.Since(started); waited < 2*time.Second {
		t.Fatalf("gave up after %v, want the 2s wait", waited)
	}

	// Its lease lapsed: the process holding it died. The retry runs.
	claimAt("abandoned", "dead", time.Now().Add(-2*time.Minute))
	r = do(t, "POST", base+"/v1/projects", body, "Idempotency-Key", "abandoned")
	if r.status != 200 || r.header.Get("Idempotent-Replayed") != "" || r.body["data"].(map[string]any)["id"] != "slow" {
		t.Fatalf("retry of an abandoned claim = %d %v %s", r.status, r.header, r.raw)
	}
	if n := projectCount(t, base); n != 1 {
		t.Fatalf("%d projects, want 1", n)
	}
}

// TestIdempotencyKeyBadInput: keys that are not 1 to 255 visible ASCII
// characters, or given twice, are a 400 naming the header; nothing runs.
func TestIdempotencyKeyBadInput(t *testing.T) {
	base := newIdempotentGateway(t, keyStore(t, sqldb.SQLite), projectsBackend(t))
	const body = `{"name":"Bad Keys"}`
	for name, key := range map[string]string{
		"empty":       "",
		"too long":    strings.Repeat("k", 256),
		"non-ASCII":   "clé-unique",
		"inner space": "two words",
		"high bytes":  "\xff\xfe",
		"tab":         "a\tb",
	} {
		t.Run(name, func(t *testing.T) {
			req, err := http.NewRequest("POST", base+"/v1/projects", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer test-token")
			req.Header["Idempotency-Key"] = []string{key}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != 400 || !strings.Contains(string(raw), `"Idempotency-Key":["must be 1 to 255 visible ASCII characters"]`) {
				t.Fatalf("key %q: %d %s", key, resp.StatusCode, raw)
			}
		})
	}
	req, _ := http.NewRequest("POST", base+"/v1/projects", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer test-token")
	req.Header["Idempotency-Key"] = []string{"one", "two"}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(raw), `"Idempotency-Key":["is given more than once"]`) {
		t.Fatalf("two keys: %d %s", resp.StatusCode, raw)
	}
	if n := projectCount(t, base); n != 0 {
		t.Fatalf("%d projects created by refused requests", n)
	}
	// The longest key works, as does the IETF draft's quoted form.
	for _, key := range []string{strings.Repeat("k", 255), `"8e03978e-40d5-43e8-bc93-6894a57f9324"`} {
		if r := do(t, "POST", base+"/v1/projects", fmt.Sprintf(`{"name":"Key %d"}`, len(key)), "Idempotency-Key", key); r.status != 200 {
			t.Fatalf("key %q: %d %s", key, r.status, r.raw)
		}
	}
}

// FuzzIdempotencyKey sends creates with arbitrary keys and bodies through
// the whole gateway: a key that is not 1 to 255 visible ASCII characters
// (after HTTP's trimming of surrounding blanks) is a 400 naming the header;
// any other is served, never with a server error, and sending the request
// again replays the same answer. The seeds run in every `go test`; `go
// test -fuzz FuzzIdempotencyKey ./gateway` explores.
func FuzzIdempotencyKey(f *testing.F) {
	for _, key := range []string{"", "k", strings.Repeat("k", 255), strings.Repeat("k", 256), "clé", "\xff", " padded ",
		"a b", `"8e03978e-40d5-43e8-bc93-6894a57f9324"`, "a\x00b", "\t", "%00", "'; DROP TABLE idempotency_keys; --"} {
		f.Add(key, `{"name":"Fuzz Key"}`)
	}
	f.Add("k2", `{"name":`)
	f.Add("k3", "\xff")
	base := newIdempotentGateway(f, keyStore(f, sqldb.SQLite), projectsBackend(f))
	f.Fuzz(func(t *testing.T, key, body string) {
		send := func() (*http.Response, []byte, bool) {
			req, err := http.NewRequest("POST", base+"/v1/projects", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer test-token")
			req.Header["Idempotency-Key"] = []string{key}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return nil, nil, false // a value no HTTP client sends (a control character)
			}
			raw, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			return resp, raw, true
		}
		first, raw, sent := send()
		if !sent {
			return
		}
		received := strings.Trim(key, " \t")
		valid := len(received) >= 1 && len(received) <= 255 && !strings.ContainsFunc(received, func(r rune) bool { return r < 0x21 || r > 0x7e })
		if !valid {
			if first.StatusCode != 400 || !strings.Contains(string(raw), `"Idempotency-Key":[`) {
				t.Fatalf("key %q: %d %s, want 400 naming the header", key, first.StatusCode, raw)
			}
			return
		}
		if first.StatusCode >= 500 {
			t.Fatalf("key %q body %q: %d %s", key, body, first.StatusCode, raw)
		}
		if first.StatusCode == 422 {
			return // the fuzzer sent this key with another body before
		}
		again, raw2, _ := send()
		if again.StatusCode != first.StatusCode || string(raw2) != string(raw) || again.Header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("key %q body %q: retry %d %v %s, want %d %s replayed", key, body, again.StatusCode, again.Header, raw2, first.StatusCode, raw)
		}
	})
}

// racedStore is the real store whose Begin lost every race for the key,
// as it reports after too many concurrent take-overs.
type racedStore struct{ idempotency.Store }

func (racedStore) Begin(context.Context, idempotency.Claim) (idempotency.Record, bool, error) {
	return idempotency.Record{}, false, apierr.ErrConflict
}

// TestIdempotencyKeyLostRaceIsInUse: a key other requests keep winning is
// in use (409), not a store outage (503).
func TestIdempotencyKeyLostRaceIsInUse(t *testing.T) {
	base := newIdempotentGateway(t, racedStore{keyStore(t, sqldb.SQLite)}, projectsBackend(t))
	r := do(t, "POST", base+"/v1/projects", `{"name":"Raced"}`, "Idempotency-Key", "raced")
	if r.status != http.StatusConflict || !strings.Contains(string(r.raw), "IDEMPOTENCY_KEY_IN_USE") {
		t.Fatalf("lost race = %d %s, want 409 IDEMPOTENCY_KEY_IN_USE", r.status, r.raw)
	}
}
