package builds

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/client"
	gwruntime "github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"

	buildsv1 "github.com/slipwayhq/slipway/gen/slipway/builds/v1"
	deploymentsv1 "github.com/slipwayhq/slipway/gen/slipway/deployments/v1"
	jobsv1 "github.com/slipwayhq/slipway/gen/slipway/jobs/v1"
	"github.com/slipwayhq/slipway/pkg/catalog"
	"github.com/slipwayhq/slipway/pkg/component"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/netguard"
	"github.com/slipwayhq/slipway/pkg/runtime/docker"
	"github.com/slipwayhq/slipway/pkg/runtime/drivers"
	"github.com/slipwayhq/slipway/pkg/secret"
	"github.com/slipwayhq/slipway/pkg/sqldb"
	"github.com/slipwayhq/slipway/services/builds/builder"
	"github.com/slipwayhq/slipway/services/builds/migrations"
)

// Component is the builds service's row in the component table: builds of
// build and combined services, and of jobs, from git, on the workload
// runtime.
var Component = component.Component{
	Name:       "builds",
	Summary:    "builds from git: clone in the sandbox, Dockerfile or buildpack, queue, logs, webhooks and polling",
	Deps:       []string{"auth", "projects", "deployments", "jobs"},
	Migrations: []sqldb.Migrations{migrations.Set},
	Settings: append([]component.Setting{
		component.EncryptionKeySetting,
		{Flag: "build-concurrency", Env: "SLIPWAY_BUILD_CONCURRENCY", Default: strconv.Itoa(DefaultConcurrency),
			Help: "builds one Slipway runs at once; the rest wait QUEUED", Check: component.Positive},
		{Flag: "build-timeout", Env: "SLIPWAY_BUILD_TIMEOUT", Default: DefaultTimeout.String(),
			Help: "longest a build may take (clone and build) before it ends FAILURE", Check: positiveDuration},
		{Flag: "build-keep", Env: "SLIPWAY_BUILD_KEEP", Default: strconv.Itoa(DefaultKeep),
			Help: "successful builds per service whose artifact (image or app tree) is kept, so they can be deployed again; older ones are removed", Check: component.Positive},
		{Flag: "build-poll-interval", Env: "SLIPWAY_BUILD_POLL_INTERVAL", Default: DefaultPollInterval.String(),
			Help: "how often services' repositories are polled for new commits (for git servers without webhooks); 0 turns polling off", Check: nonNegativeDuration},
		{Flag: "build-log-lines", Env: "SLIPWAY_BUILD_LOG_LINES", Default: strconv.Itoa(DefaultLogLines),
			Help: "most log lines one build stores; past it lines are counted, not stored", Check: component.Positive},
		{Flag: "build-file-roots", Env: "SLIPWAY_BUILD_FILE_ROOTS",
			Help: "comma-separated directories under which file:// repositories may be built (none: file:// is refused)"},
		{Flag: "build-allow-hosts", Env: "SLIPWAY_BUILD_ALLOW_HOSTS",
			Help: "comma-separated git hosts (names, IPs or CIDRs) that may resolve to loopback or private addresses, such as a Gitea on this machine (none: such hosts are refused)"},
		{Flag: "build-clone-image", Env: "SLIPWAY_BUILD_CLONE_IMAGE",
			Help: "on the docker driver, an image with git, git-lfs, ssh and sh whose numeric non-root USER clones in containers of it (docker-compose.yml's slipway-clone:dev); none clones in the process driver's sandbox on this machine"},
		{Flag: "build-clone-network", Env: "SLIPWAY_BUILD_CLONE_NETWORK",
			Help: "network mode of the clone containers of SLIPWAY_BUILD_CLONE_IMAGE (a network's name, e.g. one a git server's container is on); none is the engine's default network"},
		{Flag: "buildpack-image-go", Env: "SLIPWAY_BUILDPACK_IMAGE_GO", Default: builder.DefaultBaseImages[builder.StackGo],
			Help: "base image of Go buildpack builds on the docker driver"},
		{Flag: "buildpack-image-node", Env: "SLIPWAY_BUILDPACK_IMAGE_NODE", Default: builder.DefaultBaseImages[builder.StackNode],
			Help: "base image of Node.js buildpack builds on the docker driver"},
		{Flag: "buildpack-image-python", Env: "SLIPWAY_BUILDPACK_IMAGE_PYTHON", Default: builder.DefaultBaseImages[builder.StackPython],
			Help: "base image of Python buildpack builds on the docker driver"},
		{Flag: "buildpack-image-static", Env: "SLIPWAY_BUILDPACK_IMAGE_STATIC", Default: builder.DefaultBaseImages[builder.StackStatic],
			Help: "base image of static-site and Procfile buildpack builds on the docker driver"},
	}, drivers.Settings...),
	Start: start,
	API: &component.API{
		HealthService: buildsv1.BuildsService_ServiceDesc.ServiceName,
		Register: func(ctx context.Context, mux *gwruntime.ServeMux, conn grpc.ClientConnInterface) error {
			return buildsv1.RegisterBuildsServiceHandlerClient(ctx, mux, buildsv1.NewBuildsServiceClient(conn))
		},
		Tails: []component.Tail{
			{Path: "/projects/{project_id}/services/{service_id}/build-logs", Method: buildsv1.BuildsService_TailServiceBuildLogs_FullMethodName},
			{Path: "/projects/{project_id}/jobs/{job_id}/build-logs", Method: buildsv1.BuildsService_TailJobBuildLogs_FullMethodName},
		},
		Webhooks: []component.Webhook{{Path: "/git-webhooks/{webhook_id}", Method: buildsv1.BuildsService_ReceiveGitWebhook_FullMethodName}},
		Optional: true,
	},
}

func positiveDuration(v string) error {
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return fmt.Errorf("want a positive duration such as 30m")
	}
	return nil
}

func nonNegativeDuration(v string) error {
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return fmt.Errorf("want a duration such as 1m, or 0")
	}
	return nil
}

func list(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// start opens the runtime (the driver clones run on, and the container
// engine when the runtime is docker), then starts the queue.
func start(ctx context.Context, env *component.Env) (*component.Instance, error) {
	cat, err := catalog.Load(env.Setting("catalog-file"))
	if err != nil {
		return nil, err
	}
	key, err := env.EncryptionKey()
	if err != nil {
		return nil, err
	}
	box, err := secret.NewBox(key, "builds")
	if err != nil {
		return nil, err
	}
	cursors, err := env.Cursors()
	if err != nil {
		return nil, err
	}
	runtimeDriver, err := drivers.FromEnv(ctx, env, "builds-runtime")
	if err != nil {
		return nil, err
	}
	cfg := builder.Config{
		Dir: filepath.Join(env.DataDir, "builds"), FileRoots: list(env.Setting("build-file-roots")),
		AllowHosts: netguard.SplitList(env.Setting("build-allow-hosts")),
		BaseImages: map[string]string{
			builder.StackGo: env.Setting("buildpack-image-go"), builder.StackNode: env.Setting("buildpack-image-node"),
			builder.StackPython: env.Setting("buildpack-image-python"), builder.StackStatic: env.Setting("buildpack-image-static"),
			builder.StackProcfile: env.Setting("buildpack-image-static"),
		},
	}
	// Where git runs is chosen here, once: in containers of the clone
	// image on the docker driver when one is set (a server in a container
	// has no git or sandbox of its own), else in the process driver's
	// sandbox on this machine.
	cloneImage := env.Setting("build-clone-image")
	if d, ok := runtimeDriver.(*docker.Driver); ok {
		// Images are built by the engine that runs them.
		cli, err := client.NewClientWithOpts(client.WithHost(d.Host()), client.WithAPIVersionNegotiation())
		if err != nil {
			return nil, fmt.Errorf("builds: docker client: %w", err)
		}
		env.OnClose(func() { _ = cli.Close() })
		cfg.Docker = cli
		if cloneImage != "" {
			// The builds component starts no other container on d.
			d.NetworkMode = env.Setting("build-clone-network")
			cfg.Process, cfg.CloneImage = d, cloneImage
		} else if cfg.Process, err = drivers.ProcessFromEnv(ctx, env, "builds-sandbox"); err != nil {
			return nil, err
		}
	} else {
		if cloneImage != "" {
			return nil, fmt.Errorf("builds: SLIPWAY_BUILD_CLONE_IMAGE needs the docker runtime driver (SLIPWAY_RUNTIME_DRIVER=docker)")
		}
		cfg.Process = runtimeDriver
	}
	b, err := builder.New(cfg)
	if err != nil {
		return nil, err
	}
	deploymentsConn, err := env.Conn("deployments")
	if err != nil {
		return nil, err
	}
	jobsConn, err := env.Conn("jobs")
	if err != nil {
		return nil, err
	}
	owner, err := env.Key("", "builds-replica-id")
	if err != nil {
		return nil, err
	}
	concurrency, _ := strconv.Atoi(env.Setting("build-concurrency")) // checked
	keep, _ := strconv.Atoi(env.Setting("build-keep"))
	logLines, _ := strconv.Atoi(env.Setting("build-log-lines"))
	timeout, _ := time.ParseDuration(env.Setting("build-timeout"))
	poll, _ := time.ParseDuration(env.Setting("build-poll-interval"))
	svc, err := New(Options{
		Store: NewSQLStore(env.DB, box, env.Notify),
		Sources: DeploymentSources{Client: deploymentsv1.NewDeploymentsServiceClient(deploymentsConn),
			Jobs:     jobsv1.NewJobsServiceClient(jobsConn),
			Internal: env.Authorizer.Internal, Catalog: cat},
		Engine: BuilderEngine{Builder: b, Logger: env.Log}, NATS: env.JetStream.Conn(),
		Owner: fmt.Sprintf("%x", owner[:8]), Concurrency: concurrency, Timeout: timeout, Keep: keep, PollInterval: poll,
		LogLines: logLines, PublicURL: env.PublicURL, Logger: env.Log, Cursors: cursors,
	})
	if err != nil {
		return nil, err
	}
	env.Go(svc.Run)
	return &component.Instance{
		Services: []component.Service{{Desc: &buildsv1.BuildsService_ServiceDesc, Impl: svc}},
		Consumers: []component.Consumer{
			component.ProjectDeletedConsumer(ProjectsConsumer, svc.DeleteProjectBuilds),
			{Config: events.ConsumerConfig{Durable: ServicesConsumer, Subjects: ServiceSubjects}, Handler: svc.ServiceHandler()},
			{Config: events.ConsumerConfig{Durable: JobsConsumer, Subjects: JobSubjects}, Handler: svc.JobHandler()},
			{Config: events.ConsumerConfig{Durable: CreatedConsumer, Subjects: CreatedSubjects}, Handler: svc.CreatedHandler()},
		},
	}, nil
}
