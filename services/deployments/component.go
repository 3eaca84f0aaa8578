package deployments

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"

	gwruntime "github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"

	addonsv1 "github.com/slipwayhq/slipway/gen/slipway/addons/v1"
	deploymentsv1 "github.com/slipwayhq/slipway/gen/slipway/deployments/v1"
	projectsv1 "github.com/slipwayhq/slipway/gen/slipway/projects/v1"
	"github.com/slipwayhq/slipway/pkg/catalog"
	"github.com/slipwayhq/slipway/pkg/component"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/httpserver"
	"github.com/slipwayhq/slipway/pkg/ingress"
	"github.com/slipwayhq/slipway/pkg/runtime"
	"github.com/slipwayhq/slipway/pkg/runtime/drivers"
	"github.com/slipwayhq/slipway/pkg/secret"
	"github.com/slipwayhq/slipway/pkg/sqldb"
	"github.com/slipwayhq/slipway/services/deployments/migrations"
	"github.com/slipwayhq/slipway/services/deployments/rollout"
)

// Component is the deployments service's row in the component table:
// deployment, combined and build services (the registry of all three), run by the rollout controller on the
// workload runtime and reached through the built-in ingress.
var Component = component.Component{
	Name:    "deployments",
	Summary: "services (deployment, combined, build): settings, releases, rollouts, ingress, instances, logs and metrics",
	// addons: the secret groups a service's instances get
	// (ResolveEnvironment).
	Deps:       []string{"auth", "projects", "addons"},
	Migrations: []sqldb.Migrations{migrations.Set},
	Settings: append([]component.Setting{
		component.EncryptionKeySetting,
		{Flag: "ingress-addr", Env: "SLIPWAY_INGRESS_ADDR", Default: "127.0.0.1:8000",
			Help:  "address the ingress (the reverse proxy to services' public HTTP ports) listens on",
			Check: hostPort},
		{Flag: "ingress-domain", Env: "SLIPWAY_INGRESS_DOMAIN", Default: ingress.DefaultBaseDomain,
			Help:  "base domain of services' host names, <port>--<service>--<project>.<domain> (localhost resolves to loopback with no DNS set-up)",
			Check: domain},
		{Flag: "ingress-tls-cert", Env: "SLIPWAY_INGRESS_TLS_CERT",
			Help: "PEM certificate (chain) the ingress serves HTTPS with, e.g. a wildcard for *.<ingress domain>; with the key, the ingress speaks only HTTPS (HTTP/2 and HTTP/1.1); reloaded when the file changes"},
		{Flag: "ingress-tls-key", Env: "SLIPWAY_INGRESS_TLS_KEY",
			Help: "PEM private key of that certificate"},
		{Flag: "ingress-preconnect", Env: "SLIPWAY_INGRESS_PRECONNECT", Default: strconv.Itoa(ingress.DefaultPreconnect),
			Help:  "most spare connections the ingress keeps open to an instance that closes its connection after every response, so that requests need not wait for a connect (each closed unused after 100 ms; never for an instance that keeps connections alive; Linux only); 0 turns it off",
			Check: nonNegative},
		{Flag: "service-log-lines", Env: "SLIPWAY_SERVICE_LOG_LINES", Default: strconv.Itoa(DefaultLogLines),
			Help:  "most log lines a service keeps (all its instances together); past it the oldest are dropped",
			Check: component.Positive},
		{Flag: "service-log-bytes", Env: "SLIPWAY_SERVICE_LOG_BYTES", Default: strconv.Itoa(DefaultLogBytes),
			Help:  "most bytes of log text a service keeps (all its instances together); past it the oldest lines are dropped",
			Check: component.Positive},
	}, drivers.Settings...),
	Start: start,
	API: &component.API{
		HealthService: deploymentsv1.DeploymentsService_ServiceDesc.ServiceName,
		Register: func(ctx context.Context, mux *gwruntime.ServeMux, conn grpc.ClientConnInterface) error {
			return deploymentsv1.RegisterDeploymentsServiceHandlerClient(ctx, mux, deploymentsv1.NewDeploymentsServiceClient(conn))
		},
		Tails:    []component.Tail{{Path: "/projects/{project_id}/services/{service_id}/logs", Method: deploymentsv1.DeploymentsService_TailServiceLogs_FullMethodName}},
		Exec:     []component.Exec{{Path: "/projects/{project_id}/services/{resource_id}", Method: deploymentsv1.DeploymentsService_ExecService_FullMethodName}},
		Optional: true,
	},
}

// hostPort is a Setting check: host:port.
func hostPort(v string) error {
	if _, _, err := net.SplitHostPort(v); err != nil {
		return fmt.Errorf("want host:port: %w", err)
	}
	return nil
}

// nonNegative is a Setting check: an integer, 0 or more.
func nonNegative(v string) error {
	if n, err := strconv.Atoi(v); err != nil || n < 0 {
		return fmt.Errorf("%q: want an integer, 0 or more", v)
	}
	return nil
}

// domain is a Setting check: a DNS name.
func domain(v string) error {
	if v == "" || strings.ContainsAny(v, "/: ") || strings.HasPrefix(v, ".") || strings.HasSuffix(v, ".") {
		return errors.New("want a domain name such as localhost or apps.example.com")
	}
	return nil
}

// ingressCerts loads the ingress's certificate and key, both or none.
func ingressCerts(cert, key string) (*ingress.CertFile, error) {
	switch {
	case cert == "" && key == "":
		return nil, nil
	case cert == "" || key == "":
		return nil, errors.New("ingress TLS: set both the certificate (SLIPWAY_INGRESS_TLS_CERT) and its key (SLIPWAY_INGRESS_TLS_KEY), or neither")
	}
	return ingress.LoadCertFile(cert, key)
}

// start opens the runtime driver, serves the ingress, and starts the
// rollout controller and the service.
func start(ctx context.Context, env *component.Env) (*component.Instance, error) {
	cat, err := catalog.Load(env.Setting("catalog-file"))
	if err != nil {
		return nil, err
	}
	key, err := env.EncryptionKey()
	if err != nil {
		return nil, err
	}
	box, err := secret.NewBox(key, "deployments-env")
	if err != nil {
		return nil, err
	}
	cursors, err := env.Cursors()
	if err != nil {
		return nil, err
	}
	driver, err := drivers.FromEnv(ctx, env, "services")
	if err != nil {
		return nil, err
	}
	preconnect, _ := strconv.Atoi(env.Setting("ingress-preconnect")) // checked
	if preconnect == 0 {
		preconnect = -1 // the Config's "none"
	}
	in, err := ingress.New(ingress.Config{BaseDomain: env.Setting("ingress-domain"), Preconnect: preconnect,
		Registerer: env.Registerer, Logger: env.Log})
	if err != nil {
		return nil, err
	}
	certs, err := ingressCerts(env.Setting("ingress-tls-cert"), env.Setting("ingress-tls-key"))
	if err != nil {
		return nil, err
	}
	addr := env.Setting("ingress-addr")
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("ingress: %w", err)
	}
	// Proxied responses may stream (server-sent events, WebSockets) for
	// as long as client and instance keep them: only the request headers
	// are timed.
	limits := httpserver.DefaultLimits()
	limits.ReadTimeout, limits.WriteTimeout = 0, 0
	srv := httpserver.New(in, limits)
	serve := func() error { return srv.Serve(httpserver.Limit(lis, limits)) }
	if certs != nil {
		srv.TLSConfig = certs.TLSConfig()
		serve = func() error { return srv.ServeTLS(httpserver.Limit(lis, limits), "", "") }
	}
	go func() {
		if err := serve(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			env.Log.Error("ingress stopped", "error", err)
		}
	}()
	env.OnClose(func() {
		_ = srv.Close()
		_ = in.Close() // the spare connections to instances
	})
	_, port, _ := net.SplitHostPort(lis.Addr().String())
	env.Log.Info("ingress listening", "addr", lis.Addr().String(), "domain", env.Setting("ingress-domain"), "tls", certs != nil)

	var protocols []string // nil: every protocol
	if pp, ok := driver.(runtime.PortProtocols); ok {
		protocols = pp.Protocols()
	}
	projectsConn, err := env.Conn("projects")
	if err != nil {
		return nil, err
	}
	addonsConn, err := env.Conn("addons")
	if err != nil {
		return nil, err
	}
	logLines, _ := strconv.Atoi(env.Setting("service-log-lines"))             // checked
	logBytes, _ := strconv.ParseInt(env.Setting("service-log-bytes"), 10, 64) // checked
	svc, err := New(Options{
		Store: NewSQLStore(env.DB, box, env.Notify), Driver: driver.Name(), Protocols: protocols,
		Projects: projectsv1.NewProjectsServiceClient(projectsConn), Internal: env.Authorizer.Internal,
		Catalog: cat, NATS: env.JetStream.Conn(), Ingress: in, IngressPort: port, IngressTLS: certs != nil, Logger: env.Log, Cursors: cursors,
		LogLines: logLines, LogBytes: logBytes,
		Secrets: addonsv1.NewSecretsServiceClient(addonsConn), FilesDir: filepath.Join(env.DataDir, "deployments-files"),
	})
	if err != nil {
		return nil, err
	}
	ctl, err := rollout.New(rollout.Options{Driver: driver, Ingress: in, Hooks: svc, Logger: env.Log})
	if err != nil {
		return nil, err
	}
	svc.SetController(ctl)
	env.Go(ctl.Run)
	env.Go(svc.Run)
	return &component.Instance{
		Services: []component.Service{{Desc: &deploymentsv1.DeploymentsService_ServiceDesc, Impl: svc}},
		Consumers: []component.Consumer{
			component.ProjectDeletedConsumer(ProjectsConsumer, svc.DeleteProjectServices),
			{Config: events.ConsumerConfig{Durable: BuildsConsumer, Subjects: BuildSubjects}, Handler: svc.BuildHandler()},
			{Config: events.ConsumerConfig{Durable: SecretsConsumer, Subjects: SecretSubjects}, Handler: svc.SecretHandler()},
		},
	}, nil
}
