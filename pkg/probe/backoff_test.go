package probe

import (
	"testing"
	"time"
)

// Kubernetes' CrashLoopBackOff: 10 s, 20 s, 40 s, … capped at 5 min.
func TestBackoffDoublesToTheCap(t *testing.T) {
	p := DefaultBackoffPolicy()
	p.Jitter = 0
	b := NewBackoff(p)
	start := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	want := []time.Duration{10, 20, 40, 80, 160, 300, 300, 300}
	for i, w := range want {
		// each run dies after a minute: not stable
		if got := b.Next(start, start.Add(time.Minute)); got != w*time.Second {
			t.Fatalf("restart %d: %v, want %v", i+1, got, w*time.Second)
		}
	}
	if b.Restarts() != len(want) {
		t.Fatalf("Restarts %d", b.Restarts())
	}
}

// An instance that ran StableAfter before dying starts the sequence over.
func TestBackoffResetsAfterAStablePeriod(t *testing.T) {
	b := NewBackoff(BackoffPolicy{Initial: time.Second, Max: time.Minute, Factor: 3, StableAfter: 10 * time.Minute})
	b.rand = func() float64 { return 0 }
	start := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	for i, w := range []time.Duration{1, 3, 9} {
		if got := b.Next(start, start.Add(time.Second)); got != w*time.Second {
			t.Fatalf("restart %d: %v, want %vs", i+1, got, w)
		}
	}
	if got := b.Next(start, start.Add(10*time.Minute-time.Second)); got != 27*time.Second {
		t.Fatalf("just short of stable: %v, want 27s", got)
	}
	if got := b.Next(start, start.Add(10*time.Minute)); got != time.Second {
		t.Fatalf("after a stable run: %v, want 1s", got)
	}
	if got := b.Next(start, start.Add(time.Second)); got != 3*time.Second {
		t.Fatalf("next: %v, want 3s", got)
	}
	b.Reset()
	if got := b.Next(start, start.Add(time.Second)); got != time.Second || b.Restarts() != 1 {
		t.Fatalf("after Reset: %v (restarts %d), want 1s", got, b.Restarts())
	}
}

// Jitter takes up to its fraction off a wait, never adds to it, so the cap
// holds.
func TestBackoffJitter(t *testing.T) {
	b := NewBackoff(DefaultBackoffPolicy())
	r := 0.999
	b.rand = func() float64 { return r }
	start := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	if got := b.Next(start, start); got <= 9*time.Second || got >= 10*time.Second {
		t.Fatalf("first wait %v, want in (9s, 10s)", got)
	}
	for range 10 {
		b.Next(start, start)
	}
	r = 0
	if got := b.Next(start, start); got != 5*time.Minute {
		t.Fatalf("capped wait %v, want 5m", got)
	}
	// the real random source stays within bounds
	b = NewBackoff(DefaultBackoffPolicy())
	for range 100 {
		b.Reset()
		if got := b.Next(start, start); got <= 9*time.Second || got > 10*time.Second {
			t.Fatalf("wait %v outside (9s, 10s]", got)
		}
	}
}

func TestNewBackoffFillsNonsense(t *testing.T) {
	got := NewBackoff(BackoffPolicy{Initial: -1, Factor: 0.5, Jitter: 2}).Policy()
	d := DefaultBackoffPolicy()
	if got != d {
		t.Fatalf("policy %+v, want the default %+v", got, d)
	}
	got = NewBackoff(BackoffPolicy{Initial: time.Minute, Max: time.Second}).Policy()
	if got.Max != time.Minute || got.Jitter != 0 {
		t.Fatalf("policy %+v, want Max raised to Initial and no jitter", got)
	}
}
