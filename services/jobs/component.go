package jobs

import (
	"context"
	"path/filepath"
	"strconv"

	gwruntime "github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"

	addonsv1 "github.com/slipwayhq/slipway/gen/slipway/addons/v1"
	jobsv1 "github.com/slipwayhq/slipway/gen/slipway/jobs/v1"
	projectsv1 "github.com/slipwayhq/slipway/gen/slipway/projects/v1"
	"github.com/slipwayhq/slipway/pkg/catalog"
	"github.com/slipwayhq/slipway/pkg/component"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/runtime/drivers"
	"github.com/slipwayhq/slipway/pkg/secret"
	"github.com/slipwayhq/slipway/pkg/sqldb"
	"github.com/slipwayhq/slipway/services/jobs/migrations"
)

// Component is the jobs service's row in the component table: manual and
// cron jobs run on the workload runtime.
var Component = component.Component{
	Name:    "jobs",
	Summary: "manual and cron jobs, their runs and logs, on the workload runtime",
	// addons: the secret groups a run gets (ResolveEnvironment).
	Deps:       []string{"auth", "projects", "addons"},
	Migrations: []sqldb.Migrations{migrations.Set},
	Settings: append([]component.Setting{
		component.EncryptionKeySetting,
		{Flag: "job-log-lines", Env: "SLIPWAY_JOB_LOG_LINES", Default: strconv.Itoa(DefaultLogLines),
			Help:  "most log lines a job run stores (all its attempts together); past it one line says how many were dropped",
			Check: component.Positive},
		{Flag: "job-log-bytes", Env: "SLIPWAY_JOB_LOG_BYTES", Default: strconv.Itoa(DefaultLogBytes),
			Help:  "most bytes of log text a job run stores; past it one line says how many lines and bytes were dropped",
			Check: component.Positive},
	}, drivers.Settings...),
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
	driver, err := drivers.FromEnv(ctx, env, "runtime")
	if err != nil {
		return nil, err
	}
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
	addonsConn, err := env.Conn("addons")
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
		Secrets: addonsv1.NewSecretsServiceClient(addonsConn), FilesDir: filepath.Join(env.DataDir, "jobs-files"),
	})
	if err != nil {
		return nil, err
	}
	env.Go(svc.Run)
	return &component.Instance{
		Services: []component.Service{{Desc: &jobsv1.JobsService_ServiceDesc, Impl: svc}},
		Consumers: []component.Consumer{
			component.ProjectDeletedConsumer(ProjectsConsumer, svc.DeleteProjectJobs),
			{Config: events.ConsumerConfig{Durable: BuildsConsumer, Subjects: BuildSubjects}, Handler: svc.BuildHandler()},
		},
	}, nil
}
