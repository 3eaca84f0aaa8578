package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	jobsv1 "github.com/slipwayhq/slipway/gen/slipway/jobs/v1"
	projectsv1 "github.com/slipwayhq/slipway/gen/slipway/projects/v1"
	"github.com/slipwayhq/slipway/pkg/authz"
	"github.com/slipwayhq/slipway/pkg/authz/authztest"
	"github.com/slipwayhq/slipway/pkg/catalog"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/events/eventstest"
	"github.com/slipwayhq/slipway/pkg/rpcserver"
	"github.com/slipwayhq/slipway/pkg/rpcserver/rpctest"
	"github.com/slipwayhq/slipway/pkg/runtime"
	"github.com/slipwayhq/slipway/pkg/runtime/process"
	"github.com/slipwayhq/slipway/pkg/secret"
	"github.com/slipwayhq/slipway/pkg/sqldb"
	"github.com/slipwayhq/slipway/pkg/sqldb/sqltest"
	"github.com/slipwayhq/slipway/pkg/testenv"
	"github.com/slipwayhq/slipway/services/jobs"
	"github.com/slipwayhq/slipway/services/jobs/migrations"
	"github.com/slipwayhq/slipway/services/projects"
	projectmigrations "github.com/slipwayhq/slipway/services/projects/migrations"
)

const (
	teamID     = "acme"
	projectID  = "web"
	adminCred  = "Bearer admin"
	viewerCred = "Bearer viewer"
	otherCred  = "Bearer other-team"
)

// quiet drops the services' logs: failures say what went wrong.
var quiet = slog.New(slog.DiscardHandler)

// harness is a jobs service on the process driver, served over gRPC with
// the real interceptor chain, next to a real projects service.
type harness struct {
	t        *testing.T
	store    jobs.Store
	stateDir string
	nc       *nats.Conn
	js       jetstream.JetStream
	projects projectsv1.ProjectsServiceClient
	catalog  *catalog.Catalog
	client   jobsv1.JobsServiceClient
	svc      *jobs.Service
	stop     func()
	// configure, when set, adjusts the service's options on every start.
	configure func(*jobs.Options)
}

func newHarness(t *testing.T, configure ...func(*jobs.Options)) *harness {
	t.Helper()
	return newHarnessOn(t, sqldb.SQLite, configure...)
}

// newHarnessOn is newHarness with the jobs store on engine.
func newHarnessOn(t *testing.T, engine sqldb.Dialect, configure ...func(*jobs.Options)) *harness {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	db := sqltest.Open(t, engine, migrations.Set, events.Migrations)
	box, err := secret.NewBox([]byte(strings.Repeat("k", 32)), "jobs-env")
	if err != nil {
		t.Fatal(err)
	}
	n := testenv.StartNATS(t)
	nc, err := nats.Connect(n.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	// The event stream and the outbox relay, as `slipway serve` runs them,
	// so tests can see what the service publishes and what the stream keeps.
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := events.EnsureStream(ctx, js); err != nil {
		t.Fatal(err)
	}
	relayCtx, stopRelay := context.WithCancel(ctx)
	relay := events.NewRelay(db, js, events.WithLogger(quiet))
	relayDone := make(chan struct{})
	go func() { defer close(relayDone); _ = relay.Run(relayCtx) }()
	t.Cleanup(func() { stopRelay(); <-relayDone })

	// The projects service, with the project the tests use.
	pdb := sqltest.Open(t, sqldb.SQLite, projectmigrations.Set, events.Migrations)
	pstore := projects.NewSQLStore(pdb, nil)
	now := time.Now().UTC()
	if err := pstore.Create(ctx, projects.Project{TeamID: teamID, ID: projectID, Name: "web", Region: "local", CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.Load("")
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, store: jobs.NewSQLStore(db, box, relay.Notify), stateDir: filepath.Join(dir, "runtime"), nc: nc, js: js, catalog: cat}
	// The jobs service makes internal calls only, so no authorizer.
	h.projects = projectsv1.NewProjectsServiceClient(rpctest.Serve(t, rpcserver.Options{}, func(s *grpc.Server) {
		projectsv1.RegisterProjectsServiceServer(s, projects.NewServer(pstore, cat))
	}))
	h.configure = func(o *jobs.Options) {
		for _, c := range configure {
			c(o)
		}
	}
	h.start("replica-1")
	return h
}

// start (re)starts the jobs service as replica owner, on the same store
// and runtime state as before: what a restart of the process does.
func (h *harness) start(owner string) {
	h.t.Helper()
	if h.stop != nil {
		h.stop()
	}
	driver, err := process.New(h.stateDir)
	if err != nil {
		h.t.Fatal(err)
	}
	opts := jobs.Options{
		Store: h.store, Driver: driver, Projects: h.projects, Catalog: h.catalog, NATS: h.nc, Owner: owner, Logger: quiet,
		LeaseTTL: 2 * time.Second, RetryBackoff: 50 * time.Millisecond,
	}
	if h.configure != nil {
		h.configure(&opts)
	}
	svc, err := jobs.New(opts)
	if err != nil {
		h.t.Fatal(err)
	}
	h.svc = svc
	authorizer := authz.New(authztest.Static{
		adminCred:  authztest.TeamToken(teamID, "admin"),
		viewerCred: authztest.TeamToken(teamID, "viewer"),
		otherCred:  authztest.TeamToken("other", "admin"),
	}, "internal-key")
	// srv is kept to stop the old instance's server on a restart: it
	// must not outlive the driver it serves from.
	var srv *grpc.Server
	h.client = jobsv1.NewJobsServiceClient(rpctest.Serve(h.t, rpcserver.Options{Authorizer: authorizer, Logger: quiet}, func(s *grpc.Server) {
		srv = s
		jobsv1.RegisterJobsServiceServer(s, svc)
	}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = svc.Run(ctx) }()
	var once sync.Once
	h.stop = func() {
		once.Do(func() {
			cancel()
			<-done
			srv.Stop()
			_ = driver.Close()
		})
	}
	h.t.Cleanup(h.stop)
}

func as(cred string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", cred)
}

func command(cmd string) *jobsv1.JobDeployment {
	return &jobsv1.JobDeployment{Docker: &jobsv1.DockerOverrides{ConfigType: "customCommand", CustomCommand: cmd}}
}

func (h *harness) manual(name, cmd string, mutate ...func(*jobsv1.JobSpec)) *jobsv1.Job {
	h.t.Helper()
	spec := &jobsv1.JobSpec{Name: name, Deployment: command(cmd)}
	for _, m := range mutate {
		m(spec)
	}
	resp, err := h.client.CreateManualJob(as(adminCred), &jobsv1.CreateManualJobRequest{ProjectId: projectID, Spec: spec})
	if err != nil {
		h.t.Fatalf("CreateManualJob(%s): %v", name, err)
	}
	return resp.GetJob()
}

func (h *harness) run(job string, o *jobsv1.RunOverrides) *jobsv1.JobRun {
	h.t.Helper()
	resp, err := h.client.StartJobRun(as(adminCred), &jobsv1.StartJobRunRequest{ProjectId: projectID, JobId: job, Overrides: o})
	if err != nil {
		h.t.Fatalf("StartJobRun(%s): %v", job, err)
	}
	return resp.GetRun()
}

func (h *harness) getRun(job, id string) *jobsv1.JobRun {
	h.t.Helper()
	resp, err := h.client.GetJobRun(as(adminCred), &jobsv1.GetJobRunRequest{ProjectId: projectID, JobId: job, RunId: id})
	if err != nil {
		h.t.Fatalf("GetJobRun: %v", err)
	}
	return resp.GetRun()
}

// waitRun polls the run until ok or the timeout.
func (h *harness) waitRun(job, id string, timeout time.Duration, ok func(*jobsv1.JobRun) bool) *jobsv1.JobRun {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r := h.getRun(job, id)
		if ok(r) {
			return r
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("run %s did not get there in %v: %v", id, timeout, r)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func concluded(r *jobsv1.JobRun) bool { return r.GetConcluded() }

func (h *harness) logs(job string, req *jobsv1.GetJobLogsRequest) []string {
	h.t.Helper()
	if req == nil {
		req = &jobsv1.GetJobLogsRequest{}
	}
	req.ProjectId, req.JobId, req.Direction = projectID, job, "forward"
	resp, err := h.client.GetJobLogs(as(adminCred), req)
	if err != nil {
		h.t.Fatalf("GetJobLogs: %v", err)
	}
	var out []string
	for _, l := range resp.GetLines() {
		out = append(out, l.GetLog())
	}
	return out
}

func wantCode(t *testing.T, err error, code codes.Code, field string) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("err = %v, want %v", err, code)
	}
	// field names the exact JSON path of a field violation, or the reason.
	if d := errDetails(err); field != "" && !strings.Contains(d, `field:"`+field+`"`) && !strings.Contains(d, `reason:"`+field+`"`) {
		t.Fatalf("err = %v (%s), want a detail about %q", err, d, field)
	}
}

func errDetails(err error) string { return fmt.Sprint(status.Convert(err).Details()) }

func TestManualRunSucceedsWithEnvAndLogs(t *testing.T) {
	h := newHarness(t)
	job := h.manual("hello", `echo "hello $WHO"; echo warning >&2; pwd`, func(s *jobsv1.JobSpec) {
		s.RuntimeEnvironment = map[string]string{"WHO": "world", "SECRET": "s3cr3t"}
	})
	if job.GetJobType() != "manual" || job.GetCluster().GetId() != "process" || job.GetBilling().GetDeploymentPlan() == "" {
		t.Fatalf("job = %v", job)
	}
	env, err := h.client.GetJobRuntimeEnvironment(as(adminCred), &jobsv1.GetJobRuntimeEnvironmentRequest{ProjectId: projectID, JobId: "hello"})
	if err != nil || env.GetRuntimeEnvironment()["SECRET"] != "s3cr3t" {
		t.Fatalf("runtime environment = %v, %v", env, err)
	}
	r := h.run("hello", &jobsv1.RunOverrides{RuntimeEnvironment: map[string]string{"WHO": "override"}})
	if r.GetStatus() != "RUNNING" || !strings.HasPrefix(r.GetRunName(), "hello-") {
		t.Fatalf("started run = %v", r)
	}
	r = h.waitRun("hello", r.GetId(), 10*time.Second, concluded)
	if r.GetStatus() != "SUCCESS" || r.GetSucceeded() != 1 || r.GetFailed() != 0 || r.GetActive() != 0 || r.GetExitCode() != 0 || r.GetConcludedAt() == nil {
		t.Fatalf("run = %v", r)
	}
	lines := h.logs("hello", &jobsv1.GetJobLogsRequest{RunId: r.GetId()})
	if len(lines) != 3 || lines[0] != "hello override" || !slices.Contains(lines, "warning") {
		t.Fatalf("logs = %q", lines)
	}
	if got := h.logs("hello", &jobsv1.GetJobLogsRequest{TextIncludes: "warn"}); !slices.Equal(got, []string{"warning"}) {
		t.Fatalf("textIncludes logs = %q", got)
	}
	if got := h.logs("hello", &jobsv1.GetJobLogsRequest{RegexNotIncludes: "^(hello|warning)"}); len(got) != 1 || !strings.HasPrefix(got[0], "/") {
		t.Fatalf("regexNotIncludes logs = %q (want the working directory)", got)
	}
	if got := h.logs("hello", &jobsv1.GetJobLogsRequest{LineLimit: 1}); len(got) != 1 {
		t.Fatalf("lineLimit 1 gave %q", got)
	}
}

func TestFailingRunRetriesThenFails(t *testing.T) {
	h := newHarness(t)
	h.manual("flaky", `echo attempt; exit 3`, func(s *jobsv1.JobSpec) { s.BackoffLimit = 2 })
	r := h.run("flaky", nil)
	r = h.waitRun("flaky", r.GetId(), 15*time.Second, concluded)
	if r.GetStatus() != "FAILED" || r.GetFailed() != 3 || r.GetRetries() != 2 || r.GetExitCode() != 3 || r.GetReason() != "Error" || r.GetBackoffLimit() != 2 {
		t.Fatalf("run = %v", r)
	}
	if lines := h.logs("flaky", nil); len(lines) != 3 {
		t.Fatalf("want one line per attempt, got %q", lines)
	}
}

func TestDeadlineKillsRun(t *testing.T) {
	h := newHarness(t)
	h.manual("slow", `sleep 30`, func(s *jobsv1.JobSpec) { s.ActiveDeadlineSeconds = proto.Int32(1); s.BackoffLimit = 3 })
	start := time.Now()
	r := h.run("slow", nil)
	r = h.waitRun("slow", r.GetId(), 10*time.Second, concluded)
	if r.GetStatus() != "FAILED" || r.GetReason() != "DeadlineExceeded" || r.GetRetries() != 0 {
		t.Fatalf("run = %v", r)
	}
	if time.Since(start) > 8*time.Second {
		t.Fatalf("the deadline took %v to act", time.Since(start))
	}
}

func TestAbort(t *testing.T) {
	h := newHarness(t)
	h.manual("long", `echo started; sleep 30`)
	r := h.run("long", nil)
	h.waitRun("long", r.GetId(), 5*time.Second, func(r *jobsv1.JobRun) bool { return r.GetActive() == 1 })
	if _, err := h.client.AbortJobRun(as(viewerCred), &jobsv1.AbortJobRunRequest{ProjectId: projectID, JobId: "long", RunId: r.GetId()}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("a viewer aborted a run: %v", err)
	}
	if _, err := h.client.AbortJobRun(as(adminCred), &jobsv1.AbortJobRunRequest{ProjectId: projectID, JobId: "long", RunId: r.GetId()}); err != nil {
		t.Fatal(err)
	}
	r = h.getRun("long", r.GetId())
	if r.GetStatus() != "FAILED" || r.GetReason() != "Aborted" || !r.GetConcluded() {
		t.Fatalf("aborted run = %v", r)
	}
	_, err := h.client.AbortJobRun(as(adminCred), &jobsv1.AbortJobRunRequest{ProjectId: projectID, JobId: "long", RunId: r.GetId()})
	wantCode(t, err, codes.FailedPrecondition, "RUN_CONCLUDED")
	// The process is stopped: the workload ends and is removed.
	driver, err := process.New(h.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	defer driver.Close()
	waitFor(t, 15*time.Second, "the aborted workload to go", func() bool {
		list, err := driver.List(context.Background(), map[string]string{"dev.slipway.run": r.GetId()})
		return err == nil && (len(list) == 0 || list[0].State == runtime.StateExited)
	})
}

func waitFor(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// TestRestartReconciles stops the service while runs are active, as a
// crash would (the workloads keep running), and starts it again.
func TestRestartReconciles(t *testing.T) {
	h := newHarness(t)
	h.manual("survivor", `echo before; sleep 2; echo after`)
	h.manual("quick", `sleep 1; exit 4`)
	long := h.run("survivor", nil)
	quick := h.run("quick", nil)
	h.waitRun("survivor", long.GetId(), 5*time.Second, func(r *jobsv1.JobRun) bool { return r.GetActive() == 1 })
	h.waitRun("quick", quick.GetId(), 5*time.Second, func(r *jobsv1.JobRun) bool { return r.GetActive() == 1 })
	h.stop()
	time.Sleep(1500 * time.Millisecond) // quick exits while no service runs

	h.start("replica-1")
	r := h.waitRun("survivor", long.GetId(), 10*time.Second, concluded)
	if r.GetStatus() != "SUCCESS" {
		t.Fatalf("the run that outlived the service = %v", r)
	}
	if lines := h.logs("survivor", nil); !slices.Equal(lines, []string{"before", "after"}) {
		t.Fatalf("logs across the restart = %q (want each line once)", lines)
	}
	r = h.waitRun("quick", quick.GetId(), 10*time.Second, concluded)
	if r.GetStatus() != "FAILED" || r.GetExitCode() != 4 {
		t.Fatalf("the run that ended while no service ran = %v (want its real exit code)", r)
	}
}

// TestTakeoverAfterLeaseExpires: another replica adopts the runs of one
// that died, once its lease has expired.
func TestTakeoverAfterLeaseExpires(t *testing.T) {
	h := newHarness(t)
	h.manual("adopted", `sleep 1; echo done`)
	r := h.run("adopted", nil)
	h.waitRun("adopted", r.GetId(), 5*time.Second, func(r *jobsv1.JobRun) bool { return r.GetActive() == 1 })
	h.stop()
	h.start("replica-2")
	r = h.waitRun("adopted", r.GetId(), 15*time.Second, concluded)
	if r.GetStatus() != "SUCCESS" {
		t.Fatalf("adopted run = %v", r)
	}
}

// TestLostWorkload: a run whose workload vanished (the runtime's state
// was wiped) is not RUNNING forever.
func TestLostWorkload(t *testing.T) {
	h := newHarness(t)
	h.manual("vanishing", `sleep 30`)
	r := h.run("vanishing", nil)
	h.waitRun("vanishing", r.GetId(), 5*time.Second, func(r *jobsv1.JobRun) bool { return r.GetActive() == 1 })
	h.stop()
	// Kill the workload and wipe the runtime's record of it.
	driver, err := process.New(h.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	list, _ := driver.List(context.Background(), map[string]string{"dev.slipway.run": r.GetId()})
	for _, w := range list {
		_ = driver.Stop(context.Background(), w.ID, 0)
		if _, err := driver.Wait(context.Background(), w.ID); err != nil {
			t.Fatal(err)
		}
		if err := driver.Remove(context.Background(), w.ID); err != nil {
			t.Fatal(err)
		}
	}
	_ = driver.Close()
	h.start("replica-1")
	r = h.waitRun("vanishing", r.GetId(), 10*time.Second, concluded)
	if r.GetStatus() != "FAILED" || r.GetReason() != "Lost" {
		t.Fatalf("run of a lost workload = %v", r)
	}
}

func TestCron(t *testing.T) {
	h := newHarness(t)
	ctx := as(adminCred)
	resp, err := h.client.CreateCronJob(ctx, &jobsv1.CreateCronJobRequest{ProjectId: projectID, Spec: &jobsv1.JobSpec{
		Name: "nightly", Schedule: "0 3 * * *", ConcurrencyPolicy: "forbid", Deployment: command(`sleep 30`),
	}})
	if err != nil {
		t.Fatal(err)
	}
	if c := resp.GetJob().GetSettings().GetCron(); c.GetSchedule() != "0 3 * * *" || c.GetConcurrencyPolicy() != "Forbid" {
		t.Fatalf("cron settings = %v", c)
	}
	// Make the schedule due now, as if 3 am had come.
	due := func() {
		t.Helper()
		if _, err := h.store.UpdateJob(context.Background(), teamID, projectID, "nightly", func(j *jobs.Job) ([]events.Event, error) {
			j.NextRunAt = time.Now().Add(-time.Second).UTC()
			return nil, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	runs := func() []*jobsv1.JobRun {
		t.Helper()
		resp, err := h.client.ListJobRuns(ctx, &jobsv1.ListJobRunsRequest{ProjectId: projectID, JobId: "nightly"})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetRuns()
	}
	// A second replica ticks on the same database: each tick fires once.
	h2 := *h
	h2.stop = nil
	h2.start("replica-2")
	due()
	waitFor(t, 5*time.Second, "the tick to fire", func() bool { return len(runs()) >= 1 })
	time.Sleep(2500 * time.Millisecond) // both replicas have ticked a few times
	if n := len(runs()); n != 1 {
		t.Fatalf("one tick fired %d runs with two replicas", n)
	}
	j, err := h.store.GetJob(context.Background(), teamID, projectID, "nightly")
	if err != nil || !j.NextRunAt.After(time.Now()) || j.NextRunAt.Hour() != 3 {
		t.Fatalf("next tick = %v, %v (want the next 03:00)", j.NextRunAt, err)
	}

	// forbid: a tick while the run is active fires nothing.
	due()
	time.Sleep(2 * time.Second)
	if n := len(runs()); n != 1 {
		t.Fatalf("forbid fired a second run: %d runs", n)
	}
	// replace: the active run is aborted and a new one starts.
	if _, err := h.client.PatchCronJob(ctx, &jobsv1.PatchCronJobRequest{ProjectId: projectID, JobId: "nightly", Spec: &jobsv1.JobPatch{ConcurrencyPolicy: proto.String("replace")}}); err != nil {
		t.Fatal(err)
	}
	first := runs()[0]
	due()
	waitFor(t, 5*time.Second, "the replacing run", func() bool { return len(runs()) == 2 })
	if r := h.getRun("nightly", first.GetId()); r.GetReason() != "Aborted" {
		t.Fatalf("replaced run = %v", r)
	}
	// Suspended schedules do not fire; resuming schedules the next tick.
	if _, err := h.client.SuspendJob(ctx, &jobsv1.SuspendJobRequest{ProjectId: projectID, JobId: "nightly"}); err != nil {
		t.Fatal(err)
	}
	if j, _ := h.store.GetJob(context.Background(), teamID, projectID, "nightly"); !j.Suspended || !j.NextRunAt.IsZero() {
		t.Fatalf("suspended job = %+v", j)
	}
	if _, err := h.client.ResumeJob(ctx, &jobsv1.ResumeJobRequest{ProjectId: projectID, JobId: "nightly"}); err != nil {
		t.Fatal(err)
	}
	if j, _ := h.store.GetJob(context.Background(), teamID, projectID, "nightly"); j.Suspended || j.NextRunAt.IsZero() {
		t.Fatalf("resumed job = %+v", j)
	}
	// A manual job has no schedule to suspend.
	h.manual("once", "true")
	_, err = h.client.SuspendJob(ctx, &jobsv1.SuspendJobRequest{ProjectId: projectID, JobId: "once"})
	wantCode(t, err, codes.FailedPrecondition, "NOT_A_CRON_JOB")
}

func TestProjectDeletionRemovesJobs(t *testing.T) {
	h := newHarness(t)
	h.manual("doomed", `sleep 30`)
	r := h.run("doomed", nil)
	h.waitRun("doomed", r.GetId(), 5*time.Second, func(r *jobsv1.JobRun) bool { return r.GetActive() == 1 })
	// The service's handler, as the projects-deleted consumer calls it.
	driver, err := process.New(h.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	defer driver.Close()
	svc, err := jobs.New(jobs.Options{Store: h.store, Driver: driver, Projects: h.projects, Catalog: h.catalog, NATS: h.nc, Owner: "handler"})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := events.New("projects", "project", "deleted", teamID+"/"+projectID, map[string]string{"teamId": teamID, "id": projectID})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // redelivery is harmless
		if err := events.ProjectDeletedHandler(svc.DeleteProjectJobs)(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.store.GetJob(context.Background(), teamID, projectID, "doomed"); !errors.Is(err, jobs.ErrNotFound) {
		t.Fatalf("job of a deleted project: %v", err)
	}
	waitFor(t, 15*time.Second, "the run's process to stop", func() bool {
		list, err := driver.List(context.Background(), map[string]string{"dev.slipway.run": r.GetId()})
		return err == nil && (len(list) == 0 || list[0].State == runtime.StateExited)
	})
}

func TestBadInput(t *testing.T) {
	h := newHarness(t)
	ctx := as(adminCred)
	create := func(s *jobsv1.JobSpec) error {
		_, err := h.client.CreateManualJob(ctx, &jobsv1.CreateManualJobRequest{ProjectId: projectID, Spec: s})
		return err
	}
	cron := func(s *jobsv1.JobSpec) error {
		_, err := h.client.CreateCronJob(ctx, &jobsv1.CreateCronJobRequest{ProjectId: projectID, Spec: s})
		return err
	}
	big := strings.Repeat("x", 60000)
	env := map[string]string{}
	for i := range 5 {
		env["V"+string(rune('A'+i))] = big
	}
	cases := []struct {
		name  string
		err   error
		field string
	}{
		{"invalid cron", cron(&jobsv1.JobSpec{Name: "job-c1", Schedule: "61 * * * *", Deployment: command("true")}), "schedule"},
		{"cron without schedule", cron(&jobsv1.JobSpec{Name: "job-c2", Deployment: command("true")}), "schedule"},
		{"cron every second", cron(&jobsv1.JobSpec{Name: "job-c3", Schedule: "@every 1s", Deployment: command("true")}), "schedule"},
		{"cron every 100ms", cron(&jobsv1.JobSpec{Name: "job-c4", Schedule: "@every 100ms", Deployment: command("true")}), "schedule"},
		{"cron seconds field", cron(&jobsv1.JobSpec{Name: "job-c5", Schedule: "* * * * * *", Deployment: command("true")}), "schedule"},
		{"cron time zone", cron(&jobsv1.JobSpec{Name: "job-c6", Schedule: "CRON_TZ=Europe/Paris 0 3 * * *", Deployment: command("true")}), "schedule"},
		{"schedule on a manual job", create(&jobsv1.JobSpec{Name: "job-m1", Schedule: "* * * * *", Deployment: command("true")}), "schedule"},
		{"negative backoff limit", create(&jobsv1.JobSpec{Name: "job-m2", BackoffLimit: -1, Deployment: command("true")}), "backoffLimit"},
		{"zero deadline", create(&jobsv1.JobSpec{Name: "job-m3", ActiveDeadlineSeconds: proto.Int32(0), Deployment: command("true")}), "activeDeadlineSeconds"},
		{"unknown configType", create(&jobsv1.JobSpec{Name: "job-m4", Deployment: &jobsv1.JobDeployment{Docker: &jobsv1.DockerOverrides{ConfigType: "shell"}}}), "deployment.docker.configType"},
		{"image on the process driver", create(&jobsv1.JobSpec{Name: "job-m5", Deployment: &jobsv1.JobDeployment{External: &jobsv1.ExternalImage{ImagePath: "busybox"}, Docker: command("true").Docker}}), "deployment.external.imagePath"},
		{"no command without an image", create(&jobsv1.JobSpec{Name: "job-m6"}), "deployment.docker.customCommand"},
		{"command without its configType", create(&jobsv1.JobSpec{Name: "job-m7", Deployment: &jobsv1.JobDeployment{Docker: &jobsv1.DockerOverrides{ConfigType: "default", CustomCommand: "true"}}}), "deployment.docker.customCommand"},
		{"oversize env", create(&jobsv1.JobSpec{Name: "job-m8", Deployment: command("true"), RuntimeEnvironment: env}), "runtimeEnvironment"},
		{"bad env name", create(&jobsv1.JobSpec{Name: "job-m9", Deployment: command("true"), RuntimeEnvironment: map[string]string{"A B": "x"}}), `runtimeEnvironment[\"A B\"]`},
		{"unknown plan", create(&jobsv1.JobSpec{Name: "job-m10", Deployment: command("true"), Billing: &jobsv1.JobBilling{DeploymentPlan: "huge"}}), "billing.deploymentPlan"},
		{"unterminated quote", create(&jobsv1.JobSpec{Name: "job-m11", Deployment: command(`echo "oops`)}), "deployment.docker.customCommand"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { wantCode(t, c.err, codes.InvalidArgument, c.field) })
	}
	_, err := h.client.CreateManualJob(ctx, &jobsv1.CreateManualJobRequest{ProjectId: "nope", Spec: &jobsv1.JobSpec{Name: "job-m12", Deployment: command("true")}})
	wantCode(t, err, codes.NotFound, "")
	_, err = h.client.CreateManualJob(as(otherCred), &jobsv1.CreateManualJobRequest{ProjectId: projectID, Spec: &jobsv1.JobSpec{Name: "job-m13", Deployment: command("true")}})
	wantCode(t, err, codes.NotFound, "")
	_, err = h.client.CreateManualJob(as(viewerCred), &jobsv1.CreateManualJobRequest{ProjectId: projectID, Spec: &jobsv1.JobSpec{Name: "job-m14", Deployment: command("true")}})
	wantCode(t, err, codes.PermissionDenied, "")

	h.manual("dup", "true")
	_, err = h.client.CreateManualJob(ctx, &jobsv1.CreateManualJobRequest{ProjectId: projectID, Spec: &jobsv1.JobSpec{Name: "dup", Deployment: command("true")}})
	wantCode(t, err, codes.AlreadyExists, "")
	_, err = h.client.PatchCronJob(ctx, &jobsv1.PatchCronJobRequest{ProjectId: projectID, JobId: "dup", Spec: &jobsv1.JobPatch{}})
	wantCode(t, err, codes.NotFound, "")
	_, err = h.client.StartJobRun(ctx, &jobsv1.StartJobRunRequest{ProjectId: projectID, JobId: "dup", Overrides: &jobsv1.RunOverrides{Billing: &jobsv1.RunBilling{DeploymentPlan: "huge"}}})
	wantCode(t, err, codes.InvalidArgument, "billing.deploymentPlan")
	_, err = h.client.GetJobLogs(ctx, &jobsv1.GetJobLogsRequest{ProjectId: projectID, JobId: "dup", RegexIncludes: "("})
	wantCode(t, err, codes.InvalidArgument, "regexIncludes")
	_, err = h.client.GetJobLogs(ctx, &jobsv1.GetJobLogsRequest{ProjectId: projectID, JobId: "dup", LineLimit: 10001})
	wantCode(t, err, codes.InvalidArgument, "lineLimit")
	_, err = h.client.GetJobLogs(ctx, &jobsv1.GetJobLogsRequest{ProjectId: projectID, JobId: "dup", Direction: "sideways"})
	wantCode(t, err, codes.InvalidArgument, "direction")
	_, err = h.client.UpdateJobRuntimeEnvironment(ctx, &jobsv1.UpdateJobRuntimeEnvironmentRequest{ProjectId: projectID, JobId: "dup", RuntimeEnvironment: map[string]string{"": "x"}})
	wantCode(t, err, codes.InvalidArgument, `runtimeEnvironment[\"\"]`)
	_, err = h.client.UpdateJobRuntimeEnvironment(ctx, &jobsv1.UpdateJobRuntimeEnvironmentRequest{ProjectId: projectID, JobId: "dup", RuntimeEnvironment: env})
	wantCode(t, err, codes.InvalidArgument, "runtimeEnvironment")
	_, err = h.client.PatchManualJob(ctx, &jobsv1.PatchManualJobRequest{ProjectId: projectID, JobId: "dup", Spec: &jobsv1.JobPatch{BackoffLimit: proto.Int32(-1)}})
	wantCode(t, err, codes.InvalidArgument, "backoffLimit")
	_, err = h.client.PatchManualJob(ctx, &jobsv1.PatchManualJobRequest{ProjectId: projectID, JobId: "dup", Spec: &jobsv1.JobPatch{Schedule: proto.String("@daily")}})
	wantCode(t, err, codes.InvalidArgument, "schedule")
	_, err = h.client.ListJobRuns(ctx, &jobsv1.ListJobRunsRequest{ProjectId: projectID, JobId: "dup", PerPage: 101})
	wantCode(t, err, codes.InvalidArgument, "perPage")
	_, err = h.client.ListJobRuns(ctx, &jobsv1.ListJobRunsRequest{ProjectId: projectID, JobId: "dup", Cursor: "!!"})
	wantCode(t, err, codes.InvalidArgument, "cursor")
	_, err = h.client.StartJobRun(ctx, &jobsv1.StartJobRunRequest{ProjectId: projectID, JobId: "dup", Overrides: &jobsv1.RunOverrides{Deployment: &jobsv1.JobDeployment{External: &jobsv1.ExternalImage{ImagePath: "busybox"}}}})
	wantCode(t, err, codes.InvalidArgument, "deployment.external.imagePath")
}

func TestPutIsIdempotentAndPatchApplies(t *testing.T) {
	h := newHarness(t)
	ctx := as(adminCred)
	put := func(desc string) *jobsv1.Job {
		resp, err := h.client.PutManualJob(ctx, &jobsv1.PutManualJobRequest{ProjectId: projectID, Spec: &jobsv1.JobSpec{Name: "Report Job", Description: desc, Deployment: command("true")}})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetJob()
	}
	a := put("one")
	b := put("one")
	if a.GetId() != "report-job" || !proto.Equal(a.GetUpdatedAt(), b.GetUpdatedAt()) {
		t.Fatalf("repeated PUT changed the job: %v then %v", a, b)
	}
	if c := put("two"); c.GetDescription() != "two" {
		t.Fatalf("PUT did not replace: %v", c)
	}
	resp, err := h.client.PatchManualJob(ctx, &jobsv1.PatchManualJobRequest{ProjectId: projectID, JobId: "report-job", Spec: &jobsv1.JobPatch{BackoffLimit: proto.Int32(4)}})
	if err != nil || resp.GetJob().GetBackoffLimit() != 4 || resp.GetJob().GetDescription() != "two" {
		t.Fatalf("patch = %v, %v", resp, err)
	}
	_, err = h.client.PutCronJob(ctx, &jobsv1.PutCronJobRequest{ProjectId: projectID, Spec: &jobsv1.JobSpec{Name: "Report Job", Schedule: "@hourly", Deployment: command("true")}})
	wantCode(t, err, codes.FailedPrecondition, "JOB_TYPE_MISMATCH")
	list, err := h.client.ListJobs(ctx, &jobsv1.ListJobsRequest{ProjectId: projectID})
	if err != nil || len(list.GetJobs()) != 1 {
		t.Fatalf("list = %v, %v", list, err)
	}
	if _, err := h.client.DeleteJob(ctx, &jobsv1.DeleteJobRequest{ProjectId: projectID, JobId: "report-job"}); err != nil {
		t.Fatal(err)
	}
	_, err = h.client.GetJob(ctx, &jobsv1.GetJobRequest{ProjectId: projectID, JobId: "report-job"})
	wantCode(t, err, codes.NotFound, "")
}

func TestTailJobLogs(t *testing.T) {
	h := newHarness(t)
	h.manual("chatty", `echo one; sleep 1; echo two; sleep 1; echo three`)
	first := h.run("chatty", nil)
	h.waitRun("chatty", first.GetId(), 10*time.Second, concluded)

	ctx, cancel := context.WithTimeout(as(adminCred), 15*time.Second)
	defer cancel()
	stream, err := h.client.TailJobLogs(ctx, &jobsv1.TailJobLogsRequest{ProjectId: projectID, JobId: "chatty", LineLimit: 2})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	recv := func(n int) {
		t.Helper()
		for len(got) < n {
			resp, err := stream.Recv()
			if err != nil {
				t.Fatalf("after %q: %v", got, err)
			}
			for _, l := range resp.GetLines() {
				got = append(got, l.GetLog())
			}
		}
	}
	recv(2) // the backlog: the last two lines
	if !slices.Equal(got, []string{"two", "three"}) {
		t.Fatalf("backlog = %q", got)
	}
	h.run("chatty", nil) // live lines follow, each once
	recv(5)
	if !slices.Equal(got, []string{"two", "three", "one", "two", "three"}) {
		t.Fatalf("tail = %q", got)
	}
	// Another team cannot tail.
	other, err := h.client.TailJobLogs(as(otherCred), &jobsv1.TailJobLogsRequest{ProjectId: projectID, JobId: "chatty"})
	if err == nil {
		_, err = other.Recv()
	}
	wantCode(t, err, codes.NotFound, "")
}

// TestLiveLogLinesStayOutOfTheStream shows lasting events apart from live
// traffic: a run's log line reaches live subscribers but never the event
// stream (which keeps its messages for days), while the run's lifecycle
// event does land there.
func TestLiveLogLinesStayOutOfTheStream(t *testing.T) {
	h := newHarness(t)
	const secretLine = "password=hunter2"
	h.manual("leaky", `echo `+secretLine)
	live, err := h.nc.SubscribeSync(events.LiveSubject("jobs", "logs", teamID, projectID, "leaky"))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	r := h.run("leaky", nil)
	if r = h.waitRun("leaky", r.GetId(), 10*time.Second, concluded); r.GetStatus() != "SUCCESS" {
		t.Fatalf("run = %v", r)
	}
	msg, err := live.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatalf("no live log line was published: %v", err)
	}
	if !strings.Contains(string(msg.Data), secretLine) {
		t.Fatalf("live message = %s, want the log line", msg.Data)
	}

	ctx := context.Background()
	stream, err := h.js.Stream(ctx, events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	// The lifecycle event of the run lands (the relay publishes it shortly
	// after the commit)...
	waitFor(t, 15*time.Second, "the run's succeeded event in the stream", func() bool {
		_, err := stream.GetLastMsgForSubject(ctx, events.SubjectFor("jobs", "run", "succeeded"))
		return err == nil
	})
	// ...but nothing on a live subject, and no message holds the line.
	if _, err := stream.GetLastMsgForSubject(ctx, msg.Subject); !errors.Is(err, jetstream.ErrMsgNotFound) {
		t.Errorf("the stream has a message on the live subject %s: %v", msg.Subject, err)
	}
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(">"))
	if err != nil {
		t.Fatal(err)
	}
	for subject := range info.State.Subjects {
		if !strings.HasPrefix(subject, "slipway.") {
			t.Errorf("the stream holds a message on %s", subject)
		}
	}
	for seq := info.State.FirstSeq; seq > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("read message %d: %v", seq, err)
		}
		if strings.Contains(string(m.Data), secretLine) {
			t.Errorf("message %d on %s holds the log line: %s", seq, m.Subject, m.Data)
		}
	}
}

// streamEvents reads every event on subjects the stream holds, waiting for
// n of them.
func (h *harness) streamEvents(n int, subjects ...string) []events.Event {
	h.t.Helper()
	out := eventstest.Collect(h.t, h.js, subjects, n, 0, nil)
	if len(out) != n {
		h.t.Fatalf("got %d events on %v, want %d: %v", len(out), subjects, n, out)
	}
	return out
}

// TestJobResourceEvents checks the contract with the projects service: a
// job's creation, change and deletion are announced as project-resource
// events of kind job, next to the jobs service's own job events.
func TestJobResourceEvents(t *testing.T) {
	h := newHarness(t)
	ctx := as(adminCred)
	put := func(desc string) {
		t.Helper()
		if _, err := h.client.PutManualJob(ctx, &jobsv1.PutManualJobRequest{ProjectId: projectID, Spec: &jobsv1.JobSpec{Name: "Tracked", Description: desc, Deployment: command("true")}}); err != nil {
			t.Fatal(err)
		}
	}
	put("one")
	put("one") // no change, no event
	put("two")
	if _, err := h.client.DeleteJob(ctx, &jobsv1.DeleteJobRequest{ProjectId: projectID, JobId: "tracked"}); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		verb events.ResourceVerb
		desc string
	}{{events.ResourceCreated, "one"}, {events.ResourceUpdated, "two"}, {events.ResourceDeleted, "two"}}
	got := h.streamEvents(len(want), events.ProjectResourceSubjects()...)
	for i, ev := range got {
		verb, r, ok, err := events.ParseProjectResource(ev)
		if err != nil || !ok {
			t.Fatalf("event %d (%s) is no project resource: %v", i, ev.Type, err)
		}
		if verb != want[i].verb || r != (events.ProjectResource{TeamID: teamID, ProjectID: projectID, Kind: events.ResourceJob, ID: "tracked", Name: "Tracked", Description: want[i].desc, Type: "manual"}) {
			t.Errorf("event %d = %s %+v, want %s of the job", i, verb, r, want[i].verb)
		}
	}
	// The jobs service's own events are still there, one per change.
	own := h.streamEvents(len(want), events.SubjectFor("jobs", "job", "*"))
	for i, ev := range own {
		if ev.Type != events.SubjectFor("jobs", "job", string(want[i].verb)) {
			t.Errorf("own event %d = %s, want job.%s", i, ev.Type, want[i].verb)
		}
	}
}

// TestStoredScheduleNoLongerValid: a schedule stored before the syntax
// was narrowed ("@every 1s") neither fires nor fails every tick: the job
// is unscheduled once.
func TestStoredScheduleNoLongerValid(t *testing.T) {
	h := newHarness(t)
	ctx := as(adminCred)
	if _, err := h.client.CreateCronJob(ctx, &jobsv1.CreateCronJobRequest{ProjectId: projectID, Spec: &jobsv1.JobSpec{
		Name: "legacy", Schedule: "@hourly", Deployment: command(`true`),
	}}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.store.UpdateJob(context.Background(), teamID, projectID, "legacy", func(j *jobs.Job) ([]events.Event, error) {
		j.Schedule, j.NextRunAt = "@every 1s", time.Now().Add(-time.Second).UTC()
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the job to be unscheduled", func() bool {
		j, err := h.store.GetJob(context.Background(), teamID, projectID, "legacy")
		return err == nil && j.NextRunAt.IsZero()
	})
	time.Sleep(1500 * time.Millisecond)
	resp, err := h.client.ListJobRuns(ctx, &jobsv1.ListJobRunsRequest{ProjectId: projectID, JobId: "legacy"})
	if err != nil || len(resp.GetRuns()) != 0 {
		t.Fatalf("runs of a job with an invalid stored schedule = %v, %v", resp.GetRuns(), err)
	}
	// A valid schedule set through the API schedules it again.
	if _, err := h.client.PatchCronJob(ctx, &jobsv1.PatchCronJobRequest{ProjectId: projectID, JobId: "legacy", Spec: &jobsv1.JobPatch{Schedule: proto.String("@daily")}}); err != nil {
		t.Fatal(err)
	}
	if j, err := h.store.GetJob(context.Background(), teamID, projectID, "legacy"); err != nil || j.NextRunAt.IsZero() {
		t.Fatalf("after a valid schedule: next tick %v, %v", j.NextRunAt, err)
	}
}

// TestConcurrentRunsLeaveNothingBehind: many short runs at once leave no
// runtime directory behind, and what a crash leaves (a finished workload
// of a concluded run, a half-deleted directory) is swept at start-up.
func TestConcurrentRunsLeaveNothingBehind(t *testing.T) {
	h := newHarness(t)
	h.manual("burst", `echo one; echo two >&2`)
	const runs = 100
	ids := make([]string, runs)
	var wg sync.WaitGroup
	for i := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := h.client.StartJobRun(as(adminCred), &jobsv1.StartJobRunRequest{ProjectId: projectID, JobId: "burst"})
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = resp.GetRun().GetId()
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for _, id := range ids {
		if r := h.waitRun("burst", id, 90*time.Second, concluded); r.GetStatus() != "SUCCESS" {
			t.Fatalf("run = %v", r)
		}
	}
	waitFor(t, 10*time.Second, "every runtime directory to go", func() bool { return len(stateEntries(t, h.stateDir)) == 0 })

	// A crash between a run's conclusion and its workload's removal, and
	// one in the middle of a removal.
	h.stop()
	driver, err := process.New(h.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	w, err := driver.Start(context.Background(), runtime.Spec{Command: []string{"true"}, Labels: map[string]string{
		"dev.slipway.service": "jobs", "dev.slipway.team": teamID, "dev.slipway.project": projectID,
		"dev.slipway.job": "burst", "dev.slipway.run": ids[0], "dev.slipway.attempt": "1",
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := driver.Wait(context.Background(), w); err != nil {
		t.Fatal(err)
	}
	_ = driver.Close()
	half := filepath.Join(h.stateDir, "00112233445566778899aabb")
	if err := os.MkdirAll(half, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(half, "exit"), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	h.start("replica-1")
	waitFor(t, 10*time.Second, "the leftovers to be swept", func() bool { return len(stateEntries(t, h.stateDir)) == 0 })
}

func stateEntries(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// TestNorthflankFields: the fields of Northflank's job types that Slipway
// cannot honour are refused with a 400 naming the field and saying so
// (never accepted and ignored); null and empty values, which ask for
// nothing, pass. suspended, which it can honour, suspends a cron job in
// a patch as Northflank's PatchJobCron does.
func TestNorthflankFields(t *testing.T) {
	h := newHarness(t)
	ctx := as(adminCred)
	value := func(js string) *structpb.Value {
		v := &structpb.Value{}
		if err := protojson.Unmarshal([]byte(js), v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	spec := func(name string, set func(*jobsv1.JobSpec)) error {
		s := &jobsv1.JobSpec{Name: name, Deployment: command("true")}
		set(s)
		_, err := h.client.CreateManualJob(ctx, &jobsv1.CreateManualJobRequest{ProjectId: projectID, Spec: s})
		return err
	}
	refused := []struct {
		field string
		err   error
	}{
		{"stageId", spec("nf-1", func(s *jobsv1.JobSpec) { s.StageId = value(`"stage-1"`) })},
		{"runtimeFiles", spec("nf-2", func(s *jobsv1.JobSpec) {
			s.RuntimeFiles = value(`{"/etc/secret": {"data": "eA==", "encoding": "base64"}}`)
		})},
		{"healthChecks", spec("nf-3", func(s *jobsv1.JobSpec) { s.HealthChecks = value(`[{"protocol": "HTTP", "type": "livenessProbe"}]`) })},
		{"dockerSecretMounts", spec("nf-4", func(s *jobsv1.JobSpec) { s.DockerSecretMounts = value(`{"npmrc": {"data": "eA=="}}`) })},
		{"billing.gpu", spec("nf-5", func(s *jobsv1.JobSpec) {
			s.Billing = &jobsv1.JobBilling{DeploymentPlan: "nf-compute-20", Gpu: value(`{"enabled": true}`)}
		})},
		{"deployment.gracePeriodSeconds", spec("nf-6", func(s *jobsv1.JobSpec) { s.Deployment.GracePeriodSeconds = value(`30`) })},
		{"deployment.buildpack", spec("nf-7", func(s *jobsv1.JobSpec) { s.Deployment.Buildpack = value(`{"configType": "customCommand"}`) })},
		{"deployment.storage.useHdbStorage", spec("nf-8", func(s *jobsv1.JobSpec) { s.Deployment.Storage = &jobsv1.JobStorage{UseHdbStorage: true} })},
	}
	for _, c := range refused {
		wantCode(t, c.err, codes.InvalidArgument, c.field)
		if c.err != nil && !strings.Contains(c.err.Error()+fmt.Sprint(status.Convert(c.err).Details()), "not supported by Slipway") {
			t.Errorf("%s: %v, want it to say Slipway does not support it", c.field, c.err)
		}
	}
	// Values that ask for nothing are accepted.
	if err := spec("nf-ok", func(s *jobsv1.JobSpec) {
		s.RuntimeFiles, s.HealthChecks, s.StageId = value(`{}`), value(`[]`), value(`null`)
		s.Billing = &jobsv1.JobBilling{DeploymentPlan: "nf-compute-20", Gpu: value(`{"enabled": false}`)}
	}); err != nil {
		t.Fatalf("empty Northflank fields: %v", err)
	}
	_, err := h.client.StartJobRun(ctx, &jobsv1.StartJobRunRequest{ProjectId: projectID, JobId: "nf-ok",
		Overrides: &jobsv1.RunOverrides{RuntimeFiles: value(`{"/f": {"data": "eA=="}}`)}})
	wantCode(t, err, codes.InvalidArgument, "runtimeFiles")
	_, err = h.client.UpdateJobRuntimeEnvironment(ctx, &jobsv1.UpdateJobRuntimeEnvironmentRequest{ProjectId: projectID, JobId: "nf-ok",
		RuntimeEnvironment: map[string]string{"A": "b"}, RuntimeFiles: value(`{"/f": {"data": "eA=="}}`)})
	wantCode(t, err, codes.InvalidArgument, "runtimeFiles")
	_, err = h.client.PatchManualJob(ctx, &jobsv1.PatchManualJobRequest{ProjectId: projectID, JobId: "nf-ok", Spec: &jobsv1.JobPatch{Suspended: proto.Bool(true)}})
	wantCode(t, err, codes.InvalidArgument, "suspended")

	// GET runtime-environment's show: a job inherits nothing, so
	// "inherited" is empty and "this" and "all" are its own variables.
	if _, err := h.client.UpdateJobRuntimeEnvironment(ctx, &jobsv1.UpdateJobRuntimeEnvironmentRequest{ProjectId: projectID, JobId: "nf-ok",
		RuntimeEnvironment: map[string]string{"A": "b"}}); err != nil {
		t.Fatal(err)
	}
	for show, want := range map[string]int{"": 1, "all": 1, "this": 1, "inherited": 0} {
		env, err := h.client.GetJobRuntimeEnvironment(ctx, &jobsv1.GetJobRuntimeEnvironmentRequest{ProjectId: projectID, JobId: "nf-ok",
			Show: show, ReplaceTemplatedValues: "true"})
		if err != nil || len(env.GetRuntimeEnvironment()) != want {
			t.Errorf("show=%q: %v, %v; want %d variables", show, env, err, want)
		}
	}
	_, err = h.client.GetJobRuntimeEnvironment(ctx, &jobsv1.GetJobRuntimeEnvironmentRequest{ProjectId: projectID, JobId: "nf-ok", Show: "everything"})
	wantCode(t, err, codes.InvalidArgument, "show")

	// suspended in a cron job's patch.
	if _, err := h.client.CreateCronJob(ctx, &jobsv1.CreateCronJobRequest{ProjectId: projectID, Spec: &jobsv1.JobSpec{Name: "nf-cron", Schedule: "0 3 * * *", Deployment: command("true")}}); err != nil {
		t.Fatal(err)
	}
	for _, suspended := range []bool{true, false} {
		resp, err := h.client.PatchCronJob(ctx, &jobsv1.PatchCronJobRequest{ProjectId: projectID, JobId: "nf-cron", Spec: &jobsv1.JobPatch{Suspended: proto.Bool(suspended)}})
		if err != nil || resp.GetJob().GetSuspended() != suspended {
			t.Fatalf("patch suspended=%v: %v, %v", suspended, resp, err)
		}
	}
}
