package quota

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/slipwayhq/slipway/pkg/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// fakeClock is a clock that moves only when told, so window and cooldown
// logic can be tested without sleeping.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// redisClient connects to url (from testenv.Redis) and closes the client
// when the test ends.
func redisClient(t *testing.T, url string) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	c := redis.NewClient(opts)
	t.Cleanup(func() { c.Close() })
	return c
}

// deadRedisClient returns a client for a loopback port nobody listens on,
// so every command fails at once with "connection refused". Command and
// dial retries are off because they would only slow the failure down
// (go-redis otherwise dials 5 times, 100ms apart).
func deadRedisClient(t *testing.T) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{
		Addr:          "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t)),
		MaxRetries:    -1,
		DialerRetries: 1,
		DialTimeout:   time.Second,
	})
	t.Cleanup(func() { c.Close() })
	return c
}

// countingLimiter counts the calls that reach the wrapped limiter, so tests
// can tell whether Failover asked its primary.
type countingLimiter struct {
	Limiter
	calls atomic.Int64
}

func (c *countingLimiter) Allow(ctx context.Context, key string, limit int64) (Decision, error) {
	c.calls.Add(1)
	return c.Limiter.Allow(ctx, key, limit)
}

// swappableLimiter forwards to a limiter that the test can replace, which
// stands in for Redis coming back at the same address.
type swappableLimiter struct {
	mu sync.Mutex
	l  Limiter
}

func (s *swappableLimiter) Set(l Limiter) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.l = l
}

func (s *swappableLimiter) Allow(ctx context.Context, key string, limit int64) (Decision, error) {
	s.mu.Lock()
	l := s.l
	s.mu.Unlock()
	return l.Allow(ctx, key, limit)
}

// funcLimiter adapts a function to Limiter.
type funcLimiter func(ctx context.Context, key string, limit int64) (Decision, error)

func (f funcLimiter) Allow(ctx context.Context, key string, limit int64) (Decision, error) {
	return f(ctx, key, limit)
}

// errLimiter always fails, like a Redis limiter during an outage.
var errLimiter = funcLimiter(func(context.Context, string, int64) (Decision, error) {
	return Decision{}, errors.New("connection refused")
})

// logRecord is one captured log line.
type logRecord struct {
	level slog.Level
	msg   string
	attrs map[string]slog.Value
}

// recordingHandler captures log records so tests can count warnings.
type recordingHandler struct {
	mu      sync.Mutex
	records []logRecord
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	rec := logRecord{level: r.Level, msg: r.Message, attrs: map[string]slog.Value{}}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value
		return true
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, rec)
	return nil
}

func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler      { return h }

// atLevel returns the captured records of one level.
func (h *recordingHandler) atLevel(level slog.Level) []logRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []logRecord
	for _, r := range h.records {
		if r.level == level {
			out = append(out, r)
		}
	}
	return out
}

// counterValue reads a counter from reg by name; 0 if it has no sample.
func counterValue(t *testing.T, reg prometheus.Gatherer, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, f := range families {
		if f.GetName() == name {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}
