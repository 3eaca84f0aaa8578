package quota

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Backoff locks a key out after repeated failures (wrong passwords, wrong
// client secrets), for exponentially longer at each further failure:
// Policy.Free failures cost nothing; failure Free+1 locks the key for
// Policy.Base, the next for twice that, and so on up to Policy.Max. A key
// without a failure for Policy.Forget starts afresh, and Reset (a success)
// forgets it at once.
//
// Where a Limiter counts requests, a Backoff counts failures only, so a
// user who signs in correctly is never slowed down by it while a guesser
// is, however slowly it guesses. Redis keeps the counts for every replica;
// Memory keeps them per process.
type Backoff interface {
	// Locked returns how long key stays locked out; zero when it is not.
	Locked(ctx context.Context, key string) (time.Duration, error)
	// Fail records a failure of key and returns the lockout it starts
	// (zero while the failures are still free).
	Fail(ctx context.Context, key string) (time.Duration, error)
	// Reset forgets key's failures.
	Reset(ctx context.Context, key string) error
}

// BackoffPolicy says how a Backoff punishes failures.
type BackoffPolicy struct {
	// Free is how many failures go unpunished.
	Free int64
	// Base is the first lockout; each further failure doubles it.
	Base time.Duration
	// Max caps a lockout.
	Max time.Duration
	// Forget is how long a key's failures are remembered after its last
	// failure (or the end of its lockout).
	Forget time.Duration
}

// lockout is the lockout that failure number n starts.
func (p BackoffPolicy) lockout(n int64) time.Duration {
	if n <= p.Free {
		return 0
	}
	d := float64(p.Base) * math.Pow(2, float64(n-p.Free-1))
	if d >= float64(p.Max) {
		return p.Max
	}
	return time.Duration(d)
}

// MemoryBackoff is a Backoff in this process: the default without Redis,
// and the fallback while Redis is unreachable.
type MemoryBackoff struct {
	policy BackoffPolicy
	now    func() time.Time

	mu   sync.Mutex
	keys map[string]backoffState
	// nextSweep bounds the map to the keys failing within Forget.
	nextSweep time.Time
}

type backoffState struct {
	failures int64
	until    time.Time // end of the lockout
	forget   time.Time // when the state is dropped
}

// NewMemoryBackoff returns an in-process Backoff; clock may be nil
// (time.Now).
func NewMemoryBackoff(p BackoffPolicy, clock func() time.Time) *MemoryBackoff {
	if clock == nil {
		clock = time.Now
	}
	return &MemoryBackoff{policy: p, now: clock, keys: map[string]backoffState{}}
}

// Locked implements Backoff.
func (m *MemoryBackoff) Locked(_ context.Context, key string) (time.Duration, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	s, ok := m.keys[key]
	if !ok || !now.Before(s.until) {
		return 0, nil
	}
	return s.until.Sub(now), nil
}

// Fail implements Backoff.
func (m *MemoryBackoff) Fail(_ context.Context, key string) (time.Duration, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if !now.Before(m.nextSweep) {
		for k, s := range m.keys {
			if !now.Before(s.forget) {
				delete(m.keys, k)
			}
		}
		m.nextSweep = now.Add(m.policy.Forget)
	}
	s := m.keys[key]
	if !now.Before(s.forget) {
		s = backoffState{}
	}
	s.failures++
	lock := m.policy.lockout(s.failures)
	if lock > 0 {
		s.until = now.Add(lock)
	}
	s.forget = now.Add(lock + m.policy.Forget)
	m.keys[key] = s
	return lock, nil
}

// Reset implements Backoff.
func (m *MemoryBackoff) Reset(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.keys, key)
	return nil
}

// backoffFailScript counts a failure and starts its lockout, atomically
// for every replica, on Redis's clock. KEYS[1]: the key's hash; ARGV:
// free, base ms, max ms, forget ms. Returns the lockout in ms.
var backoffFailScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
local free, base, max = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local lock = 0
if n > free then
	lock = base * math.pow(2, n - free - 1)
	if lock > max then lock = max end
	lock = math.floor(lock)
	redis.call('HSET', KEYS[1], 'until', now + lock)
end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]) + lock)
return lock
`)

// backoffLockedScript returns the ms left of KEYS[1]'s lockout (0: none).
var backoffLockedScript = redis.NewScript(`
local u = redis.call('HGET', KEYS[1], 'until')
if not u then return 0 end
local t = redis.call('TIME')
local left = tonumber(u) - (tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
if left < 0 then return 0 end
return left
`)

// RedisBackoff is a Backoff in Redis, shared by every replica.
type RedisBackoff struct {
	client redis.UniversalClient
	policy BackoffPolicy
	prefix string
}

// NewRedisBackoff returns a Backoff keeping its keys under prefix in
// Redis.
func NewRedisBackoff(client redis.UniversalClient, p BackoffPolicy, prefix string) *RedisBackoff {
	return &RedisBackoff{client: client, policy: p, prefix: prefix}
}

// Locked implements Backoff.
func (r *RedisBackoff) Locked(ctx context.Context, key string) (time.Duration, error) {
	ms, err := backoffLockedScript.Run(ctx, r.client, []string{r.prefix + key}).Int64()
	if err != nil {
		return 0, fmt.Errorf("backoff: redis: %w", err)
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// Fail implements Backoff.
func (r *RedisBackoff) Fail(ctx context.Context, key string) (time.Duration, error) {
	ms, err := backoffFailScript.Run(ctx, r.client, []string{r.prefix + key}, r.policy.Free,
		r.policy.Base.Milliseconds(), r.policy.Max.Milliseconds(), r.policy.Forget.Milliseconds()).Int64()
	if err != nil {
		return 0, fmt.Errorf("backoff: redis: %w", err)
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// Reset implements Backoff.
func (r *RedisBackoff) Reset(ctx context.Context, key string) error {
	if err := r.client.Del(ctx, r.prefix+key).Err(); err != nil {
		return fmt.Errorf("backoff: redis: %w", err)
	}
	return nil
}

// FailoverBackoff asks a primary Backoff (Redis) and, when it fails, a
// fallback (Memory), logging the outage at most once a minute. Like
// Failover it never returns an error: during a Redis outage each replica
// counts failures on its own.
type FailoverBackoff struct {
	primary, fallback Backoff
	log               *slog.Logger

	mu       sync.Mutex
	lastWarn time.Time
}

// NewFailoverBackoff joins primary and fallback; logger may be nil.
func NewFailoverBackoff(primary, fallback Backoff, logger *slog.Logger) *FailoverBackoff {
	if logger == nil {
		logger = slog.Default()
	}
	return &FailoverBackoff{primary: primary, fallback: fallback, log: logger}
}

func (f *FailoverBackoff) failed(err error) {
	f.mu.Lock()
	warn := time.Since(f.lastWarn) >= DefaultWarnInterval
	if warn {
		f.lastWarn = time.Now()
	}
	f.mu.Unlock()
	if warn {
		f.log.Warn("backoff: Redis unreachable; failed sign-ins are counted per replica until it answers", "error", err)
	}
}

// Locked implements Backoff; the error is always nil.
func (f *FailoverBackoff) Locked(ctx context.Context, key string) (time.Duration, error) {
	d, err := f.primary.Locked(ctx, key)
	if err == nil {
		return d, nil
	}
	f.failed(err)
	return f.fallback.Locked(ctx, key)
}

// Fail implements Backoff; the error is always nil.
func (f *FailoverBackoff) Fail(ctx context.Context, key string) (time.Duration, error) {
	d, err := f.primary.Fail(ctx, key)
	if err == nil {
		return d, nil
	}
	f.failed(err)
	return f.fallback.Fail(ctx, key)
}

// Reset implements Backoff; the error is always nil.
func (f *FailoverBackoff) Reset(ctx context.Context, key string) error {
	if err := f.primary.Reset(ctx, key); err != nil {
		f.failed(err)
	}
	return f.fallback.Reset(ctx, key)
}

var (
	_ Backoff = (*MemoryBackoff)(nil)
	_ Backoff = (*RedisBackoff)(nil)
	_ Backoff = (*FailoverBackoff)(nil)
)
