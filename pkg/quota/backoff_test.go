package quota

import (
	"context"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pkg/testenv"
)

// testBackoffRules runs the rules every Backoff shares: free failures, a
// lockout doubling at each further failure up to the cap, Reset.
func testBackoffRules(t *testing.T, b Backoff, p BackoffPolicy) {
	ctx := context.Background()
	fail := func(want time.Duration) {
		t.Helper()
		got, err := b.Fail(ctx, "acct")
		if err != nil || got != want {
			t.Fatalf("Fail = %v, %v; want %v", got, err, want)
		}
	}
	locked := func() time.Duration {
		t.Helper()
		d, err := b.Locked(ctx, "acct")
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	fail(0)
	fail(0)
	if d := locked(); d != 0 {
		t.Fatalf("locked for %v after the free failures", d)
	}
	fail(p.Base)
	if d := locked(); d <= 0 || d > p.Base {
		t.Fatalf("locked for %v after the first punished failure, want (0, %v]", d, p.Base)
	}
	fail(2 * p.Base)
	fail(4 * p.Base)
	fail(p.Max) // 8×Base, capped
	if d := locked(); d <= 2*p.Base || d > p.Max {
		t.Fatalf("locked for %v after the capped failure, want (%v, %v]", d, 2*p.Base, p.Max)
	}
	if d, _ := b.Locked(ctx, "other"); d != 0 {
		t.Fatalf("another key is locked for %v", d)
	}
	if err := b.Reset(ctx, "acct"); err != nil {
		t.Fatal(err)
	}
	if d := locked(); d != 0 {
		t.Fatalf("locked for %v after Reset", d)
	}
	fail(0)
}

func TestMemoryBackoff(t *testing.T) {
	p := BackoffPolicy{Free: 2, Base: time.Second, Max: 5 * time.Second, Forget: time.Hour}
	clock := newFakeClock()
	b := NewMemoryBackoff(p, clock.Now)
	testBackoffRules(t, b, p)

	// A lockout ends; failures are forgotten a Forget after the last one.
	ctx := context.Background()
	for range 3 {
		_, _ = b.Fail(ctx, "k")
	}
	clock.Advance(p.Base)
	if d, _ := b.Locked(ctx, "k"); d != 0 {
		t.Fatalf("still locked for %v after the lockout", d)
	}
	if d, _ := b.Fail(ctx, "k"); d != 2*p.Base {
		t.Fatalf("the failure after a lockout locks for %v, want %v (the count is kept)", d, 2*p.Base)
	}
	clock.Advance(2*p.Base + p.Forget)
	if d, _ := b.Fail(ctx, "k"); d != 0 {
		t.Fatalf("a failure after Forget locks for %v, want a fresh count", d)
	}
}

func TestRedisBackoff(t *testing.T) {
	client := redisClient(t, testenv.Redis(t))
	p := BackoffPolicy{Free: 2, Base: 200 * time.Millisecond, Max: time.Second, Forget: time.Minute}
	// A fresh prefix per run: the server may outlive one (-count=N).
	prefix := "test:backoff:" + strconv.FormatInt(time.Now().UnixNano(), 36) + ":"
	b := NewRedisBackoff(client, p, prefix)
	testBackoffRules(t, b, p)

	// The lockout ends on Redis's clock.
	ctx := context.Background()
	for range 3 {
		_, _ = b.Fail(ctx, "k")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		d, err := b.Locked(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		if d == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still locked after 10 s (lockout %v)", p.Base)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Shared: another replica (client) on the same Redis sees the count.
	url := testenv.Redis(t)
	a := NewRedisBackoff(redisClient(t, url), p, prefix+"shared:")
	c := NewRedisBackoff(redisClient(t, url), p, prefix+"shared:")
	_, _ = a.Fail(ctx, "k")
	_, _ = c.Fail(ctx, "k")
	if d, err := a.Fail(ctx, "k"); err != nil || d != p.Base {
		t.Fatalf("third failure across two replicas locks for %v, %v; want %v", d, err, p.Base)
	}
}

// TestFailoverBackoff: with Redis down, failures are counted in memory
// and nothing errs.
func TestFailoverBackoff(t *testing.T) {
	p := BackoffPolicy{Free: 1, Base: time.Minute, Max: time.Hour, Forget: time.Hour}
	b := NewFailoverBackoff(NewRedisBackoff(deadRedisClient(t), p, "x:"), NewMemoryBackoff(p, nil), slog.New(&recordingHandler{}))
	ctx := context.Background()
	if d, err := b.Fail(ctx, "k"); err != nil || d != 0 {
		t.Fatalf("Fail = %v, %v", d, err)
	}
	if d, err := b.Fail(ctx, "k"); err != nil || d != time.Minute {
		t.Fatalf("Fail = %v, %v; want a minute from the fallback", d, err)
	}
	if d, err := b.Locked(ctx, "k"); err != nil || d <= 0 {
		t.Fatalf("Locked = %v, %v", d, err)
	}
	if err := b.Reset(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if d, _ := b.Locked(ctx, "k"); d != 0 {
		t.Fatalf("locked for %v after Reset", d)
	}
}
