// Package deployments is the deployments service: deployment and combined
// services, what they deploy (releases), their ports, health checks and
// environment, and their instances' status, logs and metrics.
//
// The service owns the desired state in its database; the rollout
// controller (services/deployments/rollout) runs it. Every change of what
// runs makes a release and applies the service to the controller, which
// reports back through the Hooks this service implements: rollout
// outcomes become the release's and the service's status, log lines are
// stored and published to live tails. On start every stored service is
// applied again, and the controller adopts the instances it finds.
package deployments

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	addonsv1 "github.com/slipwayhq/slipway/gen/slipway/addons/v1"
	deploymentsv1 "github.com/slipwayhq/slipway/gen/slipway/deployments/v1"
	projectsv1 "github.com/slipwayhq/slipway/gen/slipway/projects/v1"
	"github.com/slipwayhq/slipway/pkg/catalog"
	"github.com/slipwayhq/slipway/pkg/ingress"
	"github.com/slipwayhq/slipway/pkg/paging"
	"github.com/slipwayhq/slipway/pkg/runtime"
	"github.com/slipwayhq/slipway/services/deployments/rollout"
)

// Controller is what the service asks of the rollout controller
// (*rollout.Controller implements it).
type Controller interface {
	Apply(s rollout.Service)
	Delete(serviceID string)
	Instances(serviceID string) []rollout.Instance
	Usage(ctx context.Context, serviceID string) (map[string]runtime.Usage, error)
	Pick(serviceID, instance string) (rollout.Instance, error)
	Exec(ctx context.Context, serviceID, instance string, spec runtime.ExecSpec) (int, error)
}

// Options configure New.
type Options struct {
	// Store persists services, releases and logs.
	Store Store
	// Driver is the runtime driver's name ("process", "docker"): it
	// decides whether a service runs an image or a command.
	Driver string
	// Protocols are the port protocols the driver can publish ("tcp",
	// "udp"; runtime.PortProtocols); nil means both.
	Protocols []string
	// Projects answers whether a project exists; Internal marks a context
	// for an internal call (authz.Authorizer.Internal).
	Projects projectsv1.ProjectsServiceClient
	Internal func(context.Context) context.Context
	// Catalog gives plans their CPU, memory and instance bound.
	Catalog *catalog.Catalog
	// NATS carries live log lines to tails.
	NATS *nats.Conn
	// Ingress routes public ports; its Host names them. IngressPort is
	// the port of its listener, for the URLs GET …/ports shows.
	Ingress     *ingress.Ingress
	IngressPort string
	// IngressTLS: the ingress serves HTTPS, so URLs are https://.
	IngressTLS bool
	Logger     *slog.Logger
	// LogLines and LogBytes bound the log lines a service keeps, all its
	// instances together (DefaultLogLines and DefaultLogBytes when zero):
	// past either the oldest lines are dropped.
	LogLines int
	LogBytes int64
	// MetricsInterval is how often instances' usage is sampled (default
	// 10 s); MetricsSamples is how many samples an instance keeps
	// (default 360: an hour at the default interval).
	MetricsInterval time.Duration
	MetricsSamples  int
	// ReadyTimeout is how long a new instance has to become ready before
	// its rollout fails (default 2 minutes).
	ReadyTimeout time.Duration
	// Clock is for tests; time.Now by default.
	Clock func() time.Time
	// Cursors seal the list cursors; nil: ephemeral (tests).
	Cursors *paging.Cursors
	// Secrets resolves what the project's secret groups give a service's
	// instances (the addons component's SecretsService); nil: services
	// get no secret groups.
	Secrets addonsv1.SecretsServiceClient
	// FilesDir is the host directory under which services' secret files
	// are laid out for their mounts (the data directory's
	// "deployments-files" in a component); required with Secrets.
	FilesDir string
}

// Defaults of the per-service log cap: 100 000 lines (a day of a chatty
// web service) or 64 MiB of text, whichever comes first, so that a
// service cannot fill the log store (Kubernetes keeps 50 MiB of a
// container's logs by default).
const (
	DefaultLogLines = 100_000
	DefaultLogBytes = 64 << 20
)

// Server is the deployments service: its gRPC API and the controller's
// Hooks.
type Server struct {
	deploymentsv1.UnimplementedDeploymentsServiceServer
	opts  Options
	store Store
	log   *slog.Logger

	// ctl is set once with SetController, before the API serves.
	ctl Controller

	metrics *metrics

	// pumps guards against two pumps of one instance (a Logs hook called
	// again for an instance the controller re-adopted).
	mu    sync.Mutex
	pumps map[string]bool
}

// New returns the service; SetController and then Run start it.
func New(opts Options) (*Server, error) {
	if opts.Store == nil || opts.Driver == "" || opts.Projects == nil || opts.Catalog == nil || opts.NATS == nil || opts.Ingress == nil {
		return nil, errors.New("deployments: Store, Driver, Projects, Catalog, NATS and Ingress are required")
	}
	if opts.Secrets != nil && opts.FilesDir == "" {
		return nil, errors.New("deployments: FilesDir is required with Secrets")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Internal == nil {
		opts.Internal = func(ctx context.Context) context.Context { return ctx }
	}
	if opts.LogLines <= 0 {
		opts.LogLines = DefaultLogLines
	}
	if opts.LogBytes <= 0 {
		opts.LogBytes = DefaultLogBytes
	}
	if opts.MetricsInterval <= 0 {
		opts.MetricsInterval = 10 * time.Second
	}
	if opts.MetricsSamples <= 0 {
		opts.MetricsSamples = 360
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = 2 * time.Minute
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Cursors == nil {
		opts.Cursors = paging.EphemeralCursors()
	}
	return &Server{
		opts: opts, store: opts.Store, log: opts.Logger.With("service", "deployments"),
		metrics: newMetrics(opts.MetricsSamples), pumps: map[string]bool{},
	}, nil
}

// SetController sets the controller the service applies services to. The
// controller takes the service as its Hooks, so it is made after New and
// handed over here, before Run and before the API serves.
func (s *Server) SetController(c Controller) { s.ctl = c }

// now is the clock at millisecond precision (Northflank's timestamps).
func (s *Server) now() time.Time { return s.opts.Clock().UTC().Truncate(time.Millisecond) }

// Run applies every stored service to the controller (which adopts the
// instances already running) and samples instances' usage until ctx
// ends.
func (s *Server) Run(ctx context.Context) error {
	if s.ctl == nil {
		return errors.New("deployments: Run before SetController")
	}
	all, err := s.store.AllServices(ctx)
	if err != nil {
		return err
	}
	for _, sv := range all {
		s.apply(sv)
	}
	s.log.Info("applied the stored services", "services", len(all))
	tick := time.NewTicker(s.opts.MetricsInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			s.sample(ctx)
		}
	}
}

// controllerID is a service's id among everything the controller runs:
// team, project and service ids are slugs, so "/" keeps them apart.
func controllerID(team, project, id string) string { return team + "/" + project + "/" + id }

// parseControllerID splits a controllerID.
func parseControllerID(key string) (team, project, id string, ok bool) {
	parts := strings.Split(key, "/")
	if len(parts) != 3 {
		return "", "", "", false
	}
	return parts[0], parts[1], parts[2], true
}
