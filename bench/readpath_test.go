package bench

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/slipwayhq/slipway/gateway"
	authv1 "github.com/slipwayhq/slipway/gen/slipway/auth/v1"
	projectsv1 "github.com/slipwayhq/slipway/gen/slipway/projects/v1"
	"github.com/slipwayhq/slipway/pkg/authz"
	"github.com/slipwayhq/slipway/pkg/catalog"
	"github.com/slipwayhq/slipway/pkg/component"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/quota"
	"github.com/slipwayhq/slipway/pkg/rpcserver"
	"github.com/slipwayhq/slipway/pkg/sqldb"
	"github.com/slipwayhq/slipway/pkg/sqldb/sqltest"
	"github.com/slipwayhq/slipway/pkg/testenv"
	"github.com/slipwayhq/slipway/services/auth"
	authmigrations "github.com/slipwayhq/slipway/services/auth/migrations"
	"github.com/slipwayhq/slipway/services/projects"
	projectsmigrations "github.com/slipwayhq/slipway/services/projects/migrations"
)

// BenchmarkReadPath is the CPU and the allocations of one authenticated,
// quota-checked GET /v1/projects/{id} inside the process, without HTTP:
// the gateway's handler called directly, the auth and projects services
// behind it in memory through the interceptor chain, as `slipway serve`
// wires them: on SQLite with in-process quotas (the default), and on
// PostgreSQL with quotas in Redis (throwaway servers on loopback). It is
// the part of the read path that is Slipway's own, so its ns/op and
// allocs/op are what a change to that path moves (run it with -cpuprofile
// or -memprofile to see where).
func BenchmarkReadPath(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) { benchReadPath(b, sqldb.SQLite, quota.NewMemory(quota.DefaultWindow)) })
	b.Run("postgres+redis", func(b *testing.B) {
		opts, err := redis.ParseURL(testenv.Redis(b))
		if err != nil {
			b.Fatal(err)
		}
		client := redis.NewClient(opts)
		b.Cleanup(func() { _ = client.Close() })
		benchReadPath(b, sqldb.Postgres, quota.NewRedis(client, quota.DefaultWindow))
	})
}

func benchReadPath(b *testing.B, engine sqldb.Dialect, limiter quota.Limiter) {
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	authStore := auth.NewSQLStore(sqltest.Open(b, engine, authmigrations.Set, events.Migrations), nil)
	if _, err := auth.Bootstrap(ctx, authStore, auth.BootstrapOptions{Token: benchToken}); err != nil {
		b.Fatal(err)
	}
	cat, err := catalog.Load("")
	if err != nil {
		b.Fatal(err)
	}
	projectStore := projects.NewSQLStore(sqltest.Open(b, engine, projectsmigrations.Set, events.Migrations), nil)

	local := rpcserver.NewLocal()
	authorizer := authz.New(authv1.NewAuthServiceClient(local), "bench-internal-key-0123456789abcdef")
	chain, err := rpcserver.NewChain(rpcserver.Options{Logger: quiet, Authorizer: authorizer})
	if err != nil {
		b.Fatal(err)
	}
	chain.Bind(local)
	authv1.RegisterAuthServiceServer(local, auth.NewServer(authStore))
	projectsv1.RegisterProjectsServiceServer(local, projects.NewServer(projectStore, cat))
	gw, err := gateway.New(ctx, gateway.Options{
		Logger: quiet, Auth: authorizer, Quota: limiter, Plans: quota.Plans{Default: 1 << 40},
		Backends: []component.Backend{
			{Name: "auth", API: *auth.Component.API, Conn: local},
			{Name: "projects", API: *projects.Component.API, Conn: local},
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	call := func(method, path, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+benchToken)
		w := httptest.NewRecorder()
		gw.ServeHTTP(w, req)
		return w
	}
	if w := call("POST", "/v1/projects", `{"name":"Read Path"}`); w.Code != http.StatusOK {
		b.Fatalf("create: %d %s", w.Code, w.Body)
	}
	b.ReportAllocs()
	cpu := processCPU()
	// Concurrent callers, as under load: serial reads on PostgreSQL would
	// measure mostly the wake-ups after each round trip.
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if w := call("GET", "/v1/projects/read-path", ""); w.Code != http.StatusOK {
				b.Errorf("get: %d %s", w.Code, w.Body)
				return
			}
		}
	})
	// On PostgreSQL + Redis ns/op is mostly waiting on the round trips;
	// the process's own CPU per read is what a change to Slipway's code
	// moves, and what competes with the database for the machine's cores.
	b.ReportMetric(float64(processCPU()-cpu)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
}

// processCPU is the CPU time (user and system) this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
