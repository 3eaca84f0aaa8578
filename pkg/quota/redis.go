package quota

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultKeyPrefix is prepended to every quota key in Redis, so quota
// counters are recognisable and cannot collide with other data in the same
// database.
const DefaultKeyPrefix = "slipway:quota:"

// allowScript counts a request and reports the window's count and the
// milliseconds left in it. It is one script so that the increment, the
// start of the window and the read of its remaining time are atomic across
// all gateway replicas: two replicas cannot both see a fresh counter, and a
// counter can never be left without an expiry by a replica dying between
// INCR and PEXPIRE.
//
// The expiry is set only when the counter was just created, so the window
// starts at the first request and later requests (allowed or refused) do
// not push its end back. A counter found without an expiry (which only an
// operator's PERSIST or SET could cause) gets a fresh window rather than
// blocking its key forever.
//
// KEYS[1]: the counter; ARGV[1]: the window in milliseconds.
// Returns {count, pttl}.
var allowScript = redis.NewScript(`
local count = redis.call('INCR', KEYS[1])
if count == 1 then
	redis.call('PEXPIRE', KEYS[1], ARGV[1])
	return {count, tonumber(ARGV[1])}
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
	redis.call('PEXPIRE', KEYS[1], ARGV[1])
	ttl = tonumber(ARGV[1])
end
return {count, ttl}
`)

// RedisOption configures NewRedis.
type RedisOption interface{ applyRedis(*Redis) }

// KeyPrefixOption replaces DefaultKeyPrefix, e.g. so that two Slipway
// installations can share one Redis database without sharing quotas.
type KeyPrefixOption string

// WithKeyPrefix makes the limiter store key's counter under prefix+key.
func WithKeyPrefix(prefix string) KeyPrefixOption { return KeyPrefixOption(prefix) }

func (o KeyPrefixOption) applyRedis(r *Redis) { r.prefix = string(o) }

// Redis is a Limiter whose counters live in Redis, so that every gateway
// replica using the same Redis shares one quota per key. Time is Redis's:
// windows end when their key expires there, whatever the replicas' clocks
// say.
type Redis struct {
	client redis.UniversalClient
	window time.Duration
	prefix string
}

// NewRedis returns a limiter that keeps fixed windows of the given length
// in Redis through client. It panics if window is shorter than a
// millisecond, the resolution of Redis expiries.
func NewRedis(client redis.UniversalClient, window time.Duration, opts ...RedisOption) *Redis {
	if window < time.Millisecond {
		panic(fmt.Sprintf("quota.NewRedis: window must be at least 1ms, got %v", window))
	}
	r := &Redis{client: client, window: window, prefix: DefaultKeyPrefix}
	for _, o := range opts {
		o.applyRedis(r)
	}
	return r
}

// Allow counts a request for key in Redis and decides it against limit.
// Refused requests are counted too: the window still ends when it began
// plus the window length, so a flood cannot earn a fresh window, and the
// count stays a true record of the traffic. It returns an error only when
// Redis cannot be asked; Failover turns that into a local decision.
func (r *Redis) Allow(ctx context.Context, key string, limit int64) (Decision, error) {
	res, err := allowScript.Run(ctx, r.client, []string{r.prefix + key}, r.window.Milliseconds()).Int64Slice()
	if err != nil {
		return Decision{}, fmt.Errorf("quota: redis: %w", err)
	}
	if len(res) != 2 {
		return Decision{}, fmt.Errorf("quota: redis: script returned %d values, want 2", len(res))
	}
	return decide(res[0], limit, time.Duration(res[1])*time.Millisecond), nil
}
