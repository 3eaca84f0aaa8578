package gateway

import (
	"context"
	"fmt"
	"net/http/httputil"
	"net/url"
	"strconv"

	"github.com/slipwayhq/slipway/pkg/authz"
	"github.com/slipwayhq/slipway/pkg/component"
	"github.com/slipwayhq/slipway/pkg/quota"
)

// Component is the gateway's row in the component table: the public HTTP
// API in front of every component with an API.
var Component = component.Component{
	Name:    "gateway",
	Summary: "the public HTTP API: REST routes of every component, authentication, quotas, live log tails",
	// The core it cannot serve without; components marked Optional are
	// served when reachable.
	Deps: []string{"auth", "projects"},
	Settings: []component.Setting{
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
	gw, err := New(ctx, Options{
		Logger: env.Log, Registerer: env.Registerer, Gatherer: env.Gatherer, Version: env.Version,
		Backends: backends, Auth: env.Authorizer, Quota: limiter,
		Plans: quota.Plans{Default: def, PerPlan: perPlan}, OAuth: oauth, Notices: env.Notices,
	})
	if err != nil {
		return nil, err
	}
	return &component.Instance{Handler: gw}, nil
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
