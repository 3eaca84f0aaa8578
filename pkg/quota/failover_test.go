package quota

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/slipwayhq/slipway/pkg/testenv"
)

// TestFailoverServesFromMemoryWhileRedisIsDown uses a real client to a port
// nobody listens on: every call must still get an answer, with the same
// rules, from memory; Redis is skipped during the cooldown; and the outage
// is logged once per warn interval, not once per request.
func TestFailoverServesFromMemoryWhileRedisIsDown(t *testing.T) {
	clk := newFakeClock()
	reg := prometheus.NewRegistry()
	logs := &recordingHandler{}
	primary := &countingLimiter{Limiter: NewRedis(deadRedisClient(t), time.Hour)}
	f := NewFailover(primary, NewMemory(time.Hour, WithClock(clk.Now)), slog.New(logs), reg,
		WithClock(clk.Now), WithCooldown(5*time.Second))
	ctx := context.Background()

	call := func(i int64) {
		t.Helper()
		d, err := f.Allow(ctx, "team:acme", 3)
		if err != nil {
			t.Fatalf("call %d: error %v; Failover must never return one", i, err)
		}
		checkDecision(t, "call "+itoa64(i), d, i <= 3, 3, max(3-i, 0))
		if d.Reset <= 0 {
			t.Fatalf("call %d: Reset = %v, want the fallback's window", i, d.Reset)
		}
	}

	// Within the cooldown, Redis is tried only once.
	for i := int64(1); i <= 10; i++ {
		call(i)
	}
	if n := primary.calls.Load(); n != 1 {
		t.Fatalf("Redis asked %d times within the cooldown, want 1", n)
	}
	// Once per cooldown Redis is tried again, and fails again.
	for i := int64(11); i <= 20; i++ {
		clk.Advance(5 * time.Second)
		call(i)
	}
	if n := primary.calls.Load(); n != 11 {
		t.Fatalf("Redis asked %d times, want 11 (once per cooldown)", n)
	}
	if w := logs.atLevel(slog.LevelWarn); len(w) != 1 {
		t.Fatalf("%d warnings for 11 failures within a minute, want 1", len(w))
	}
	if got := counterValue(t, reg, FallbackMetric); got != 20 {
		t.Fatalf("%s = %v, want 20", FallbackMetric, got)
	}

	// A minute after the first warning the outage is reported again, with
	// the number of failures that were not logged.
	clk.Advance(time.Minute)
	call(21)
	w := logs.atLevel(slog.LevelWarn)
	if len(w) != 2 {
		t.Fatalf("%d warnings after a minute, want 2", len(w))
	}
	if n := w[1].attrs["failures_not_logged"].Int64(); n != 10 {
		t.Errorf("failures_not_logged = %d, want 10", n)
	}
	if w[0].attrs["error"].String() == "" {
		t.Errorf("warning does not say what failed: %+v", w[0])
	}
}

// TestFailoverReturnsToRedisAfterCooldown fails Redis, then brings a live
// one in at the same place: Failover must keep to memory during the
// cooldown and use Redis again right after it.
func TestFailoverReturnsToRedisAfterCooldown(t *testing.T) {
	live := redisClient(t, testenv.Redis(t))
	clk := newFakeClock()
	reg := prometheus.NewRegistry()
	logs := &recordingHandler{}
	redisLimiter := &swappableLimiter{l: NewRedis(deadRedisClient(t), time.Hour)}
	primary := &countingLimiter{Limiter: redisLimiter}
	f := NewFailover(primary, NewMemory(time.Hour, WithClock(clk.Now)), slog.New(logs), reg,
		WithClock(clk.Now), WithCooldown(5*time.Second))
	ctx := context.Background()
	const key = "team:acme"
	redisCount := func() int64 {
		n, _ := live.Get(ctx, DefaultKeyPrefix+key).Int64()
		return n
	}

	for range 2 {
		if _, err := f.Allow(ctx, key, 100); err != nil {
			t.Fatal(err)
		}
	}
	redisLimiter.Set(NewRedis(live, time.Hour)) // Redis is back

	clk.Advance(4 * time.Second)
	d, _ := f.Allow(ctx, key, 100)
	checkDecision(t, "within the cooldown", d, true, 100, 97) // memory's third
	if n := primary.calls.Load(); n != 1 || redisCount() != 0 {
		t.Fatalf("Redis asked during the cooldown (calls %d, count %d)", n, redisCount())
	}

	clk.Advance(time.Second)
	d, _ = f.Allow(ctx, key, 100)
	// Redis has its own count: the requests answered from memory during
	// the outage were per replica and are not carried over.
	checkDecision(t, "after the cooldown", d, true, 100, 99)
	if redisCount() != 1 {
		t.Fatalf("Redis counter = %d, want 1", redisCount())
	}
	d, _ = f.Allow(ctx, key, 100)
	checkDecision(t, "next call", d, true, 100, 98)
	if redisCount() != 2 {
		t.Fatalf("Redis counter = %d, want 2", redisCount())
	}
	if got := counterValue(t, reg, FallbackMetric); got != 3 {
		t.Errorf("%s = %v, want 3 (only the outage's calls)", FallbackMetric, got)
	}
	if info := logs.atLevel(slog.LevelInfo); len(info) != 1 {
		t.Errorf("%d recovery notices, want 1: %+v", len(info), info)
	}
}

// TestFailoverProbesWithOneCaller checks that after the cooldown only one
// request waits for a possibly hanging Redis while the others are answered
// from memory.
func TestFailoverProbesWithOneCaller(t *testing.T) {
	clk := newFakeClock()
	entered, release := make(chan struct{}), make(chan struct{})
	calls := 0 // only touched by the primary, which runs one call at a time here
	primary := funcLimiter(func(ctx context.Context, key string, limit int64) (Decision, error) {
		calls++
		if calls == 2 { // the probe
			close(entered)
			<-release
		}
		return errLimiter(ctx, key, limit)
	})
	f := NewFailover(primary, NewMemory(time.Hour, WithClock(clk.Now)), slog.New(&recordingHandler{}), nil,
		WithClock(clk.Now), WithCooldown(time.Second))
	ctx := context.Background()

	f.Allow(ctx, "team:acme", 10) // fails, opens the circuit
	clk.Advance(time.Second)
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.Allow(ctx, "team:acme", 10) // the probe, held inside Redis
	}()
	<-entered
	d, err := f.Allow(ctx, "team:acme", 10)
	if err != nil || !d.Allowed {
		t.Fatalf("concurrent call during the probe: %+v, %v", d, err)
	}
	close(release)
	<-done
	if calls != 2 {
		t.Fatalf("primary called %d times, want 2 (the failure and the probe)", calls)
	}
}

// TestFailoverIgnoresCallerCancellation checks that a client hanging up
// while Redis is asked does not make the other requests skip Redis.
func TestFailoverIgnoresCallerCancellation(t *testing.T) {
	clk := newFakeClock()
	logs := &recordingHandler{}
	calls := 0
	primary := funcLimiter(func(ctx context.Context, key string, limit int64) (Decision, error) {
		calls++
		if err := ctx.Err(); err != nil {
			return Decision{}, err
		}
		return Decision{Allowed: true, Limit: limit, Remaining: 42, Reset: time.Minute}, nil
	})
	f := NewFailover(primary, NewMemory(time.Hour, WithClock(clk.Now)), slog.New(logs), nil, WithClock(clk.Now))

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if d, err := f.Allow(cancelled, "team:acme", 100); err != nil || d.Remaining != 99 {
		t.Fatalf("cancelled call: %+v, %v; want an answer from memory", d, err)
	}
	d, err := f.Allow(context.Background(), "team:acme", 100)
	if err != nil || d.Remaining != 42 || calls != 2 {
		t.Fatalf("next call: %+v, %v after %d primary calls; want the primary's answer", d, err, calls)
	}
	if w := logs.atLevel(slog.LevelWarn); len(w) != 0 {
		t.Errorf("cancellation logged as a Redis failure: %+v", w)
	}
}

// TestFailoverAllowsWhenBothFail checks the last resort: no limiter can
// answer, and the request goes through instead of failing.
func TestFailoverAllowsWhenBothFail(t *testing.T) {
	logs := &recordingHandler{}
	f := NewFailover(errLimiter, errLimiter, slog.New(logs), nil)
	d, err := f.Allow(context.Background(), "team:acme", 100)
	if err != nil {
		t.Fatalf("error %v; Failover must never return one", err)
	}
	checkDecision(t, "both failing", d, true, 100, 100)
	if len(logs.atLevel(slog.LevelError)) != 1 {
		t.Errorf("fallback failure not logged as an error")
	}
}

// TestFailoverSharesMetricOnOneRegistry covers two gateways in one process
// registering with the same registry.
func TestFailoverSharesMetricOnOneRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	a := NewFailover(errLimiter, NewMemory(time.Hour), slog.New(&recordingHandler{}), reg)
	b := NewFailover(errLimiter, NewMemory(time.Hour), slog.New(&recordingHandler{}), reg)
	a.Allow(context.Background(), "team:acme", 10)
	b.Allow(context.Background(), "team:acme", 10)
	if got := counterValue(t, reg, FallbackMetric); got != 2 {
		t.Fatalf("%s = %v, want 2", FallbackMetric, got)
	}

	clash := prometheus.NewRegistry()
	clash.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: FallbackMetric, Help: "not ours"}))
	defer func() {
		if recover() == nil {
			t.Error("NewFailover accepted a different collector under its metric name")
		}
	}()
	NewFailover(errLimiter, NewMemory(time.Hour), nil, clash)
}
