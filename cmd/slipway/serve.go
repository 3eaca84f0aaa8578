package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
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

	authv1 "github.com/slipwayhq/slipway/gen/slipway/auth/v1"
	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/authz"
	"github.com/slipwayhq/slipway/pkg/component"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/health"
	"github.com/slipwayhq/slipway/pkg/httpserver"
	"github.com/slipwayhq/slipway/pkg/rpcserver"
)

// process runs the components of one `slipway serve`: it gives each its
// environment (database, events, connections to the others), registers
// what it serves, and undoes it all in reverse at shutdown.
type process struct {
	cfg      config
	log      *slog.Logger
	registry *prometheus.Registry
	health   *health.Server
	closers  []func()
	g        *errgroup.Group
	ctx      context.Context
	js       jetstream.JetStream
	// local are the components this process runs; they call each other
	// through channel, in memory, through the same interceptor chain as
	// calls arriving over the network.
	local   map[string]bool
	channel *rpcserver.Local
	// dialed are the connections to components running elsewhere, by
	// address.
	dialed     map[string]*grpc.ClientConn
	authorizer *authz.Authorizer
	publicURL  string
	// http are the HTTP handlers of started components (the auth
	// component's OAuth2 pages), by component.
	http map[string]*component.Instance
	// notices are the components' standing notices for /health.
	noticeMu sync.Mutex
	notices  map[string]string
}

func (p *process) notice(name, text string) {
	p.noticeMu.Lock()
	defer p.noticeMu.Unlock()
	if p.notices == nil {
		p.notices = map[string]string{}
	}
	p.notices[name] = text
}

func (p *process) noticesNow() map[string]string {
	p.noticeMu.Lock()
	defer p.noticeMu.Unlock()
	return maps.Clone(p.notices)
}

func (p *process) onClose(f func()) { p.closers = append(p.closers, f) }

func (p *process) close() {
	for i := len(p.closers) - 1; i >= 0; i-- {
		p.closers[i]()
	}
}

func serve(ctx context.Context, cfg config) error {
	run, err := table.Order(runSet(cfg), cfg.target() == "all")
	if err != nil {
		return err
	}
	p := &process{
		cfg: cfg, log: cfg.logger(), registry: prometheus.NewRegistry(), health: health.NewServer(),
		local: map[string]bool{}, dialed: map[string]*grpc.ClientConn{}, http: map[string]*component.Instance{},
		channel: rpcserver.NewLocal(),
	}
	for _, c := range run {
		p.local[c.Name] = true
	}
	defer p.close()
	p.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	slog.SetDefault(p.log)
	rpcserver.LogTo(p.log) // gRPC's and grpc-gateway's own lines, structured too
	if err := os.MkdirAll(cfg.dataDir(), 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	p.g, p.ctx = errgroup.WithContext(ctx)
	ctx = p.ctx

	if p.js, err = p.connectNATS(); err != nil {
		return err
	}
	if err := events.EnsureStream(ctx, p.js); err != nil {
		return fmt.Errorf("events stream: %w", err)
	}

	// Listen first: the HTTP address is the default public URL (the OAuth2
	// issuer).
	lis, err := net.Listen("tcp", cfg.get("http-addr"))
	if err != nil {
		return fmt.Errorf("HTTP listener: %w", err)
	}
	p.publicURL = strings.TrimSuffix(cfg.get("public-url"), "/")
	if p.publicURL == "" {
		p.publicURL = "http://" + lis.Addr().String()
	}
	// A gRPC listener only when another process may call in: a service
	// target, or --target=all with an address asked for.
	var grpcLis net.Listener
	grpcAddr := cfg.get("grpc-addr")
	serves := slices.ContainsFunc(run, component.Component.Serves)
	if grpcAddr == "" && cfg.target() != "all" && serves {
		grpcAddr = defaultGRPCAddr
	}
	if grpcAddr != "" && serves {
		if grpcLis, err = net.Listen("tcp", grpcAddr); err != nil {
			return fmt.Errorf("gRPC listener: %w", err)
		}
	}

	// Every component authorizes through the auth component; one
	// authorizer (and its cache) serves the whole process.
	authConn, err := p.conn("auth")
	if err != nil {
		return err
	}
	internalKey := cfg.get("internal-key")
	if internalKey == "" { // --target=all: nothing outside this process needs it
		internalKey = randomKey()
	}
	p.authorizer = authz.New(authv1.NewAuthServiceClient(authConn), internalKey)
	if err := authz.WatchRevocations(ctx, p.js, p.authorizer, p.log); err != nil {
		return fmt.Errorf("token revocations: %w", err)
	}
	chain, err := rpcserver.NewChain(rpcserver.Options{Logger: p.log, Registerer: p.registry, Authorizer: p.authorizer})
	if err != nil {
		return err
	}
	chain.Bind(p.channel)
	var srv *grpc.Server
	if grpcLis != nil {
		srv = chain.Server()
		healthpb.RegisterHealthServer(srv, p.health)
	}
	healthpb.RegisterHealthServer(p.channel, p.health)

	var api http.Handler
	for _, c := range run {
		inst, err := p.start(ctx, c)
		if err != nil {
			return fmt.Errorf("%s: %w", c.Name, err)
		}
		for _, s := range inst.Services {
			p.channel.RegisterService(s.Desc, s.Impl)
			if srv != nil {
				srv.RegisterService(s.Desc, s.Impl)
			}
		}
		if inst.Handler != nil {
			api = inst.Handler
		}
	}

	if srv != nil {
		p.g.Go(func() error { return srv.Serve(grpcLis) })
		p.g.Go(func() error {
			<-ctx.Done()
			stopGRPC(srv)
			return nil
		})
		p.log.Info("gRPC services listening", "addr", grpcLis.Addr().String(), "target", cfg.target())
	}
	if api == nil {
		api = p.serviceHTTP()
	}
	if err := p.serveDebug(); err != nil {
		return err
	}

	// Bounded time per request and a cap on connections: a client that
	// trickles its request is cut off, and a flood of connections waits
	// instead of exhausting file descriptors. Live log tails lift the
	// deadlines for their connections (gateway/logtail.go).
	limits := cfg.httpLimits()
	httpSrv := httpserver.New(api, limits)
	p.g.Go(func() error {
		if err := httpSrv.Serve(httpserver.Limit(lis, limits)); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	url := "http://" + lis.Addr().String()
	p.log.Info("Slipway is running", "url", url, "target", cfg.target(), "data_dir", cfg.dataDir(), "http_max_connections", limits.MaxConnections)
	fmt.Printf("Slipway is running at %s\n", url)

	p.g.Go(func() error {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return httpSrv.Shutdown(shutdownCtx)
	})
	err = p.g.Wait()
	p.log.Info("shutting down")
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// runSet names the components the target runs.
func runSet(cfg config) []string {
	if cfg.target() == "all" {
		return table.Names()
	}
	return []string{cfg.target()}
}

// start opens a component's database (migrating it when every component
// runs here), relays its outbox, starts it and its event consumers and
// registers its health checks.
func (p *process) start(ctx context.Context, c component.Component) (*component.Instance, error) {
	env := &component.Env{
		Name: c.Name, Log: p.log, DataDir: p.cfg.dataDir(), Setting: p.cfg.get,
		JetStream: p.js, Authorizer: p.authorizer, Registerer: p.registry, Gatherer: p.registry,
		Conn: p.conn, APIs: func() ([]component.Backend, error) { return p.apis(c) }, LocalHTTP: p.localHTTP,
		Go:      func(f func(context.Context) error) { p.g.Go(func() error { return ignoreCanceled(f(ctx)) }) },
		OnClose: p.onClose,
		Key:     p.keyFile,
		Notice:  p.notice, Notices: p.noticesNow,
		PublicURL: p.publicURL, Version: version,
	}
	var checks []func(name string)
	if c.Migrations != nil {
		db, err := openDatabase(ctx, p.cfg, c, p.cfg.target() == "all")
		if err != nil {
			return nil, err
		}
		p.onClose(func() { _ = db.Close() })
		env.DB = db
		checks = append(checks, func(service string) { p.health.Add(service, c.Name+"-database", db.PingContext) })
		// An HTTPOnly component (the gateway) publishes no events: its
		// database has no outbox to relay.
		if !c.HTTPOnly {
			relay := events.NewRelay(db, p.js, events.WithLogger(p.log))
			env.Go(relay.Run)
			env.Notify = relay.Notify
			checks = append(checks, func(service string) {
				p.health.Add(service, "nats", func(ctx context.Context) error {
					_, err := p.js.AccountInfo(ctx)
					return err
				})
			})
		}
	}
	var services []string
	env.Health = func(check string, f func(context.Context) error) {
		checks = append(checks, func(service string) { p.health.Add(service, check, f) })
	}
	inst, err := c.Start(ctx, env)
	if err != nil {
		return nil, err
	}
	for _, s := range inst.Services {
		services = append(services, s.Desc.ServiceName)
	}
	if len(services) == 0 {
		// Still part of the process's overall readiness.
		services = append(services, c.Name)
	}
	for _, service := range services {
		for _, add := range checks {
			add(service)
		}
	}
	for _, cons := range inst.Consumers {
		cfg := cons.Config
		if cfg.Logger == nil {
			cfg.Logger = p.log
		}
		stop, err := events.Consume(ctx, p.js, cfg, cons.Handler)
		if err != nil {
			return nil, fmt.Errorf("consumer %s: %w", cfg.Durable, err)
		}
		p.onClose(stop)
	}
	p.http[c.Name] = inst
	return inst, nil
}

// conn reaches a component: in memory when it runs in this process, else
// over gRPC at its configured address.
func (p *process) conn(name string) (grpc.ClientConnInterface, error) {
	if p.local[name] {
		return p.channel, nil
	}
	c, ok := table.Get(name)
	if !ok {
		return nil, fmt.Errorf("unknown component %q", name)
	}
	s := component.AddrSetting(c)
	addr := p.cfg.get(s.Flag)
	if addr == "" {
		return nil, fmt.Errorf("this target needs the address of the %s service (--%s, $%s)", name, s.Flag, s.Env)
	}
	if conn, ok := p.dialed[addr]; ok {
		return conn, nil
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("%s service: %w", name, err)
	}
	p.onClose(func() { _ = conn.Close() })
	p.dialed[addr] = conn
	return conn, nil
}

// apis are the backends of a gateway (the component gw): every component
// with an API that runs here or whose address is set. One that gw depends
// on is required; an optional one without an address is left out, and
// said so.
func (p *process) apis(gw component.Component) ([]component.Backend, error) {
	var out []component.Backend
	for _, c := range table {
		if c.API == nil {
			continue
		}
		if !p.local[c.Name] && c.API.Optional && !slices.Contains(gw.Deps, c.Name) && p.cfg.get(component.AddrSetting(c).Flag) == "" {
			p.log.Warn("the "+c.Name+" API is not served: set "+component.AddrSetting(c).Env+" to the "+c.Name+" service's gRPC address", "component", c.Name)
			continue
		}
		conn, err := p.conn(c.Name)
		if err != nil {
			return nil, err
		}
		out = append(out, component.Backend{Name: c.Name, API: *c.API, Conn: conn})
	}
	return out, nil
}

// localHTTP is the HTTP handler of a component started in this process.
func (p *process) localHTTP(name string) http.Handler {
	if inst, ok := p.http[name]; ok && inst.HTTP != nil {
		return inst.HTTP
	}
	return nil
}

// connectNATS connects to SLIPWAY_NATS_URL, or starts the embedded server
// in the data directory when it is empty.
func (p *process) connectNATS() (jetstream.JetStream, error) {
	var embedded *server.Server
	natsURL := p.cfg.get("nats-url")
	if natsURL == "" {
		var err error
		if embedded, err = events.StartEmbedded(filepath.Join(p.cfg.dataDir(), "nats")); err != nil {
			return nil, fmt.Errorf("embedded NATS: %w", err)
		}
		p.onClose(func() { embedded.Shutdown(); embedded.WaitForShutdown() })
	}
	nc, err := events.Connect(natsURL, embedded)
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

// keyFile returns a configured key, or one generated once into the data
// directory so that what it seals survives restarts.
func (p *process) keyFile(configured, name string) ([]byte, error) {
	if configured != "" {
		return []byte(configured), nil
	}
	path := filepath.Join(p.cfg.dataDir(), name)
	if key, err := os.ReadFile(path); err == nil && len(key) >= 32 {
		return key, nil
	}
	key := []byte(randomKey())
	if err := os.WriteFile(path, key, 0o600); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return key, nil
}

// serviceHTTP is the small HTTP surface of a process without the gateway:
// health for orchestrators, metrics for Prometheus, and the HTTP pages of
// its components (the auth component's OAuth2 server).
func (p *process) serviceHTTP() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health/live", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"data":{"status":"ok"}}` + "\n"))
	})
	ready := func(w http.ResponseWriter, r *http.Request) {
		checks, healthy, _ := p.health.Results(r.Context(), "")
		notices := ""
		if n := p.noticesNow(); len(n) > 0 {
			notices = `,"notices":` + jsonObject(n)
		}
		status, body := http.StatusOK, fmt.Sprintf(`{"data":{"status":"ok","checks":%s%s}}`, jsonObject(checks), notices)
		if !healthy {
			status = http.StatusServiceUnavailable
			body = fmt.Sprintf(`{"error":{"status":503,"message":"not ready","id":%q,"details":{"checks":%s%s}}}`, apierr.ReasonNotReady, jsonObject(checks), notices)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body + "\n"))
	}
	for _, inst := range p.http {
		for _, path := range inst.HTTPPaths {
			mux.Handle(path, inst.HTTP)
		}
	}
	mux.HandleFunc("GET /health", ready)
	mux.HandleFunc("GET /health/ready", ready)
	mux.Handle("GET /metrics", promhttp.HandlerFor(p.registry, promhttp.HandlerOpts{}))
	return mux
}

// serveDebug serves the Go profiler on --debug-addr, when set: apart from
// the API, so that it is never exposed with it.
func (p *process) serveDebug() error {
	addr := p.cfg.get("debug-addr")
	if addr == "" {
		return nil
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("debug listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	p.g.Go(func() error {
		if err := srv.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	p.g.Go(func() error {
		<-p.ctx.Done()
		return srv.Close()
	})
	p.log.Info("profiler listening", "url", "http://"+lis.Addr().String()+"/debug/pprof/")
	return nil
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
