package probe

import (
	"math/rand/v2"
	"sync"
	"time"
)

// BackoffPolicy is how long to wait before restarting an instance that
// died, Kubernetes' CrashLoopBackOff with its numbers as parameters: the
// n-th restart in a row waits Initial × Factor^(n-1), at most Max, less a
// random Jitter fraction of it (so instances that died together do not
// restart together, and no wait is longer than Kubernetes' own); an
// instance that ran StableAfter before dying starts the sequence over.
type BackoffPolicy struct {
	// Initial is the first wait; Kubernetes: 10 s.
	Initial time.Duration
	// Max caps the wait; Kubernetes: 5 min.
	Max time.Duration
	// Factor multiplies the wait at each restart in a row; Kubernetes: 2.
	Factor float64
	// Jitter is the largest fraction taken off a wait, in [0, 1);
	// Kubernetes has none, Slipway's default is 0.1.
	Jitter float64
	// StableAfter is how long an instance must have run for its next
	// death to count as a first one again; Kubernetes: 10 min (twice
	// Max).
	StableAfter time.Duration
}

// DefaultBackoffPolicy is Kubernetes' CrashLoopBackOff (10 s doubling to
// 5 min, reset after 10 min of running) with 10% jitter.
func DefaultBackoffPolicy() BackoffPolicy {
	return BackoffPolicy{Initial: 10 * time.Second, Max: 5 * time.Minute, Factor: 2, Jitter: 0.1, StableAfter: 10 * time.Minute}
}

// Backoff tracks the restarts in a row of one instance. It is safe for
// concurrent use.
type Backoff struct {
	policy BackoffPolicy
	// rand returns a number in [0, 1); tests replace it.
	rand func() float64

	mu       sync.Mutex
	restarts int
}

// NewBackoff returns a Backoff following policy (start from
// DefaultBackoffPolicy and change what differs). Durations and a Factor
// below 1 that make no sense take the default's value; a Jitter of 0
// means none, and one outside [0, 1) the default's.
func NewBackoff(policy BackoffPolicy) *Backoff {
	d := DefaultBackoffPolicy()
	if policy.Initial <= 0 {
		policy.Initial = d.Initial
	}
	if policy.Max <= 0 {
		policy.Max = d.Max
	}
	if policy.Max < policy.Initial {
		policy.Max = policy.Initial
	}
	if policy.Factor < 1 {
		policy.Factor = d.Factor
	}
	if policy.Jitter < 0 || policy.Jitter >= 1 {
		policy.Jitter = d.Jitter
	}
	if policy.StableAfter <= 0 {
		policy.StableAfter = d.StableAfter
	}
	return &Backoff{policy: policy, rand: rand.Float64}
}

// Policy returns the policy in force, defaults filled in.
func (b *Backoff) Policy() BackoffPolicy { return b.policy }

// Next records that the instance started at startedAt died at diedAt and
// returns how long to wait before starting it again.
func (b *Backoff) Next(startedAt, diedAt time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if diedAt.Sub(startedAt) >= b.policy.StableAfter {
		b.restarts = 0
	}
	b.restarts++
	wait := float64(b.policy.Initial)
	for i := 1; i < b.restarts && wait < float64(b.policy.Max); i++ {
		wait *= b.policy.Factor
	}
	wait = min(wait, float64(b.policy.Max))
	wait -= wait * b.policy.Jitter * b.rand()
	return time.Duration(wait)
}

// Restarts is the number of restarts in a row counted so far.
func (b *Backoff) Restarts() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.restarts
}

// Reset forgets the restarts in a row (say, after a new deployment).
func (b *Backoff) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.restarts = 0
}
