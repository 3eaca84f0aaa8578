package jobs

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"

	gwruntime "github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"

	jobsv1 "github.com/slipwayhq/slipway/gen/slipway/jobs/v1"
	projectsv1 "github.com/slipwayhq/slipway/gen/slipway/projects/v1"
	"github.com/slipwayhq/slipway/pkg/catalog"
	"github.com/slipwayhq/slipway/pkg/component"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/runtime/drivers"
	"github.com/slipwayhq/slipway/pkg/runtime/process"
	"github.com/slipwayhq/slipway/pkg/secret"
	"github.com/slipwayhq/slipway/pkg/sqldb"
	"github.com/slipwayhq/slipway/services/jobs/migrations"
)

// Component is the jobs service's row in the component table: manual and
// cron jobs run on the workload runtime.
var Component = component.Component{
	Name:       "jobs",
	Summary:    "manual and cron jobs, their runs and logs, on the workload runtime",
	Deps:       []string{"auth", "projects"},
	Migrations: []sqldb.Migrations{migrations.Set},
	Settings: []component.Setting{
		{Flag: "runtime-driver", Env: "SLIPWAY_RUNTIME_DRIVER",
			Help:  "how jobs run: process or docker (empty: docker when a Docker or Podman socket answers, else process)",
			Check: component.OneOf("process", "docker")},
		{Flag: "docker-host", Env: "SLIPWAY_DOCKER_HOST",
			Help: "Docker Engine API address of the docker driver, e.g. unix:///run/podman/podman.sock (empty: $DOCKER_HOST, else the usual sockets)"},
		component.EncryptionKeySetting,
		{Flag: "job-log-lines", Env: "SLIPWAY_JOB_LOG_LINES", Default: strconv.Itoa(DefaultLogLines),
			Help:  "most log lines a job run stores (all its attempts together); past it one line says how many were dropped",
			Check: component.Positive},
		{Flag: "job-log-bytes", Env: "SLIPWAY_JOB_LOG_BYTES", Default: strconv.Itoa(DefaultLogBytes),
			Help:  "most bytes of log text a job run stores; past it one line says how many lines and bytes were dropped",
			Check: component.Positive},
		{Flag: "runtime-max-procs", Env: "SLIPWAY_RUNTIME_MAX_PROCS", Default: "1024",
			Help:  "most processes (and threads) one workload may have, on either driver",
			Check: component.Positive},
		{Flag: "process-unsandboxed", Env: "SLIPWAY_PROCESS_UNSANDBOXED", Default: "false",
			Help:  "true runs process-driver workloads WITHOUT a sandbox, as the server's user, able to read its data: only where bubblewrap cannot work and every workload is trusted",
			Check: component.OneOf("true", "false")},
		{Flag: "process-network", Env: "SLIPWAY_PROCESS_NETWORK", Default: "private",
			Help:  "network of a process-driver sandbox: private (its own, outbound through slirp4netns, the host's loopback unreachable), none (only its own loopback) or host (the host's, loopback services included: unsafe for tenants)",
			Check: component.OneOf("private", "none", "host")},
		{Flag: "process-uid-base", Env: "SLIPWAY_PROCESS_UID_BASE", Default: "100000",
			Help:  "first host user id of the range process-driver workloads run as when Slipway runs as root (one id per running workload)",
			Check: component.Positive},
		{Flag: "process-uid-count", Env: "SLIPWAY_PROCESS_UID_COUNT", Default: "65536",
			Help:  "size of that range: at most that many workloads run at once",
			Check: component.Positive},
		{Flag: "process-cgroup", Env: "SLIPWAY_PROCESS_CGROUP", Default: "slipway",
			Help: "cgroup (relative to the hierarchy's root) under which process-driver workloads get their limits; as a normal user, one delegated to you"},
	},
	Start: start,
	API: &component.API{
		HealthService: jobsv1.JobsService_ServiceDesc.ServiceName,
		Register: func(ctx context.Context, mux *gwruntime.ServeMux, conn grpc.ClientConnInterface) error {
			return jobsv1.RegisterJobsServiceHandlerClient(ctx, mux, jobsv1.NewJobsServiceClient(conn))
		},
		Tails:    []component.Tail{{Path: "/projects/{project_id}/jobs/{job_id}/logs", Method: jobsv1.JobsService_TailJobLogs_FullMethodName}},
		Optional: true,
	},
}

// start opens the runtime driver and starts the supervisor and scheduler.
func start(ctx context.Context, env *component.Env) (*component.Instance, error) {
	cat, err := catalog.Load(env.Setting("catalog-file"))
	if err != nil {
		return nil, err
	}
	key, err := env.EncryptionKey()
	if err != nil {
		return nil, err
	}
	box, err := secret.NewBox(key, "jobs-env")
	if err != nil {
		return nil, err
	}
	cursors, err := env.Cursors()
	if err != nil {
		return nil, err
	}
	// The settings were checked: positive integers.
	maxProcs, _ := strconv.Atoi(env.Setting("runtime-max-procs"))
	uidBase, _ := strconv.Atoi(env.Setting("process-uid-base"))
	uidCount, _ := strconv.Atoi(env.Setting("process-uid-count"))
	driver, why, err := drivers.Open(ctx, drivers.Options{
		Name: env.Setting("runtime-driver"), StateDir: filepath.Join(env.DataDir, "runtime"), DockerHost: env.Setting("docker-host"),
		MaxProcs: maxProcs,
		Process: process.Options{
			Unsandboxed: env.Setting("process-unsandboxed") == "true",
			UIDBase:     uidBase, UIDCount: uidCount, Cgroup: env.Setting("process-cgroup"),
			Hide:    []string{env.DataDir},
			Network: env.Setting("process-network"),
		},
	})
	if err != nil {
		return nil, fmt.Errorf("runtime driver: %w", err)
	}
	// How workloads are isolated is said once at start-up; what is
	// missing (limits, the sandbox itself) also stays on /health.
	if iso, ok := driver.(interface {
		Isolation() string
		Notice() string
	}); ok {
		env.Log.Info("workload isolation: " + iso.Isolation())
		if n := iso.Notice(); n != "" {
			env.Log.Warn("workload isolation: " + n)
			env.Notice("workload-isolation", n)
		}
	}
	if c, ok := driver.(interface{ Close() error }); ok {
		env.OnClose(func() { _ = c.Close() })
	}
	env.Log.Info("jobs run on the "+driver.Name()+" runtime driver", "why", why)
	// The replica's id survives its restarts, so it takes its own runs
	// back at once.
	owner, err := env.Key("", "jobs-replica-id")
	if err != nil {
		return nil, err
	}
	projectsConn, err := env.Conn("projects")
	if err != nil {
		return nil, err
	}
	logLines, _ := strconv.Atoi(env.Setting("job-log-lines"))             // checked
	logBytes, _ := strconv.ParseInt(env.Setting("job-log-bytes"), 10, 64) // checked
	svc, err := New(Options{
		Store: NewSQLStore(env.DB, box, env.Notify), Driver: driver,
		Projects: projectsv1.NewProjectsServiceClient(projectsConn), Internal: env.Authorizer.Internal,
		Catalog: cat, NATS: env.JetStream.Conn(), Owner: string(owner[:16]), Logger: env.Log, Cursors: cursors,
		LogLines: logLines, LogBytes: logBytes,
	})
	if err != nil {
		return nil, err
	}
	env.Go(svc.Run)
	return &component.Instance{
		Services: []component.Service{{Desc: &jobsv1.JobsService_ServiceDesc, Impl: svc}},
		Consumers: []component.Consumer{{
			Config:  events.ConsumerConfig{Durable: ProjectsConsumer, Subjects: ProjectSubjects},
			Handler: svc.ProjectHandler(),
		}},
	}, nil
}
