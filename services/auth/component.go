package auth

import (
	"context"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	gwruntime "github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"

	authv1 "github.com/slipwayhq/slipway/gen/slipway/auth/v1"
	"github.com/slipwayhq/slipway/pkg/authz"
	"github.com/slipwayhq/slipway/pkg/component"
	"github.com/slipwayhq/slipway/pkg/quota"
	"github.com/slipwayhq/slipway/pkg/sqldb"
	authmigrations "github.com/slipwayhq/slipway/services/auth/migrations"
	"github.com/slipwayhq/slipway/services/auth/oauth"
)

// Component is the auth service's row in the component table: users,
// teams, roles, tokens and the OAuth2 server, on its own database.
var Component = component.Component{
	Name:       "auth",
	Summary:    "users, teams, roles, API tokens and credentials, the OAuth2 server",
	Migrations: []sqldb.Migrations{authmigrations.Set, oauth.Migrations},
	Settings: []component.Setting{
		{Flag: "oauth-secret", Env: "SLIPWAY_OAUTH_SECRET",
			Help:  "key (at least 32 characters) of the OAuth2 server's codes, cookies and CSRF tokens; the same on every auth replica (empty: generated once into the data directory)",
			Check: component.MinLength(32)},
		{Flag: "bootstrap-token", Env: "SLIPWAY_BOOTSTRAP_TOKEN",
			Help: "first admin token of an empty install (at least 32 characters; empty: one is generated and printed once)"},
		quota.RedisSetting,             // the OAuth2 server's limits, shared by replicas
		component.EncryptionKeySetting, // list cursors
	},
	Start: start,
	API: &component.API{
		HealthService: authv1.AuthService_ServiceDesc.ServiceName,
		Register: func(ctx context.Context, mux *gwruntime.ServeMux, conn grpc.ClientConnInterface) error {
			return authv1.RegisterAuthServiceHandlerClient(ctx, mux, authv1.NewAuthServiceClient(conn))
		},
	},
}

// start bootstraps an empty install (printing its first admin token once)
// and starts the OAuth2 server.
func start(ctx context.Context, env *component.Env) (*component.Instance, error) {
	store := NewSQLStore(env.DB, env.Notify)
	preset := env.Setting("bootstrap-token")
	boot, err := Bootstrap(ctx, store, BootstrapOptions{Token: preset})
	if err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	switch {
	case boot.Created && preset == "":
		// The only time this token is ever shown: it is stored hashed.
		fmt.Printf("\nFirst start: created the admin user, the team %q and this admin token.\n"+
			"It is shown once; keep it now:\n\n    %s\n\n", "default", boot.Token)
	case boot.Created:
		env.Log.Info("first start: created the admin user and team with the preset bootstrap token")
	}
	// The key survives restarts, so codes and sign-in cookies do too.
	key, err := env.Key(env.Setting("oauth-secret"), "oauth.key")
	if err != nil {
		return nil, err
	}
	throttle, err := oauthThrottle(env)
	if err != nil {
		return nil, err
	}
	provider, err := NewOAuthProvider(env.DB, store, env.PublicURL, key, throttle)
	if err != nil {
		return nil, fmt.Errorf("OAuth2 server: %w", err)
	}
	env.Go(func(ctx context.Context) error { return sweepOAuth(ctx, provider, env.Log) })
	cursors, err := env.Cursors()
	if err != nil {
		return nil, err
	}
	return &component.Instance{
		Services:  []component.Service{{Desc: &authv1.AuthService_ServiceDesc, Impl: NewServer(store, Options{OAuth: provider, Logger: env.Log, Cursors: cursors})}},
		HTTP:      provider.Handler(),
		HTTPPaths: []string{"/oauth2/", "/.well-known/oauth-authorization-server"},
	}, nil
}

// sweepOAuth deletes expired OAuth codes and tokens hourly; the OAuth
// library never deletes on its own.
func sweepOAuth(ctx context.Context, provider *oauth.Provider, log *slog.Logger) error {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if _, err := provider.Store().DeleteExpired(ctx, time.Now()); err != nil && ctx.Err() == nil {
				log.Warn("deleting expired OAuth tokens", "error", err)
			}
		}
	}
}

// oauthThrottle builds the OAuth2 server's throttle: in Redis, shared by
// every auth replica, when SLIPWAY_REDIS_URL is set (each replica counting
// in memory while Redis is unreachable), else in memory.
func oauthThrottle(env *component.Env) (*oauth.Throttle, error) {
	t := oauth.MemoryThrottle()
	t.ClientAddr = clientAddr(env.Setting("internal-key"))
	raw := env.Setting(quota.RedisSetting.Flag)
	if raw == "" {
		return t, nil
	}
	client, err := quota.NewRedisClient(raw)
	if err != nil {
		return nil, err
	}
	env.OnClose(func() { _ = client.Close() })
	const prefix = quota.DefaultKeyPrefix + "oauth:"
	t.Requests = quota.NewFailover(quota.NewRedis(client, oauth.DefaultRequestWindow, quota.WithKeyPrefix(prefix+"req:")),
		t.Requests, env.Log, env.Registerer)
	t.Pair = quota.NewFailoverBackoff(quota.NewRedisBackoff(client, oauth.DefaultPairPolicy, prefix+"pair:"), t.Pair, env.Log)
	t.Account = quota.NewFailoverBackoff(quota.NewRedisBackoff(client, oauth.DefaultAccountPolicy, prefix+"account:"), t.Account, env.Log)
	return t, nil
}

// clientAddr returns the client's address of an OAuth2 request: the
// X-Forwarded-For a gateway proxying /oauth2/ here (SLIPWAY_AUTH_URL)
// set, when the request carries the internal key as the
// authz.InternalKeyHeader header, else the connection's peer. Without an internal
// key (--target=all, where the gateway calls this service in memory) the
// peer is the client.
func clientAddr(internalKey string) func(*http.Request) string {
	return func(r *http.Request) string {
		if internalKey != "" && subtle.ConstantTimeCompare([]byte(r.Header.Get(authz.InternalKeyHeader)), []byte(internalKey)) == 1 {
			if fwd := r.Header.Values("X-Forwarded-For"); len(fwd) > 0 {
				hops := strings.Split(fwd[len(fwd)-1], ",")
				if ip := net.ParseIP(strings.TrimSpace(hops[len(hops)-1])); ip != nil {
					return ip.String()
				}
			}
		}
		return oauth.RemoteHost(r)
	}
}
