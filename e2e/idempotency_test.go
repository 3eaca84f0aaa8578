package e2e

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/slipwayhq/slipway/pkg/testenv"
)

// postWithKey sends POST url with an Idempotency-Key as the admin, from
// any goroutine.
func postWithKey(url, key, body string) (response, error) {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return response{}, err
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	res, err := httpClient.Do(req)
	if err != nil {
		return response{}, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	return response{Status: res.StatusCode, Header: res.Header, Raw: raw}, err
}

// concurrentCreates sends n copies of one create with one key at once,
// spread over the gateways, and checks that all got the same 200, all but
// one replayed; it returns the answer.
func concurrentCreates(t *testing.T, urls []string, n int, key, body string) string {
	t.Helper()
	var (
		wg        sync.WaitGroup
		responses = make([]response, n)
		errs      = make([]error, n)
		start     = make(chan struct{})
	)
	for i := range n {
		wg.Go(func() {
			<-start
			responses[i], errs[i] = postWithKey(urls[i%len(urls)]+"/v1/projects", key, body)
		})
	}
	close(start)
	wg.Wait()
	replayed := 0
	for i, r := range responses {
		if errs[i] != nil {
			t.Fatalf("request %d: %v", i, errs[i])
		}
		if r.Status != http.StatusOK || string(r.Raw) != string(responses[0].Raw) {
			t.Fatalf("request %d: HTTP %d %s, want 200 %s", i, r.Status, r.Raw, responses[0].Raw)
		}
		if r.Header.Get("Idempotent-Replayed") == "true" {
			replayed++
		}
	}
	if replayed != n-1 {
		t.Errorf("%d of %d concurrent requests replayed, want %d", replayed, n, n-1)
	}
	return string(responses[0].Raw)
}

func countProjects(t *testing.T, url string) int {
	t.Helper()
	return len(callJSON(t, "GET", url+"/v1/projects", "").data(t)["projects"].([]any))
}

// TestIdempotencyKey drives the real binary (SQLite, one process): a
// create retried with its Idempotency-Key, one sent ten times at once,
// the key reused for another body, and the key still answered after a
// restart.
func TestIdempotencyKey(t *testing.T) {
	dataDir := t.TempDir()
	inst := startSlipway(t, "SLIPWAY_DATA_DIR="+dataDir)
	const body = `{"name":"Once Only","description":"retried"}`
	first := callJSON(t, "POST", inst.URL+"/v1/projects", body, "Idempotency-Key", "create-once-only")
	first.data(t)
	if first.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("first request marked replayed: %v", first.Header)
	}
	again := callJSON(t, "POST", inst.URL+"/v1/projects", body, "Idempotency-Key", "create-once-only")
	if again.Status != http.StatusOK || string(again.Raw) != string(first.Raw) || again.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry: HTTP %d %v %s, want the first answer %s replayed", again.Status, again.Header, again.Raw, first.Raw)
	}
	if e := callJSON(t, "POST", inst.URL+"/v1/projects", `{"name":"Once Only","description":"changed"}`,
		"Idempotency-Key", "create-once-only").apiErr(t, http.StatusUnprocessableEntity); e.ID != "IDEMPOTENCY_KEY_REUSED" {
		t.Errorf("key reused for another body: %+v", e)
	}
	if e := callJSON(t, "POST", inst.URL+"/v1/projects", body, "Idempotency-Key", strings.Repeat("k", 256)).apiErr(t, http.StatusBadRequest); e.Details["Idempotency-Key"] == nil {
		t.Errorf("key too long: %+v", e)
	}
	concurrent := concurrentCreates(t, []string{inst.URL}, 10, "create-concurrent", `{"name":"Concurrent Once"}`)
	if n := countProjects(t, inst.URL); n != 2 {
		t.Fatalf("%d projects, want 2", n)
	}

	if err := inst.Stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
	restarted := startSlipway(t, "SLIPWAY_DATA_DIR="+dataDir)
	for key, want := range map[string]string{"create-once-only": string(first.Raw), "create-concurrent": concurrent} {
		b := body
		if key == "create-concurrent" {
			b = `{"name":"Concurrent Once"}`
		}
		r := callJSON(t, "POST", restarted.URL+"/v1/projects", b, "Idempotency-Key", key)
		if r.Status != http.StatusOK || string(r.Raw) != want || r.Header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("%s after a restart: HTTP %d %v %s, want %s replayed", key, r.Status, r.Header, r.Raw, want)
		}
	}
	if n := countProjects(t, restarted.URL); n != 2 {
		t.Fatalf("%d projects after the restart, want 2", n)
	}
}

// TestIdempotencyKeySharedByGateways runs two gateway replicas apart, on
// one PostgreSQL database migrated by `slipway migrate`, in front of one
// Slipway: concurrent retries through both create once, and a retry
// through either gets the answer.
func TestIdempotencyKeySharedByGateways(t *testing.T) {
	natsURL := testenv.StartNATS(t).URL()
	gatewayDB := "SLIPWAY_GATEWAY_DATABASE_URL=" + testenv.Postgres(t)
	runSlipway(t, []string{"migrate"}, "SLIPWAY_TARGET=gateway", gatewayDB)
	core := startSlipway(t, grpcListener, "SLIPWAY_INTERNAL_KEY="+internalKey, "SLIPWAY_NATS_URL="+natsURL)
	gateways := []*instance{startGateway(t, core, natsURL, gatewayDB), startGateway(t, core, natsURL, gatewayDB)}
	urls := []string{gateways[0].URL, gateways[1].URL}
	const body = `{"name":"Replicated Once"}`
	answer := concurrentCreates(t, urls, 10, "replicated", body)
	for i, url := range urls {
		r := callJSON(t, "POST", url+"/v1/projects", body, "Idempotency-Key", "replicated")
		if r.Status != http.StatusOK || string(r.Raw) != answer || r.Header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("retry through gateway %d: HTTP %d %s, want %s replayed", i+1, r.Status, r.Raw, answer)
		}
	}
	if n := countProjects(t, urls[0]); n != 1 {
		t.Fatalf("%d projects, want 1", n)
	}
	for i, gw := range gateways {
		checks, _ := callJSON(t, "GET", gw.URL+"/health", "").data(t)["checks"].(map[string]any)
		if checks["gateway-database"] != "ok" {
			t.Errorf("gateway %d /health checks = %v, want gateway-database ok", i+1, checks)
		}
	}
}
