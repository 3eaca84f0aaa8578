package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httputil"
	"net/url"
	"strconv"
	"time"

	"github.com/slipwayhq/slipway/pkg/authz"
	"github.com/slipwayhq/slipway/pkg/component"
	"github.com/slipwayhq/slipway/pkg/idempotency"
	"github.com/slipwayhq/slipway/pkg/quota"
	"github.com/slipwayhq/slipway/pkg/sqldb"
)

// Component is the gateway's row in the component table: the public HTTP
// API in front of every component with an API.
var Component = component.Component{
	Name:    "gateway",
	Summary: "the public HTTP API: REST routes of every component, authentication, quotas, live log tails",
	// The core it cannot serve without; components marked Optional are
	// served when reachable.
	Deps: []string{"auth", "projects"},
	// Its database keeps Idempotency-Key records, so that a retry finds
	// the first answer after a restart and on any other replica.
	Migrations: []sqldb.Migrations{idempotency.Migrations},
	HTTPOnly:   true,
	Settings: []component.Setting{
		{Flag: "idempotency-ttl", Env: "SLIPWAY_IDEMPOTENCY_TTL", Default: DefaultIdempotencyTTL.String(),
			Help: "how long the answer to a POST sent with an Idempotency-Key is kept for its retries", Check: positiveDuration},
		{Flag: "rate-limit-per-hour", Env: "SLIPWAY_RATE_LIMIT_PER_HOUR", Default: "1000",
			Help: "requests per hour per team (or user, for personal tokens) unless its plan says otherwise", Check: positive},
		{Flag: "rate-limit-plans", Env: "SLIPWAY_RATE_LIMIT_PLANS",
			Help: "hourly limits per team plan, e.g. free=100,pro=1000,enterprise=50000",
			Check: func(v string) error {
				_, err := quota.ParsePlans(v)
				return err
			}},
		quota.RedisSetting,
		{Flag: "auth-url", Env: "SLIPWAY_AUTH_URL",
			Help: "HTTP base URL of the auth service, to which a gateway running apart forwards /oauth2/ (empty: this process)",
			Check: func(v string) error {
				_, err := url.Parse(v)
				return err
			}},
	},
	Start: start,
}

func positive(v string) error {
	if n, err := strconv.ParseInt(v, 10, 64); err != nil || n <= 0 {
		return fmt.Errorf("%q: want a positive integer", v)
	}
	return nil
}

func start(ctx context.Context, env *component.Env) (*component.Instance, error) {
	backends, err := env.APIs()
	if err != nil {
		return nil, err
	}
	def, _ := strconv.ParseInt(env.Setting("rate-limit-per-hour"), 10, 64) // checked
	perPlan, _ := quota.ParsePlans(env.Setting("rate-limit-plans"))        // checked
	limiter, err := quotas(env)
	if err != nil {
		return nil, err
	}
	oauth := env.LocalHTTP("auth")
	if target := env.Setting("auth-url"); oauth == nil && target != "" {
		u, err := url.Parse(target)
		if err != nil {
			return nil, fmt.Errorf("auth URL: %w", err)
		}
		key := env.Setting("internal-key") // required when components run apart
		oauth = &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Host = pr.In.Host
			// The client's address, which the OAuth2 server throttles by,
			// vouched for with the internal key (authz.InternalKeyHeader):
			// the auth service sees only this gateway's address.
			pr.SetXForwarded()
			pr.Out.Header.Set(authz.InternalKeyHeader, key)
		}}
	}
	ttl, _ := time.ParseDuration(env.Setting("idempotency-ttl")) // checked
	keys := idempotency.NewSQLStore(env.DB)
	env.Go(func(ctx context.Context) error { return purgeKeys(ctx, keys, env.Log) })
	gw, err := New(ctx, Options{
		Logger: env.Log, Registerer: env.Registerer, Gatherer: env.Gatherer, Version: env.Version,
		Backends: backends, Auth: env.Authorizer, Quota: limiter,
		Plans: quota.Plans{Default: def, PerPlan: perPlan}, OAuth: oauth, Notices: env.Notices,
		Idempotency: keys, IdempotencyTTL: ttl,
		Ready: func(ctx context.Context) map[string]string {
			if err := env.DB.PingContext(ctx); err != nil {
				return map[string]string{"gateway-database": "unreachable"}
			}
			return map[string]string{"gateway-database": "ok"}
		},
	})
	if err != nil {
		return nil, err
	}
	return &component.Instance{Handler: gw}, nil
}

// purgeEvery is how often the gateway deletes expired Idempotency-Key
// records. An expired record is already ignored; the purge only keeps the
// table small.
const purgeEvery = 10 * time.Minute

// purgeKeys deletes expired Idempotency-Key records until ctx ends. Every
// replica purges; the deletes are the same and harmless side by side.
func purgeKeys(ctx context.Context, keys idempotency.Store, log *slog.Logger) error {
	tick := time.NewTicker(purgeEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if n, err := keys.Purge(ctx, time.Now()); err != nil && ctx.Err() == nil {
			log.WarnContext(ctx, "purging expired idempotency keys", "error", err)
		} else if n > 0 {
			log.DebugContext(ctx, "purged expired idempotency keys", "count", n)
		}
	}
}

func positiveDuration(v string) error {
	if d, err := time.ParseDuration(v); err != nil || d <= 0 {
		return fmt.Errorf("%q: want a positive duration such as 24h", v)
	}
	return nil
}

// quotas returns the limiter: Redis shared by every gateway replica when
// configured (with the in-process limiter standing in while Redis is
// unreachable), else in-process.
func quotas(env *component.Env) (quota.Limiter, error) {
	memory := quota.NewMemory(quota.DefaultWindow)
	raw := env.Setting(quota.RedisSetting.Flag)
	if raw == "" {
		return memory, nil
	}
	client, err := quota.NewRedisClient(raw)
	if err != nil {
		return nil, err
	}
	env.OnClose(func() { _ = client.Close() })
	return quota.NewFailover(quota.NewRedis(client, quota.DefaultWindow), memory, env.Log, env.Registerer), nil
}
