package quota

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultCooldown is how long Failover leaves Redis alone after it failed.
// Short enough that shared quotas come back within seconds of Redis
// recovering; long enough that an outage costs one connect timeout per
// cooldown instead of one per request.
const DefaultCooldown = 5 * time.Second

// DefaultWarnInterval is the minimum time between two "Redis unreachable"
// warnings, so that an outage is reported without flooding the log with
// one line per request.
const DefaultWarnInterval = time.Minute

// FallbackMetric is the name of the counter of decisions Failover took from
// its fallback because Redis could not be asked (or was being skipped after
// failing); alert on its rate to notice that quotas are per replica.
const FallbackMetric = "slipway_quota_fallback_total"

// FailoverOption configures NewFailover.
type FailoverOption interface{ applyFailover(*Failover) }

// CooldownOption replaces DefaultCooldown.
type CooldownOption time.Duration

// WithCooldown sets how long Failover answers from the fallback without
// trying the primary after the primary failed.
func WithCooldown(d time.Duration) CooldownOption { return CooldownOption(d) }

func (o CooldownOption) applyFailover(f *Failover) { f.cooldown = time.Duration(o) }

// WarnIntervalOption replaces DefaultWarnInterval.
type WarnIntervalOption time.Duration

// WithWarnInterval sets the minimum time between two warnings about the
// primary failing.
func WithWarnInterval(d time.Duration) WarnIntervalOption { return WarnIntervalOption(d) }

func (o WarnIntervalOption) applyFailover(f *Failover) { f.warnEvery = time.Duration(o) }

// Failover is a Limiter that asks a primary (Redis, shared by all replicas)
// and, when that fails, a fallback (Memory, per replica) with the same
// rules. It never returns an error: a quota store outage must not turn
// into failed requests, and per-replica quotas are a tolerable degradation
// for the length of an outage. It is safe for concurrent use.
type Failover struct {
	primary   Limiter
	fallback  Limiter
	log       *slog.Logger
	fallbacks prometheus.Counter
	cooldown  time.Duration
	warnEvery time.Duration
	now       func() time.Time

	mu sync.Mutex
	// degraded is true from a primary failure until the primary answers
	// again; it makes the first answer after an outage log the recovery
	// and makes only one caller at a time probe the primary.
	degraded bool
	// retryAt is when the primary may be asked again (the circuit breaker);
	// zero while it is healthy.
	retryAt    time.Time
	lastWarn   time.Time // when the last warning was logged; zero if never
	suppressed int       // failures not logged since lastWarn
}

// NewFailover returns a limiter that uses primary and, while primary fails,
// fallback. logger receives the outage warnings and recovery notices
// (slog.Default() when nil). The counter FallbackMetric is registered with
// reg unless reg is nil; if a Failover already registered it there, the
// existing counter is shared, so several limiters in one process (e.g. two
// gateways in a test) report one total. NewFailover panics if reg holds a
// different collector under that name, like prometheus.MustRegister.
func NewFailover(primary, fallback Limiter, logger *slog.Logger, reg prometheus.Registerer, opts ...FailoverOption) *Failover {
	if logger == nil {
		logger = slog.Default()
	}
	f := &Failover{
		primary:   primary,
		fallback:  fallback,
		log:       logger,
		cooldown:  DefaultCooldown,
		warnEvery: DefaultWarnInterval,
		now:       time.Now,
		fallbacks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: FallbackMetric,
			Help: "Quota decisions taken by the in-process limiter because Redis was unreachable; while it rises, each gateway replica enforces quotas on its own.",
		}),
	}
	for _, o := range opts {
		o.applyFailover(f)
	}
	if reg != nil {
		if err := reg.Register(f.fallbacks); err != nil {
			var are prometheus.AlreadyRegisteredError
			existing, ok := prometheus.Counter(nil), false
			if errors.As(err, &are) {
				existing, ok = are.ExistingCollector.(prometheus.Counter)
			}
			if !ok {
				panic(fmt.Sprintf("quota.NewFailover: register %s: %v", FallbackMetric, err))
			}
			f.fallbacks = existing
		}
	}
	return f
}

// Allow asks the primary unless it failed within the cooldown, and
// otherwise (or when it fails now) the fallback. The error is always nil.
func (f *Failover) Allow(ctx context.Context, key string, limit int64) (Decision, error) {
	if f.tryPrimary() {
		d, err := f.primary.Allow(ctx, key, limit)
		if err == nil {
			f.primaryAnswered()
			return d, nil
		}
		f.primaryFailed(ctx, err)
	}
	f.fallbacks.Inc()
	d, err := f.fallback.Allow(ctx, key, limit)
	if err != nil {
		// Memory never fails, but a Limiter may; letting the request
		// through is the lesser evil than failing it, since the quota
		// protects capacity rather than guards access. Reset is the
		// cooldown: the soonest a real answer (from Redis) can come.
		f.log.Error("quota: fallback limiter failed; allowing the request", "key", key, "error", err)
		limit = max(limit, 0)
		return Decision{Allowed: true, Limit: limit, Remaining: limit, Reset: f.cooldown}, nil
	}
	return d, nil
}

// tryPrimary reports whether this call should ask the primary. After a
// failure it lets one caller per cooldown probe the primary and keeps the
// others on the fallback, so that a hanging Redis delays one request per
// cooldown rather than every concurrent one.
func (f *Failover) tryPrimary() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	if now.Before(f.retryAt) {
		return false
	}
	if f.degraded {
		f.retryAt = now.Add(f.cooldown)
	}
	return true
}

// primaryAnswered closes the circuit and, if the primary had failed,
// reports that shared quotas are back.
func (f *Failover) primaryAnswered() {
	f.mu.Lock()
	recovered := f.degraded
	f.degraded = false
	f.retryAt = time.Time{}
	f.mu.Unlock()
	if recovered {
		f.log.Info("quota: Redis answers again; quotas are shared by all gateway replicas again")
	}
}

// primaryFailed opens the circuit for the cooldown and logs a warning
// unless one was logged within the warn interval.
func (f *Failover) primaryFailed(ctx context.Context, err error) {
	if ctx.Err() != nil {
		// The caller gave up (client gone, deadline passed), which says
		// nothing about Redis: do not make every other request skip it.
		return
	}
	f.mu.Lock()
	now := f.now()
	f.degraded = true
	f.retryAt = now.Add(f.cooldown)
	warn := f.lastWarn.IsZero() || now.Sub(f.lastWarn) >= f.warnEvery
	suppressed := f.suppressed
	if warn {
		f.lastWarn = now
		f.suppressed = 0
	} else {
		f.suppressed++
	}
	f.mu.Unlock()
	if warn {
		f.log.Warn("quota: Redis unreachable; each gateway replica enforces quotas from memory until it answers",
			"error", err, "retry_in", f.cooldown, "failures_not_logged", suppressed)
	}
}
