package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/slipwayhq/slipway/gateway"
	projectsv1 "github.com/slipwayhq/slipway/gen/slipway/projects/v1"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/health"
	"github.com/slipwayhq/slipway/pkg/rpcserver"
	"github.com/slipwayhq/slipway/pkg/sqldb"
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

	var grpcAddr string
	if cfg.Target != "gateway" {
		srv, err := rpcserver.New(rpcserver.Options{Logger: p.log, Registerer: p.registry})
		if err != nil {
			return err
		}
		healthpb.RegisterHealthServer(srv, p.health)
		if cfg.runs("projects") {
			if err := p.startProjects(ctx, g, srv, js); err != nil {
				return err
			}
		}
		lis, err := net.Listen("tcp", cfg.GRPCAddr)
		if err != nil {
			return fmt.Errorf("gRPC listener: %w", err)
		}
		grpcAddr = lis.Addr().String()
		g.Go(func() error { return srv.Serve(lis) })
		g.Go(func() error {
			<-ctx.Done()
			stopGRPC(srv)
			return nil
		})
		p.log.Info("gRPC services listening", "addr", grpcAddr, "target", cfg.Target)
	}

	var handler http.Handler
	if cfg.runs("gateway") {
		projectsAddr := cfg.ProjectsAddr
		if projectsAddr == "" {
			if grpcAddr == "" {
				return errors.New("the gateway needs --projects-addr (SLIPWAY_PROJECTS_ADDR) when projects runs elsewhere")
			}
			projectsAddr = grpcAddr
		}
		conn, err := grpc.NewClient(projectsAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return fmt.Errorf("projects backend: %w", err)
		}
		p.onClose(func() { _ = conn.Close() })
		gw, err := gateway.New(ctx, gateway.Options{
			Logger: p.log, Registerer: p.registry, Gatherer: p.registry, Version: version,
			Backends: gateway.Backends{Projects: conn},
		})
		if err != nil {
			return err
		}
		handler = gw
	} else {
		handler = p.serviceHTTP()
	}

	lis, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("HTTP listener: %w", err)
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
	catalog, err := projects.LoadCatalog(p.cfg.CatalogFile)
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

func ignoreCanceled(err error) error {
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
