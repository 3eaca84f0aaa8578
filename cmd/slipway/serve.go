package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/slipwayhq/slipway/gateway"
	authv1 "github.com/slipwayhq/slipway/gen/slipway/auth/v1"
	jobsv1 "github.com/slipwayhq/slipway/gen/slipway/jobs/v1"
	projectsv1 "github.com/slipwayhq/slipway/gen/slipway/projects/v1"
	"github.com/slipwayhq/slipway/pkg/authz"
	"github.com/slipwayhq/slipway/pkg/catalog"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/health"
	"github.com/slipwayhq/slipway/pkg/quota"
	"github.com/slipwayhq/slipway/pkg/rpcserver"
	"github.com/slipwayhq/slipway/pkg/runtime/drivers"
	"github.com/slipwayhq/slipway/pkg/secret"
	"github.com/slipwayhq/slipway/pkg/sqldb"
	"github.com/slipwayhq/slipway/services/auth"
	authmigrations "github.com/slipwayhq/slipway/services/auth/migrations"
	"github.com/slipwayhq/slipway/services/auth/oauth"
	"github.com/slipwayhq/slipway/services/jobs"
	jobmigrations "github.com/slipwayhq/slipway/services/jobs/migrations"
	"github.com/slipwayhq/slipway/services/projects"
	"github.com/slipwayhq/slipway/services/projects/migrations"
)

// process holds what one `slipway serve` runs, so shutdown can undo it in
// reverse.
type process struct {
	cfg      config
	log      *slog.Logger
	registry *prometheus.Registry
	health   *health.Server
	closers  []func()
	// publicURL is where clients reach the API (the OAuth2 issuer).
	publicURL string
	// oauth serves the OAuth2 endpoints when auth runs in this process.
	oauth http.Handler
}

func (p *process) onClose(f func()) { p.closers = append(p.closers, f) }

func (p *process) close() {
	for i := len(p.closers) - 1; i >= 0; i-- {
		p.closers[i]()
	}
}

func serve(ctx context.Context, cfg config) error {
	p := &process{cfg: cfg, log: cfg.logger(), registry: prometheus.NewRegistry(), health: health.NewServer()}
	defer p.close()
	p.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	slog.SetDefault(p.log)
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	g, ctx := errgroup.WithContext(ctx)

	js, err := p.connectNATS()
	if err != nil {
		return err
	}
	if err := events.EnsureStream(ctx, js); err != nil {
		return fmt.Errorf("events stream: %w", err)
	}

	// Listen first: the HTTP address is the default public URL (the OAuth2
	// issuer), and components in one process reach each other through the
	// gRPC address exactly as they would across processes.
	lis, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("HTTP listener: %w", err)
	}
	p.publicURL = strings.TrimSuffix(cfg.PublicURL, "/")
	if p.publicURL == "" {
		p.publicURL = "http://" + lis.Addr().String()
	}
	var grpcLis net.Listener
	if cfg.Target != "gateway" {
		if grpcLis, err = net.Listen("tcp", cfg.GRPCAddr); err != nil {
			return fmt.Errorf("gRPC listener: %w", err)
		}
	}
	dial := func(configured, component string) (*grpc.ClientConn, error) {
		addr := configured
		if addr == "" {
			if grpcLis == nil || !cfg.runs(component) {
				return nil, fmt.Errorf("this target needs the address of the %s service (--%s-addr)", component, component)
			}
			addr = grpcLis.Addr().String()
		}
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil, fmt.Errorf("%s service: %w", component, err)
		}
		p.onClose(func() { _ = conn.Close() })
		return conn, nil
	}

	// Every component authorizes through the auth service; one authorizer
	// (and its cache) serves the whole process.
	authConn, err := dial(cfg.AuthAddr, "auth")
	if err != nil {
		return err
	}
	internalKey := cfg.InternalKey
	if internalKey == "" { // --target=all: nothing outside this process needs it
		internalKey = randomKey()
	}
	authorizer := authz.New(authv1.NewAuthServiceClient(authConn), internalKey)
	if err := authz.WatchRevocations(ctx, js, authorizer, p.log); err != nil {
		return fmt.Errorf("token revocations: %w", err)
	}

	if grpcLis != nil {
		srv, err := rpcserver.New(rpcserver.Options{Logger: p.log, Registerer: p.registry, Authorizer: authorizer})
		if err != nil {
			return err
		}
		healthpb.RegisterHealthServer(srv, p.health)
		if cfg.runs("auth") {
			if err := p.startAuth(ctx, g, srv, js); err != nil {
				return err
			}
		}
		if cfg.runs("projects") {
			if err := p.startProjects(ctx, g, srv, js); err != nil {
				return err
			}
		}
		if cfg.runs("jobs") {
			projectsConn, err := dial(cfg.ProjectsAddr, "projects")
			if err != nil {
				return err
			}
			if err := p.startJobs(ctx, g, srv, js, projectsConn, authorizer); err != nil {
				return err
			}
		}
		g.Go(func() error { return srv.Serve(grpcLis) })
		g.Go(func() error {
			<-ctx.Done()
			stopGRPC(srv)
			return nil
		})
		p.log.Info("gRPC services listening", "addr", grpcLis.Addr().String(), "target", cfg.Target)
	}

	var handler http.Handler
	if cfg.runs("gateway") {
		projectsConn, err := dial(cfg.ProjectsAddr, "projects")
		if err != nil {
			return err
		}
		// A gateway running apart serves the jobs API once it knows where
		// the jobs service is; without it the jobs routes answer 404.
		var jobsConn grpc.ClientConnInterface
		if cfg.JobsAddr != "" || cfg.runs("jobs") {
			conn, err := dial(cfg.JobsAddr, "jobs")
			if err != nil {
				return err
			}
			jobsConn = conn
		} else {
			p.log.Warn("the jobs API is not served: set SLIPWAY_JOBS_ADDR to the jobs service's gRPC address")
		}
		limiter, err := p.quotas()
		if err != nil {
			return err
		}
		plans, _ := cfg.plans() // validated by parseConfig
		oauthHandler := p.oauth
		if oauthHandler == nil && cfg.AuthURL != "" {
			target, err := url.Parse(cfg.AuthURL)
			if err != nil {
				return fmt.Errorf("auth URL: %w", err)
			}
			oauthHandler = httputil.NewSingleHostReverseProxy(target)
		}
		gw, err := gateway.New(ctx, gateway.Options{
			Logger: p.log, Registerer: p.registry, Gatherer: p.registry, Version: version,
			Backends: gateway.Backends{Projects: projectsConn, Auth: authConn, Jobs: jobsConn},
			Auth:     authorizer, Quota: limiter, Plans: plans, OAuth: oauthHandler,
		})
		if err != nil {
			return err
		}
		handler = gw
	} else {
		handler = p.serviceHTTP()
	}

	httpSrv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	g.Go(func() error {
		if err := httpSrv.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	url := "http://" + lis.Addr().String()
	p.log.Info("Slipway is running", "url", url, "target", cfg.Target, "data_dir", cfg.DataDir)
	fmt.Printf("Slipway is running at %s\n", url)

	g.Go(func() error {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return httpSrv.Shutdown(shutdownCtx)
	})
	err = g.Wait()
	p.log.Info("shutting down")
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// connectNATS connects to SLIPWAY_NATS_URL, or starts the embedded server
// in the data directory when it is empty.
func (p *process) connectNATS() (jetstream.JetStream, error) {
	var embedded *server.Server
	if p.cfg.NATSURL == "" {
		var err error
		if embedded, err = events.StartEmbedded(filepath.Join(p.cfg.DataDir, "nats")); err != nil {
			return nil, fmt.Errorf("embedded NATS: %w", err)
		}
		p.onClose(func() { embedded.Shutdown(); embedded.WaitForShutdown() })
	}
	nc, err := events.Connect(p.cfg.NATSURL, embedded)
	if err != nil {
		return nil, fmt.Errorf("NATS: %w", err)
	}
	p.onClose(func() { _ = nc.Drain() })
	p.health.Add("", "nats", func(context.Context) error {
		if nc.Status() != nats.CONNECTED {
			return errors.New(nc.Status().String())
		}
		return nil
	})
	return jetstream.New(nc)
}

// startAuth opens the auth database, bootstraps an empty install and
// registers the auth service with its outbox relay.
func (p *process) startAuth(ctx context.Context, g *errgroup.Group, srv *grpc.Server, js jetstream.JetStream) error {
	db, err := sqldb.Open(ctx, p.cfg.authDatabase())
	if err != nil {
		return err
	}
	p.onClose(func() { _ = db.Close() })
	if p.cfg.Target == "all" {
		if err := db.Migrate(ctx, authmigrations.Set, events.Migrations, oauth.Migrations); err != nil {
			return err
		}
	}
	relay := events.NewRelay(db, js, events.WithLogger(p.log))
	g.Go(func() error { return ignoreCanceled(relay.Run(ctx)) })
	store := auth.NewSQLStore(db, relay.Notify)
	boot, err := auth.Bootstrap(ctx, store, auth.BootstrapOptions{Token: p.cfg.BootstrapToken})
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	switch {
	case boot.Created && p.cfg.BootstrapToken == "":
		// The only time this token is ever shown: it is stored hashed.
		fmt.Printf("\nFirst start: created the admin user, the team %q and this admin token.\n"+
			"It is shown once; keep it now:\n\n    %s\n\n", "default", boot.Token)
	case boot.Created:
		p.log.Info("first start: created the admin user and team with the preset bootstrap token")
	}
	key, err := p.oauthKey()
	if err != nil {
		return err
	}
	provider, err := auth.NewOAuthProvider(db, store, p.publicURL, key)
	if err != nil {
		return fmt.Errorf("OAuth2 server: %w", err)
	}
	p.oauth = provider.Handler()
	g.Go(func() error { return sweepOAuth(ctx, provider, p.log) })
	authv1.RegisterAuthServiceServer(srv, auth.NewServer(store, auth.Options{OAuth: provider, Logger: p.log}))
	p.health.Add(authv1.AuthService_ServiceDesc.ServiceName, "auth-database", db.PingContext)
	return nil
}

// oauthKey is the OAuth2 server's key: configured, or generated once into
// the data directory so that codes and sign-in cookies survive restarts.
func (p *process) oauthKey() ([]byte, error) { return p.keyFile(p.cfg.OAuthSecret, "oauth.key") }

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

// startProjects opens the projects database and registers the service,
// its outbox relay and its resource consumer.
func (p *process) startProjects(ctx context.Context, g *errgroup.Group, srv *grpc.Server, js jetstream.JetStream) error {
	db, err := sqldb.Open(ctx, p.cfg.projectsDatabase())
	if err != nil {
		return err
	}
	p.onClose(func() { _ = db.Close() })
	if p.cfg.Target == "all" {
		if err := db.Migrate(ctx, migrations.Set, events.Migrations); err != nil {
			return err
		}
	}
	catalog, err := catalog.Load(p.cfg.CatalogFile)
	if err != nil {
		return err
	}
	relay := events.NewRelay(db, js, events.WithLogger(p.log))
	g.Go(func() error { return ignoreCanceled(relay.Run(ctx)) })
	store := projects.NewSQLStore(db, relay.Notify)
	stopConsumer, err := events.Consume(ctx, js, events.ConsumerConfig{
		Durable: projects.ResourceConsumer, Subjects: projects.ResourceSubjects,
	}, projects.ResourceHandler(store))
	if err != nil {
		return fmt.Errorf("projects consumer: %w", err)
	}
	p.onClose(stopConsumer)
	projectsv1.RegisterProjectsServiceServer(srv, projects.NewServer(store, catalog))
	name := projectsv1.ProjectsService_ServiceDesc.ServiceName
	p.health.Add(name, "projects-database", db.PingContext)
	p.health.Add(name, "nats", func(ctx context.Context) error {
		_, err := js.AccountInfo(ctx)
		return err
	})
	return nil
}

// startJobs opens the jobs database and the runtime driver and registers
// the jobs service, its outbox relay, its project-deletion consumer and
// its supervisor and scheduler.
func (p *process) startJobs(ctx context.Context, g *errgroup.Group, srv *grpc.Server, js jetstream.JetStream, projectsConn *grpc.ClientConn, authorizer *authz.Authorizer) error {
	db, err := sqldb.Open(ctx, p.cfg.jobsDatabase())
	if err != nil {
		return err
	}
	p.onClose(func() { _ = db.Close() })
	if p.cfg.Target == "all" {
		if err := db.Migrate(ctx, jobmigrations.Set, events.Migrations); err != nil {
			return err
		}
	}
	catalog, err := catalog.Load(p.cfg.CatalogFile)
	if err != nil {
		return err
	}
	key, err := p.keyFile(p.cfg.EncryptionKey, "encryption.key")
	if err != nil {
		return err
	}
	box, err := secret.NewBox(key, "jobs-env")
	if err != nil {
		return err
	}
	driver, why, err := drivers.Open(ctx, drivers.Options{Name: p.cfg.RuntimeDriver, StateDir: filepath.Join(p.cfg.DataDir, "runtime"), DockerHost: p.cfg.DockerHost})
	if err != nil {
		return fmt.Errorf("runtime driver: %w", err)
	}
	if c, ok := driver.(interface{ Close() error }); ok {
		p.onClose(func() { _ = c.Close() })
	}
	p.log.Info("jobs run on the "+driver.Name()+" runtime driver", "why", why)
	owner, err := p.replicaID()
	if err != nil {
		return err
	}
	relay := events.NewRelay(db, js, events.WithLogger(p.log))
	g.Go(func() error { return ignoreCanceled(relay.Run(ctx)) })
	svc, err := jobs.New(jobs.Options{
		Store: jobs.NewSQLStore(db, box, relay.Notify), Driver: driver,
		Projects: projectsv1.NewProjectsServiceClient(projectsConn), Internal: authorizer.Internal,
		Catalog: catalog, NATS: js.Conn(), Owner: owner, Logger: p.log,
	})
	if err != nil {
		return err
	}
	stopConsumer, err := events.Consume(ctx, js, events.ConsumerConfig{Durable: jobs.ProjectsConsumer, Subjects: jobs.ProjectSubjects}, svc.ProjectHandler())
	if err != nil {
		return fmt.Errorf("jobs consumer: %w", err)
	}
	p.onClose(stopConsumer)
	g.Go(func() error { return svc.Run(ctx) })
	jobsv1.RegisterJobsServiceServer(srv, svc)
	name := jobsv1.JobsService_ServiceDesc.ServiceName
	p.health.Add(name, "jobs-database", db.PingContext)
	p.health.Add(name, "nats", func(ctx context.Context) error {
		_, err := js.AccountInfo(ctx)
		return err
	})
	return nil
}

// keyFile returns a configured key, or one generated once into the data
// directory so that what it seals survives restarts.
func (p *process) keyFile(configured, name string) ([]byte, error) {
	if configured != "" {
		return []byte(configured), nil
	}
	path := filepath.Join(p.cfg.DataDir, name)
	if key, err := os.ReadFile(path); err == nil && len(key) >= 32 {
		return key, nil
	}
	key := []byte(randomKey())
	if err := os.WriteFile(path, key, 0o600); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return key, nil
}

// replicaID identifies this jobs replica across its restarts (so that it
// takes its own runs back at once): generated once into the data directory.
func (p *process) replicaID() (string, error) {
	id, err := p.keyFile("", "jobs-replica-id")
	if err != nil {
		return "", err
	}
	return string(id[:16]), nil
}

// quotas returns the gateway's limiter: Redis shared by every gateway
// replica when configured (with the in-process limiter standing in while
// Redis is unreachable), else in-process.
func (p *process) quotas() (quota.Limiter, error) {
	memory := quota.NewMemory(quota.DefaultWindow)
	if p.cfg.RedisURL == "" {
		return memory, nil
	}
	opts, err := redis.ParseURL(p.cfg.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("redis URL: %w", err)
	}
	// Fail fast: while Redis is down the fallback answers, so retries would
	// only add latency to requests.
	opts.MaxRetries, opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = 1, time.Second, time.Second, time.Second
	client := redis.NewClient(opts)
	p.onClose(func() { _ = client.Close() })
	return quota.NewFailover(quota.NewRedis(client, quota.DefaultWindow), memory, p.log, p.registry), nil
}

// serviceHTTP is the small HTTP surface of a service-only process: health
// for orchestrators and metrics for Prometheus.
func (p *process) serviceHTTP() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health/live", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"data":{"status":"ok"}}` + "\n"))
	})
	ready := func(w http.ResponseWriter, r *http.Request) {
		checks, healthy, _ := p.health.Results(r.Context(), "")
		status, body := http.StatusOK, fmt.Sprintf(`{"data":{"status":"ok","checks":%s}}`, jsonObject(checks))
		if !healthy {
			status = http.StatusServiceUnavailable
			body = fmt.Sprintf(`{"error":{"status":503,"message":"not ready","id":"NOT_READY","details":{"checks":%s}}}`, jsonObject(checks))
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body + "\n"))
	}
	if p.oauth != nil { // an auth target serves the OAuth2 pages and endpoints
		mux.Handle("/oauth2/", p.oauth)
		mux.Handle("/.well-known/oauth-authorization-server", p.oauth)
	}
	mux.HandleFunc("GET /health", ready)
	mux.HandleFunc("GET /health/ready", ready)
	mux.Handle("GET /metrics", promhttp.HandlerFor(p.registry, promhttp.HandlerOpts{}))
	return mux
}

// stopGRPC lets in-flight RPCs finish, but not forever.
func stopGRPC(srv *grpc.Server) {
	done := make(chan struct{})
	go func() { srv.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		srv.Stop()
	}
}

// randomKey returns 256 random bits, hex-encoded.
func randomKey() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func ignoreCanceled(err error) error {
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
