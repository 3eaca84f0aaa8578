package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/slipwayhq/slipway/pkg/testenv"
)

// rateLimit is a response's X-Ratelimit-* headers, checked to be present
// and numeric.
type rateLimit struct {
	Limit, Remaining, Reset int64
}

func rateLimitOf(t testing.TB, what string, r response) rateLimit {
	t.Helper()
	var rl rateLimit
	for _, h := range []struct {
		name string
		dst  *int64
	}{
		{"X-Ratelimit-Limit", &rl.Limit},
		{"X-Ratelimit-Remaining", &rl.Remaining},
		{"X-Ratelimit-Reset", &rl.Reset},
	} {
		v := r.Header.Get(h.name)
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			t.Errorf("%s (HTTP %d): %s is %q, want a non-negative integer", what, r.Status, h.name, v)
		}
		*h.dst = n
	}
	return rl
}

// startGateway starts a `--target=gateway` process in front of the
// services of core.
func startGateway(t testing.TB, core *instance, natsURL string, env ...string) *instance {
	t.Helper()
	return startSlipway(t, append([]string{
		"SLIPWAY_TARGET=gateway",
		"SLIPWAY_PROJECTS_ADDR=" + core.GRPCAddr,
		"SLIPWAY_AUTH_ADDR=" + core.GRPCAddr,
		"SLIPWAY_INTERNAL_KEY=" + internalKey,
		"SLIPWAY_NATS_URL=" + natsURL,
	}, env...)...)
}

// TestQuotaSharedAcrossGateways runs two gateway replicas sharing one Redis
// in front of one Slipway and spends a team's hourly quota through both in
// turn: they count one quota, so exactly the limit of requests passes in
// total and then both refuse with 429 and Retry-After.
func TestQuotaSharedAcrossGateways(t *testing.T) {
	const limit = 20
	natsURL := testenv.StartNATS(t).URL()
	redisURL := testenv.Redis(t)
	// The services (and a gateway of their own, unused here); other
	// processes may call the auth service with the internal key.
	core := startSlipway(t, grpcListener, "SLIPWAY_INTERNAL_KEY="+internalKey, "SLIPWAY_NATS_URL="+natsURL)
	quotaEnv := []string{"SLIPWAY_REDIS_URL=" + redisURL, "SLIPWAY_RATE_LIMIT_PER_HOUR=" + strconv.Itoa(limit)}
	gateways := []*instance{
		startGateway(t, core, natsURL, quotaEnv...),
		startGateway(t, core, natsURL, quotaEnv...),
	}
	admin := "Bearer " + adminToken

	// Spend the quota alternating between the gateways, and between
	// requests that succeed and requests that fail with 404 (which count
	// too, and carry the headers too).
	allowed := 0
	for i := 0; i < limit+6; i++ {
		gw := gateways[i%2]
		path, want := "/v1/regions", http.StatusOK
		if i%4 >= 2 {
			path, want = "/v1/projects/no-such-project", http.StatusNotFound
		}
		what := fmt.Sprintf("request %d (%s through gateway %d)", i+1, path, i%2+1)
		res := requestAs(t, admin, "GET", gw.URL+path, "")
		rl := rateLimitOf(t, what, res)
		if rl.Limit != limit {
			t.Errorf("%s: X-Ratelimit-Limit %d, want %d", what, rl.Limit, limit)
		}
		if rl.Reset <= 0 || rl.Reset > 3600 {
			t.Errorf("%s: X-Ratelimit-Reset %d, want 1 to 3600 seconds", what, rl.Reset)
		}
		if i < limit {
			// Within the quota: the answer the route gives, with the
			// remaining count going down across both gateways.
			if res.Status != want {
				t.Errorf("%s: HTTP %d, want %d: %s", what, res.Status, want, res.Raw)
			}
			if wantLeft := int64(limit - i - 1); rl.Remaining != wantLeft {
				t.Errorf("%s: X-Ratelimit-Remaining %d, want %d (shared by both gateways)", what, rl.Remaining, wantLeft)
			}
		} else {
			// Spent: both gateways refuse.
			e := res.apiErr(t, http.StatusTooManyRequests)
			if e.ID != "QUOTA_EXCEEDED" {
				t.Errorf("%s: error id %q, want QUOTA_EXCEEDED", what, e.ID)
			}
			retry, err := strconv.ParseInt(res.Header.Get("Retry-After"), 10, 64)
			if err != nil || retry <= 0 || retry > 3600 {
				t.Errorf("%s: 429 with Retry-After %q, want 1 to 3600 seconds", what, res.Header.Get("Retry-After"))
			} else if retry != rl.Reset {
				t.Errorf("%s: Retry-After %d, want X-Ratelimit-Reset %d", what, retry, rl.Reset)
			}
			if rl.Remaining != 0 {
				t.Errorf("%s: X-Ratelimit-Remaining %d on a 429, want 0", what, rl.Remaining)
			}
		}
		if res.Status != http.StatusTooManyRequests {
			allowed++
		}
	}
	if allowed != limit {
		t.Errorf("%d requests passed through the two gateways, want exactly %d", allowed, limit)
	}

	// A request without credentials is a 401 with the headers too; it
	// spends a quota of the caller's address, not the exhausted team's, and
	// that quota is shared by the gateways as well.
	for i, gw := range gateways {
		what := fmt.Sprintf("request without credentials through gateway %d", i+1)
		res := requestAs(t, "", "GET", gw.URL+"/v1/regions", "")
		res.apiErr(t, http.StatusUnauthorized)
		if res.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: 401 without WWW-Authenticate", what)
		}
		rl := rateLimitOf(t, what, res)
		if wantLeft := int64(limit - i - 1); rl.Limit != limit || rl.Remaining != wantLeft {
			t.Errorf("%s: X-Ratelimit-Limit %d, -Remaining %d; want %d and %d", what, rl.Limit, rl.Remaining, limit, wantLeft)
		}
	}
}

// TestQuotaSurvivesRedisOutage points the gateway at a Redis that is not
// there: quotas fall back to the process's memory, so every request is
// still answered (never a 500) with the rate-limit headers, the fallback is
// counted in /metrics and a warning names Redis.
func TestQuotaSurvivesRedisOutage(t *testing.T) {
	deadRedis := fmt.Sprintf("redis://127.0.0.1:%d/0", testenv.FreePort(t))
	inst := startSlipway(t, "SLIPWAY_REDIS_URL="+deadRedis)
	admin := "Bearer " + adminToken

	var last int64 = -1
	for i := 0; i < 10; i++ {
		path, want := "/v1/regions", http.StatusOK
		if i%3 == 2 {
			path, want = "/v1/projects/no-such-project", http.StatusNotFound
		}
		what := fmt.Sprintf("request %d (%s)", i+1, path)
		res := requestAs(t, admin, "GET", inst.URL+path, "")
		if res.Status != want {
			t.Errorf("%s with Redis down: HTTP %d, want %d: %s", what, res.Status, want, res.Raw)
		}
		rl := rateLimitOf(t, what, res)
		if rl.Limit <= 0 {
			t.Errorf("%s: X-Ratelimit-Limit %d, want the configured limit", what, rl.Limit)
		}
		// The in-process limiter still counts.
		if last >= 0 && rl.Remaining != last-1 {
			t.Errorf("%s: X-Ratelimit-Remaining %d after %d, want one less", what, rl.Remaining, last)
		}
		last = rl.Remaining
	}
	res := requestAs(t, "", "GET", inst.URL+"/v1/regions", "")
	res.apiErr(t, http.StatusUnauthorized)
	rateLimitOf(t, "request without credentials", res)

	m := requestAs(t, "", "GET", inst.URL+"/metrics", "")
	if m.Status != http.StatusOK {
		t.Fatalf("GET /metrics: HTTP %d: %.300s", m.Status, m.Raw)
	}
	if v, ok := metricValue(m.Raw, "slipway_quota_fallback_total"); !ok {
		t.Errorf("/metrics has no slipway_quota_fallback_total")
	} else if v <= 0 {
		t.Errorf("slipway_quota_fallback_total is %v, want > 0 with Redis down", v)
	} else {
		t.Logf("slipway_quota_fallback_total %v", v)
	}

	var warned bool
	for _, l := range inst.out.logsAt("WARN") {
		if strings.Contains(l, "Redis") {
			warned = true
			t.Logf("warning: %s", l)
		}
	}
	if !warned {
		t.Errorf("no WARN log line about Redis being unreachable")
	}
}

// metricValue returns the value of an unlabelled sample in a Prometheus
// text exposition.
func metricValue(exposition []byte, name string) (float64, bool) {
	sc := bufio.NewScanner(bytes.NewReader(exposition))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), name+" ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		return v, err == nil
	}
	return 0, false
}
