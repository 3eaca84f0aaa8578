package bench

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"

	"github.com/slipwayhq/slipway/gateway"
	authv1 "github.com/slipwayhq/slipway/gen/slipway/auth/v1"
	projectsv1 "github.com/slipwayhq/slipway/gen/slipway/projects/v1"
	"github.com/slipwayhq/slipway/pkg/authz"
	"github.com/slipwayhq/slipway/pkg/authz/authztest"
	"github.com/slipwayhq/slipway/pkg/catalog"
	"github.com/slipwayhq/slipway/pkg/component"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/quota"
	"github.com/slipwayhq/slipway/pkg/rpcserver"
	"github.com/slipwayhq/slipway/pkg/rpcserver/rpctest"
	"github.com/slipwayhq/slipway/pkg/sqldb"
	"github.com/slipwayhq/slipway/pkg/sqldb/sqltest"
	"github.com/slipwayhq/slipway/services/auth"
	authmigrations "github.com/slipwayhq/slipway/services/auth/migrations"
	"github.com/slipwayhq/slipway/services/projects"
	projectsmigrations "github.com/slipwayhq/slipway/services/projects/migrations"
)

// BenchmarkAuthOverhead measures what authentication and quotas cost: the
// same GET /v1/projects/{id}, in the same run, through a stack that
// authenticates (gateway and projects service both resolving the token
// through the real auth service, cached as in production) and counts the
// quota, and through the same stack with both switched off (a fixed grant
// and no quota). Everything runs in this process, over loopback HTTP and
// gRPC, on SQLite.
func BenchmarkAuthOverhead(b *testing.B) {
	for _, mode := range []string{"open", "auth+quota"} {
		b.Run(mode, func(b *testing.B) {
			url := startStack(b, mode == "auth+quota")
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *workers + 1}}
			send := func() error {
				req, err := http.NewRequest("GET", url+"/v1/projects/overhead", nil)
				if err != nil {
					return err
				}
				req.Header.Set("Authorization", "Bearer "+benchToken)
				resp, err := client.Do(req)
				if err != nil {
					return err
				}
				defer resp.Body.Close()
				_, err = io.Copy(io.Discard, resp.Body)
				if err == nil && resp.StatusCode != http.StatusOK {
					err = errStatus(resp.Status)
				}
				return err
			}
			measure(b, send)
		})
	}
}

type errStatus string

func (e errStatus) Error() string { return "unexpected status " + string(e) }

// fixedGrant is the "off" switch: every call acts as the admin of team
// "default" without resolving anything.
type fixedGrant struct{ p *authv1.Principal }

func (f fixedGrant) Authorize(ctx context.Context, _ string, _ any) (context.Context, error) {
	return authz.WithGrant(authz.NewContext(ctx, f.p), f.p.GetGrants()[0]), nil
}

// lateAuth is the auth client of an authorizer made before the auth
// service's connection exists; the client is stored before any call (and
// atomically, as the server's goroutines read it).
type lateAuth struct {
	client atomic.Pointer[authv1.AuthServiceClient]
}

func (l *lateAuth) Authenticate(ctx context.Context, req *authv1.AuthenticateRequest, opts ...grpc.CallOption) (*authv1.AuthenticateResponse, error) {
	return (*l.client.Load()).Authenticate(ctx, req, opts...)
}

// startStack serves auth, projects and the gateway in this process and
// returns the gateway's URL, with one project ("overhead") to read.
func startStack(b *testing.B, secured bool) string {
	b.Helper()
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	authStore := auth.NewSQLStore(sqltest.Open(b, sqldb.SQLite, authmigrations.Set, events.Migrations), nil)
	if _, err := auth.Bootstrap(ctx, authStore, auth.BootstrapOptions{Token: benchToken}); err != nil {
		b.Fatal(err)
	}
	cat, err := catalog.Load("")
	if err != nil {
		b.Fatal(err)
	}
	projectStore := projects.NewSQLStore(sqltest.Open(b, sqldb.SQLite, projectsmigrations.Set, events.Migrations), nil)

	const key = "bench-internal-key-0123456789abcdef"
	var authorizer rpcserver.Authorizer = fixedGrant{authztest.TeamToken("default", "admin")}
	var a *authz.Authorizer
	// The authorizer resolves tokens through the auth service on the very
	// server it guards, as in one `slipway serve` process; that server's
	// connection exists only once it is served, so the client is filled in
	// then.
	late := &lateAuth{}
	if secured {
		a = authz.New(late, key)
		authorizer = a
	}
	conn := rpctest.Serve(b, rpcserver.Options{Logger: quiet, Authorizer: authorizer}, func(s *grpc.Server) {
		authv1.RegisterAuthServiceServer(s, auth.NewServer(authStore))
		projectsv1.RegisterProjectsServiceServer(s, projects.NewServer(projectStore, cat))
	})
	client := authv1.NewAuthServiceClient(conn)
	late.client.Store(&client)
	opts := gateway.Options{Logger: quiet, Backends: []component.Backend{{Name: "projects", API: *projects.Component.API, Conn: conn}}}
	if secured {
		opts.Auth, opts.Quota, opts.Plans = a, quota.NewMemory(quota.DefaultWindow), quota.Plans{Default: 1 << 40}
	}

	gw, err := gateway.New(ctx, opts)
	if err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewServer(gw)
	b.Cleanup(ts.Close)
	s := &server{url: ts.URL, client: ts.Client()}
	if err := s.call("POST", "/v1/projects", `{"name":"Overhead"}`, nil); err != nil {
		b.Fatal(err)
	}
	return ts.URL
}
