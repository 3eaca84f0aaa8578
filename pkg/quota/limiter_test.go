package quota

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pkg/testenv"
)

// windowEnv is what the shared window tests need from a limiter under
// test: a way to make one with a given window, and the time it lives in.
// Memory lives on a fake clock (sleep advances it); Redis lives in real
// time, because its windows end when Redis expires the key.
type windowEnv struct {
	limiter func(window time.Duration) Limiter
	now     func() time.Time
	sleep   func(time.Duration)
}

// allow calls l.Allow and also returns the env's time just before and just
// after the call, which bound the instant at which the limiter saw it.
func (e windowEnv) allow(t *testing.T, l Limiter, key string, limit int64) (d Decision, before, after time.Time) {
	t.Helper()
	before = e.now()
	d, err := l.Allow(context.Background(), key, limit)
	after = e.now()
	if err != nil {
		t.Fatalf("Allow(%q, %d): %v", key, limit, err)
	}
	return d, before, after
}

// resetSlack absorbs Redis's millisecond resolution: PTTL is truncated to
// whole milliseconds, and expiry instants are stored in milliseconds.
const resetSlack = 2 * time.Millisecond

// checkReset asserts that d.Reset is the time left in a window of length
// window that began during the call bracketed by start0..start1, as seen by
// a call bracketed by q0..q1. The bounds come from the measured times, not
// from expectations about speed, so a slow machine cannot fail it.
func checkReset(t *testing.T, d Decision, window time.Duration, start0, start1, q0, q1 time.Time) {
	t.Helper()
	lo := window - q1.Sub(start0) - resetSlack
	hi := window - q0.Sub(start1) + resetSlack
	if d.Reset < lo || d.Reset > hi {
		t.Errorf("Reset = %v, want the time left in the window, within [%v, %v]", d.Reset, lo, hi)
	}
}

// checkDecision compares the counting fields of a decision.
func checkDecision(t *testing.T, what string, d Decision, allowed bool, limit, remaining int64) {
	t.Helper()
	if d.Allowed != allowed || d.Limit != limit || d.Remaining != remaining {
		t.Fatalf("%s: got Allowed=%v Limit=%d Remaining=%d, want %v %d %d",
			what, d.Allowed, d.Limit, d.Remaining, allowed, limit, remaining)
	}
}

// runWindowTests is the behaviour every Limiter must share, so that the
// gateway enforces the same quota whether it runs alone, with Redis, or on
// the fallback during a Redis outage.
func runWindowTests(t *testing.T, env func(t *testing.T) windowEnv) {
	ctx := context.Background()
	tests := []struct {
		name string
		run  func(t *testing.T, e windowEnv, key string)
	}{
		{"first request starts the window", func(t *testing.T, e windowEnv, key string) {
			const window = time.Hour
			l := e.limiter(window)
			d, s0, s1 := e.allow(t, l, key, 1000)
			checkDecision(t, "first request", d, true, 1000, 999)
			checkReset(t, d, window, s0, s1, s0, s1)
		}},
		{"remaining counts down and request 1001 is refused", func(t *testing.T, e windowEnv, key string) {
			const window = time.Hour
			l := e.limiter(window)
			d, s0, s1 := e.allow(t, l, key, 1000)
			checkDecision(t, "request 1", d, true, 1000, 999)
			e.sleep(100 * time.Millisecond)
			for i := int64(2); i <= 1000; i++ {
				d, err := l.Allow(ctx, key, 1000)
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				checkDecision(t, "request "+itoa64(i), d, true, 1000, 1000-i)
			}
			d, q0, q1 := e.allow(t, l, key, 1000)
			checkDecision(t, "request 1001", d, false, 1000, 0)
			checkReset(t, d, window, s0, s1, q0, q1)
			if d.ResetSeconds() < 1 {
				t.Errorf("ResetSeconds = %d, want at least 1 for Retry-After", d.ResetSeconds())
			}
			d, _, _ = e.allow(t, l, key, 1000)
			checkDecision(t, "request 1002", d, false, 1000, 0)
		}},
		{"later requests do not extend the window", func(t *testing.T, e windowEnv, key string) {
			const window = 1500 * time.Millisecond
			l := e.limiter(window)
			_, s0, s1 := e.allow(t, l, key, 10)
			e.sleep(500 * time.Millisecond)
			d, q0, q1 := e.allow(t, l, key, 10)
			checkDecision(t, "second request", d, true, 10, 8)
			checkReset(t, d, window, s0, s1, q0, q1)
		}},
		{"a new window starts after the window ends", func(t *testing.T, e windowEnv, key string) {
			const window = 1500 * time.Millisecond
			l := e.limiter(window)
			for i := int64(1); i <= 3; i++ {
				d, _, _ := e.allow(t, l, key, 3)
				checkDecision(t, "request "+itoa64(i), d, true, 3, 3-i)
			}
			d, _, _ := e.allow(t, l, key, 3)
			checkDecision(t, "request 4", d, false, 3, 0)
			e.sleep(d.Reset)
			// Redis expires keys on its own schedule, a little after the
			// deadline at worst, so poll until the new window has begun.
			// Requests that still land in the old window are refused and
			// counted there, which does not affect the new one.
			var q0, q1 time.Time
			for attempt := 0; ; attempt++ {
				d, q0, q1 = e.allow(t, l, key, 3)
				if d.Allowed {
					break
				}
				if attempt == 500 {
					t.Fatalf("still refused after the window ended: %+v", d)
				}
				e.sleep(20 * time.Millisecond)
			}
			checkDecision(t, "first request of the new window", d, true, 3, 2)
			checkReset(t, d, window, q0, q1, q0, q1)
		}},
		{"keys have separate quotas", func(t *testing.T, e windowEnv, key string) {
			l := e.limiter(time.Hour)
			for range 3 {
				e.allow(t, l, key+":a", 2)
			}
			d, _, _ := e.allow(t, l, key+":b", 2)
			checkDecision(t, "other key", d, true, 2, 1)
		}},
		{"refused requests count and the limit follows each call", func(t *testing.T, e windowEnv, key string) {
			l := e.limiter(time.Hour)
			for range 5 { // 3 allowed, 2 refused
				e.allow(t, l, key, 3)
			}
			// An upgrade mid-window: the 6th request fits a limit of 10.
			d, _, _ := e.allow(t, l, key, 10)
			checkDecision(t, "request 6 at limit 10", d, true, 10, 4)
			d, _, _ = e.allow(t, l, key, 5)
			checkDecision(t, "request 7 at limit 5", d, false, 5, 0)
		}},
		{"a limit of zero or less refuses", func(t *testing.T, e windowEnv, key string) {
			l := e.limiter(time.Hour)
			d, _, _ := e.allow(t, l, key, 0)
			checkDecision(t, "limit 0", d, false, 0, 0)
			d, _, _ = e.allow(t, l, key, -5)
			checkDecision(t, "limit -5", d, false, 0, 0)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // the Redis cases sleep through short windows
			tc.run(t, env(t), "team:"+t.Name())
		})
	}
}

func itoa64(n int64) string { return strconv.FormatInt(n, 10) }

func TestMemoryWindows(t *testing.T) {
	runWindowTests(t, func(t *testing.T) windowEnv {
		clk := newFakeClock()
		return windowEnv{
			limiter: func(window time.Duration) Limiter { return NewMemory(window, WithClock(clk.Now)) },
			now:     clk.Now,
			sleep:   clk.Advance,
		}
	})
}

func TestRedisWindows(t *testing.T) {
	client := redisClient(t, testenv.Redis(t))
	runWindowTests(t, func(t *testing.T) windowEnv {
		return windowEnv{
			limiter: func(window time.Duration) Limiter { return NewRedis(client, window) },
			now:     time.Now,
			sleep:   time.Sleep,
		}
	})
}

// TestMemoryWindowBoundary pins the exact end of a window, which only the
// fake clock can reach: the window is half-open, so its last nanosecond
// still belongs to it and its end instant starts the next one.
func TestMemoryWindowBoundary(t *testing.T) {
	clk := newFakeClock()
	m := NewMemory(time.Minute, WithClock(clk.Now))
	ctx := context.Background()
	m.Allow(ctx, "team:acme", 1)
	clk.Advance(time.Minute - time.Nanosecond)
	d, _ := m.Allow(ctx, "team:acme", 1)
	checkDecision(t, "last instant of the window", d, false, 1, 0)
	if d.Reset != time.Nanosecond || d.ResetSeconds() != 1 {
		t.Errorf("Reset = %v (%ds), want 1ns (1s)", d.Reset, d.ResetSeconds())
	}
	clk.Advance(time.Nanosecond)
	d, _ = m.Allow(ctx, "team:acme", 1)
	checkDecision(t, "end of the window", d, true, 1, 0)
	if d.Reset != time.Minute {
		t.Errorf("Reset = %v, want a full new window", d.Reset)
	}
}

// TestMemorySweepsExpiredWindows checks that keys that stopped sending
// requests do not stay in memory forever.
func TestMemorySweepsExpiredWindows(t *testing.T) {
	clk := newFakeClock()
	m := NewMemory(time.Hour, WithClock(clk.Now))
	ctx := context.Background()
	for i := range 1000 {
		m.Allow(ctx, "user:"+itoa64(int64(i)), 10)
	}
	clk.Advance(30 * time.Minute)
	m.Allow(ctx, "team:late", 10) // started mid-way, must survive the sweep
	clk.Advance(30 * time.Minute)
	m.Allow(ctx, "team:acme", 10)
	m.mu.Lock()
	n := len(m.counters)
	m.mu.Unlock()
	if n != 2 {
		t.Fatalf("%d counters kept after the windows ended, want 2 (team:late, team:acme)", n)
	}
	d, _ := m.Allow(ctx, "team:late", 10)
	checkDecision(t, "team:late after the sweep", d, true, 10, 8)
}

// runSharedQuota hammers one key from goroutines spread over limiters and
// checks that exactly limit requests were allowed, each seeing a distinct
// Remaining, which is only possible if every count was atomic.
func runSharedQuota(t *testing.T, limiters []Limiter) {
	const goroutines, perGoroutine, limit = 8, 50, 137
	var (
		wg        sync.WaitGroup
		allowed   atomic.Int64
		mu        sync.Mutex
		remaining = map[int64]bool{}
	)
	for g := range goroutines {
		wg.Go(func() {
			l := limiters[g%len(limiters)]
			for range perGoroutine {
				d, err := l.Allow(context.Background(), "team:shared", limit)
				if err != nil {
					t.Errorf("Allow: %v", err)
					return
				}
				if d.Remaining < 0 || d.Limit != limit {
					t.Errorf("bad decision %+v", d)
				}
				if d.Allowed {
					allowed.Add(1)
					mu.Lock()
					if remaining[d.Remaining] {
						t.Errorf("Remaining=%d handed out twice", d.Remaining)
					}
					remaining[d.Remaining] = true
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if got := allowed.Load(); got != limit {
		t.Fatalf("%d requests allowed in total, want exactly %d", got, limit)
	}
}

// TestRedisReplicasShareOneQuota plays two gateway replicas, each with its
// own client and limiter, on one Redis.
func TestRedisReplicasShareOneQuota(t *testing.T) {
	url := testenv.Redis(t)
	a, b := redisClient(t, url), redisClient(t, url)
	runSharedQuota(t, []Limiter{NewRedis(a, time.Hour), NewRedis(b, time.Hour)})
	// Refused requests were counted too.
	n, err := a.Get(context.Background(), DefaultKeyPrefix+"team:shared").Int64()
	if err != nil || n != 8*50 {
		t.Fatalf("counter = %d, %v; want %d", n, err, 8*50)
	}
}

func TestMemoryIsAtomic(t *testing.T) {
	runSharedQuota(t, []Limiter{NewMemory(time.Hour)})
}

// TestRedisHealsCounterWithoutExpiry covers a counter that lost its expiry
// (an operator's SET or PERSIST): it must not block the key forever.
func TestRedisHealsCounterWithoutExpiry(t *testing.T) {
	client := redisClient(t, testenv.Redis(t))
	ctx := context.Background()
	if err := client.Set(ctx, DefaultKeyPrefix+"team:acme", 5, 0).Err(); err != nil {
		t.Fatal(err)
	}
	l := NewRedis(client, time.Hour)
	d, err := l.Allow(ctx, "team:acme", 10)
	if err != nil {
		t.Fatal(err)
	}
	checkDecision(t, "counter without expiry", d, true, 10, 4)
	if d.Reset != time.Hour {
		t.Errorf("Reset = %v, want a full window", d.Reset)
	}
	if ttl := client.PTTL(ctx, DefaultKeyPrefix+"team:acme").Val(); ttl <= 0 {
		t.Errorf("PTTL = %v, want an expiry", ttl)
	}
}

// TestRedisReloadsScript covers a Redis that lost its script cache (a
// restart, SCRIPT FLUSH, a failover to a replica): EVALSHA fails with
// NOSCRIPT and the limiter must fall back to EVAL rather than error.
func TestRedisReloadsScript(t *testing.T) {
	client := redisClient(t, testenv.Redis(t))
	ctx := context.Background()
	l := NewRedis(client, time.Hour, WithKeyPrefix("other:"))
	if _, err := l.Allow(ctx, "team:acme", 10); err != nil {
		t.Fatal(err)
	}
	if err := client.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	d, err := l.Allow(ctx, "team:acme", 10)
	if err != nil {
		t.Fatalf("after SCRIPT FLUSH: %v", err)
	}
	checkDecision(t, "after SCRIPT FLUSH", d, true, 10, 8)
	if n, _ := client.Get(ctx, "other:team:acme").Int64(); n != 2 {
		t.Errorf("counter under the custom prefix = %d, want 2", n)
	}
}

func TestConstructorsRejectUnusableWindows(t *testing.T) {
	for name, f := range map[string]func(){
		"NewMemory(0)":    func() { NewMemory(0) },
		"NewRedis(500µs)": func() { NewRedis(deadRedisClient(t), 500*time.Microsecond) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s did not panic", name)
				}
			}()
			f()
		}()
	}
}
