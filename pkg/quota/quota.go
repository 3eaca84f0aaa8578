// Package quota decides whether a caller (a team, or a user for personal
// tokens) may make another request in the current hourly window, so that the
// gateway can enforce per-plan request quotas and tell clients where they
// stand through the x-ratelimit-* headers.
//
// The window is fixed, not sliding: it starts at a key's first request and
// ends one window later, whatever happens in between. That is what the API
// promises to clients (x-ratelimit-reset counts down to one instant) and it
// needs a single counter per key, which Redis can keep atomically for all
// gateway replicas.
//
// Three limiters implement the same rules: Redis (shared by all replicas),
// Memory (one process; the default without Redis, and the fallback during a
// Redis outage) and Failover, which joins the two so that a Redis outage
// degrades quotas to per-replica instead of failing requests.
package quota

import (
	"context"
	"net/http"
	"strconv"
	"time"
)

// DefaultLimit is the number of requests per window a caller gets when
// neither SLIPWAY_RATE_LIMIT_PER_HOUR nor its plan says otherwise.
const DefaultLimit int64 = 1000

// DefaultWindow is the length of a quota window. Limits are stated per hour
// in configuration and plans, so the gateway uses this window; the limiters
// take the window as a parameter only so that tests can use short ones.
const DefaultWindow = time.Hour

// Limiter counts one request against key's quota in the current window and
// says whether it may proceed.
//
// The key names who pays for the request, e.g. "team:acme" or "user:42".
// The limit is passed on every call rather than configured per key because
// it follows the caller's plan, which the gateway learns from the token at
// request time and which may change (an upgrade takes effect at once, within
// the running window).
type Limiter interface {
	Allow(ctx context.Context, key string, limit int64) (Decision, error)
}

// Decision is a limiter's answer for one request, with everything the
// gateway needs for the rate-limit headers.
type Decision struct {
	// Allowed is false when the request exceeds the limit and must be
	// answered with 429.
	Allowed bool
	// Limit is the number of requests allowed in the window.
	Limit int64
	// Remaining is how many more requests the window allows; never
	// negative, even though refused requests are counted too.
	Remaining int64
	// Reset is the time left until the current window ends and a new one
	// may start.
	Reset time.Duration
}

// ResetSeconds is Reset in whole seconds, rounded up: a client that waits
// that long is sure to find the window over, whereas rounding down would
// invite a retry that is refused again.
func (d Decision) ResetSeconds() int64 {
	if d.Reset <= 0 {
		return 0
	}
	return int64((d.Reset + time.Second - 1) / time.Second)
}

// Headers sets X-Ratelimit-Limit, X-Ratelimit-Remaining and
// X-Ratelimit-Reset (seconds until the window resets) on h, and Retry-After
// with the same seconds when the request is refused. The gateway calls it
// for every response, errors included, so clients can always pace
// themselves.
func (d Decision) Headers(h http.Header) {
	reset := strconv.FormatInt(d.ResetSeconds(), 10)
	h.Set("X-Ratelimit-Limit", strconv.FormatInt(d.Limit, 10))
	h.Set("X-Ratelimit-Remaining", strconv.FormatInt(d.Remaining, 10))
	h.Set("X-Ratelimit-Reset", reset)
	if !d.Allowed {
		h.Set("Retry-After", reset)
	}
}

// decide turns the request count of a window into a Decision, in one place
// so that every limiter applies the limit identically. A limit below zero
// is treated as zero (every request refused) rather than as an error, so
// that a misconfigured plan can never make the gateway fail requests.
func decide(count, limit int64, reset time.Duration) Decision {
	limit = max(limit, 0)
	return Decision{
		Allowed:   count <= limit,
		Limit:     limit,
		Remaining: max(limit-count, 0),
		Reset:     max(reset, 0),
	}
}

// ClockOption injects the clock that a Memory or Failover reads instead of
// time.Now, so that tests can move through windows and cooldowns without
// sleeping. It is one type for both so that a test can pass the same
// WithClock value to each.
type ClockOption struct{ now func() time.Time }

// WithClock makes the limiter read now instead of time.Now; nil keeps
// time.Now.
func WithClock(now func() time.Time) ClockOption { return ClockOption{now: now} }

func (o ClockOption) applyMemory(m *Memory) {
	if o.now != nil {
		m.now = o.now
	}
}

func (o ClockOption) applyFailover(f *Failover) {
	if o.now != nil {
		f.now = o.now
	}
}

// The limiters are used through Limiter; these fail the build, rather than
// the gateway's, if one stops satisfying it.
var (
	_ Limiter = (*Memory)(nil)
	_ Limiter = (*Redis)(nil)
	_ Limiter = (*Failover)(nil)
)
