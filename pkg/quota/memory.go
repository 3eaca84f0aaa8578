package quota

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// MemoryOption configures NewMemory.
type MemoryOption interface{ applyMemory(*Memory) }

// Memory is a Limiter that keeps the counters in this process. It is the
// limiter of a single gateway without Redis, and the fallback that keeps
// enforcing quotas (per replica) while Redis is unreachable. It never
// returns an error.
type Memory struct {
	window time.Duration
	now    func() time.Time

	mu       sync.Mutex
	counters map[string]memCounter
	// nextSweep is when expired counters are next removed. Sweeping at most
	// once per window keeps the cost per request O(1) amortised while
	// bounding the map to the keys seen in the last two windows.
	nextSweep time.Time
}

// memCounter is one key's window: its request count and when it ends.
type memCounter struct {
	count int64
	end   time.Time
}

// NewMemory returns an in-process limiter with fixed windows of the given
// length. It panics if window is not positive, since no quota could be
// enforced with it.
func NewMemory(window time.Duration, opts ...MemoryOption) *Memory {
	if window <= 0 {
		panic(fmt.Sprintf("quota.NewMemory: window must be positive, got %v", window))
	}
	m := &Memory{window: window, now: time.Now, counters: map[string]memCounter{}}
	for _, o := range opts {
		o.applyMemory(m)
	}
	return m
}

// Allow counts a request for key and decides it against limit. A key's
// window starts with its first request (or its first after the previous
// window ended) and is not extended by later ones. Refused requests are
// counted as well, like in Redis, so both limiters report the same numbers.
func (m *Memory) Allow(_ context.Context, key string, limit int64) (Decision, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	// Read the clock under the lock so that requests are counted in the
	// order of their timestamps; otherwise a request could land in a window
	// that a later-stamped request already started.
	now := m.now()
	if !now.Before(m.nextSweep) {
		m.sweep(now)
	}
	c, ok := m.counters[key]
	if !ok || !now.Before(c.end) {
		c = memCounter{end: now.Add(m.window)}
	}
	c.count++
	m.counters[key] = c
	return decide(c.count, limit, c.end.Sub(now)), nil
}

// sweep drops the counters whose window has ended, so that memory stays
// proportional to the recently active keys rather than to every key ever
// seen. The caller holds m.mu.
func (m *Memory) sweep(now time.Time) {
	for k, c := range m.counters {
		if !now.Before(c.end) {
			delete(m.counters, k)
		}
	}
	m.nextSweep = now.Add(m.window)
}
