package deployments_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	deploymentsv1 "github.com/slipwayhq/slipway/gen/slipway/deployments/v1"
	projectsv1 "github.com/slipwayhq/slipway/gen/slipway/projects/v1"
	"github.com/slipwayhq/slipway/pkg/authz"
	"github.com/slipwayhq/slipway/pkg/authz/authztest"
	"github.com/slipwayhq/slipway/pkg/catalog"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/ingress"
	"github.com/slipwayhq/slipway/pkg/probe"
	"github.com/slipwayhq/slipway/pkg/rpcserver"
	"github.com/slipwayhq/slipway/pkg/rpcserver/rpctest"
	"github.com/slipwayhq/slipway/pkg/runtime/process"
	"github.com/slipwayhq/slipway/pkg/sqldb"
	"github.com/slipwayhq/slipway/pkg/sqldb/sqltest"
	"github.com/slipwayhq/slipway/pkg/testenv"
	"github.com/slipwayhq/slipway/services/deployments"
	"github.com/slipwayhq/slipway/services/deployments/migrations"
	"github.com/slipwayhq/slipway/services/deployments/rollout"
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

var quiet = slog.New(slog.DiscardHandler)

// harness is the deployments service on the process driver with the real
// rollout controller and ingress, served over gRPC with the real
// interceptor chain, next to a real projects service.
type harness struct {
	t        *testing.T
	db       *sqldb.DB
	store    deployments.Store
	stateDir string
	nc       *nats.Conn
	projects projectsv1.ProjectsServiceClient
	catalog  *catalog.Catalog
	in       *ingress.Ingress
	proxy    *httptest.Server
	svc      *deployments.Server
	ctl      *rollout.Controller
	client   deploymentsv1.DeploymentsServiceClient
	stop     func()
	// readyTimeout is how long a new instance has to become ready.
	readyTimeout time.Duration
	// configure, when set, adjusts the service's options on every start.
	configure func(*deployments.Options)
}

func newHarness(t *testing.T, configure ...func(*deployments.Options)) *harness {
	t.Helper()
	return newHarnessOn(t, sqldb.SQLite, configure...)
}

// newHarnessOn is newHarness with the deployments database on engine.
func newHarnessOn(t *testing.T, engine sqldb.Dialect, configure ...func(*deployments.Options)) *harness {
	t.Helper()
	ctx := context.Background()
	db := sqltest.Open(t, engine, migrations.Set, events.Migrations)
	n := testenv.StartNATS(t)
	nc, err := nats.Connect(n.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
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
	in, err := ingress.New(ingress.Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	proxy := httptest.NewServer(in)
	t.Cleanup(proxy.Close)
	h := &harness{t: t, db: db, store: deployments.NewSQLStore(db, newBox(t), nil), stateDir: filepath.Join(t.TempDir(), "runtime"), nc: nc, catalog: cat, in: in, proxy: proxy,
		readyTimeout: 20 * time.Second}
	h.projects = projectsv1.NewProjectsServiceClient(rpctest.Serve(t, rpcserver.Options{}, func(s *grpc.Server) {
		projectsv1.RegisterProjectsServiceServer(s, projects.NewServer(pstore, cat))
	}))
	h.configure = func(o *deployments.Options) {
		for _, c := range configure {
			c(o)
		}
	}
	t.Cleanup(func() {
		// Workloads outlive their driver by design; a test's must not
		// outlive the test.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = process.RemoveAll(ctx, h.stateDir)
	})
	h.start()
	return h
}

// start (re)starts the service and its controller on the same store and
// runtime state: what a restart of Slipway does.
func (h *harness) start() {
	h.t.Helper()
	if h.stop != nil {
		h.stop()
	}
	driver, err := process.New(h.stateDir)
	if err != nil {
		h.t.Fatal(err)
	}
	_, port, _ := strings.Cut(strings.TrimPrefix(h.proxy.URL, "http://"), ":")
	opts := deployments.Options{
		Store: h.store, Driver: driver.Name(), Protocols: driver.Protocols(), Projects: h.projects, Catalog: h.catalog, NATS: h.nc,
		Ingress: h.in, IngressPort: port, Logger: quiet, MetricsInterval: 100 * time.Millisecond,
		ReadyTimeout: h.readyTimeout,
	}
	if h.configure != nil {
		h.configure(&opts)
	}
	svc, err := deployments.New(opts)
	if err != nil {
		h.t.Fatal(err)
	}
	ctl, err := rollout.New(rollout.Options{Driver: driver, Ingress: h.in, Hooks: svc, Logger: quiet,
		Grace: time.Second, AdoptGrace: time.Second, MinReady: 100 * time.Millisecond, ReadyPoll: 20 * time.Millisecond,
		Backoff: probe.BackoffPolicy{Initial: 200 * time.Millisecond, Max: time.Second, Factor: 2}})
	if err != nil {
		h.t.Fatal(err)
	}
	svc.SetController(ctl)
	h.svc, h.ctl = svc, ctl
	authorizer := authz.New(authztest.Static{
		adminCred:  authztest.TeamToken(teamID, "admin"),
		viewerCred: authztest.TeamToken(teamID, "viewer"),
		otherCred:  authztest.TeamToken("other", "admin"),
	}, "internal-key")
	var srv *grpc.Server
	h.client = deploymentsv1.NewDeploymentsServiceClient(rpctest.Serve(h.t, rpcserver.Options{Authorizer: authorizer, Logger: quiet}, func(s *grpc.Server) {
		srv = s
		deploymentsv1.RegisterDeploymentsServiceServer(s, svc)
	}))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = ctl.Run(ctx) }()
	go func() { defer wg.Done(); _ = svc.Run(ctx) }()
	var once sync.Once
	h.stop = func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			srv.Stop()
			_ = driver.Close()
		})
	}
	h.t.Cleanup(h.stop)
}

func as(cred string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", cred)
}

// webApp is a service spec of a small HTTP app: busybox httpd on $PORT
// answering body at / and "ok" at /healthz.
func webApp(name, body string) *deploymentsv1.ServiceSpec {
	one := int32(1)
	return &deploymentsv1.ServiceSpec{
		Name: name,
		Deployment: &deploymentsv1.ServiceDeploymentSpec{Instances: &one, Docker: &deploymentsv1.DockerOverrides{
			ConfigType: "customCommand", CustomCommand: webCommand(body),
		}},
		Ports: []*deploymentsv1.PortSpec{{Name: "p01", InternalPort: 8080, Public: true, Protocol: "HTTP"}},
		HealthChecks: []*deploymentsv1.HealthCheck{{Protocol: "HTTP", Type: "readinessProbe", Path: "/healthz", Port: 8080,
			PeriodSeconds: 2, TimeoutSeconds: 1, FailureThreshold: 3}},
		RuntimeEnvironment: map[string]string{"GREETING": "hi"},
	}
}

func webCommand(body string) string {
	return `mkdir -p www && echo "` + body + `" > www/index.html && echo ok > www/healthz && echo "serving ` + body + `" && busybox httpd -f -p "$PORT" -h www`
}

func (h *harness) create(spec *deploymentsv1.ServiceSpec) *deploymentsv1.Service {
	h.t.Helper()
	resp, err := h.client.CreateDeploymentService(as(adminCred), &deploymentsv1.CreateDeploymentServiceRequest{ProjectId: projectID, Spec: spec})
	if err != nil {
		h.t.Fatalf("CreateDeploymentService(%s): %v %v", spec.GetName(), err, status.Convert(err).Details())
	}
	return resp.GetService()
}

// waitStatus polls the deployment until its status is want.
func (h *harness) waitStatus(service, release, want string) *deploymentsv1.GetServiceDeploymentResponse {
	h.t.Helper()
	deadline := time.Now().Add(40 * time.Second)
	for {
		d, err := h.client.GetServiceDeployment(as(adminCred), &deploymentsv1.GetServiceDeploymentRequest{ProjectId: projectID, ServiceId: service})
		if err != nil {
			h.t.Fatal(err)
		}
		if d.GetStatus().GetStatus() == want && (release == "" || d.GetReleaseId() == release) {
			return d
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("service %s: deployment %v, want %s of %s", service, d, want, release)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// get fetches url through the ingress with the given Host.
func (h *harness) get(host, path string) (int, string) {
	h.t.Helper()
	req, _ := http.NewRequest("GET", h.proxy.URL+path, nil)
	req.Host = host
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, strings.TrimSpace(string(b))
}

func wantCode(t *testing.T, err error, code codes.Code, detail string) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("err = %v, want %v", err, code)
	}
	if d := fmt.Sprint(status.Convert(err).Details()); detail != "" && !strings.Contains(d, `field:"`+detail+`"`) && !strings.Contains(d, `reason:"`+detail+`"`) {
		t.Fatalf("err = %v (%s), want a detail about %q", err, d, detail)
	}
}

func TestServiceServesThroughTheIngressAndRollsOut(t *testing.T) {
	h := newHarness(t)
	sv := h.create(webApp("Web App", "v1"))
	if sv.GetId() != "web-app" || sv.GetServiceType() != "deployment" || sv.GetCluster().GetId() != "process" ||
		sv.GetDeployment().GetDocker().GetConfigType() != "customCommand" || sv.GetBilling().GetDeploymentPlan() == "" {
		t.Fatalf("created %v", sv)
	}
	wantURL := "http://p01--web-app--web.localhost:" + strings.Split(h.proxy.URL, ":")[2]
	if len(sv.GetPorts()) != 1 || sv.GetPorts()[0].GetDns() != wantURL {
		t.Fatalf("ports %v, want dns %s", sv.GetPorts(), wantURL)
	}
	d := h.waitStatus("web-app", "r000001", "COMPLETED")
	if d.GetDocker().GetCustomCommand() == "" || d.GetInstances() != 1 {
		t.Fatalf("deployment %v", d)
	}
	host := "p01--web-app--web.localhost"
	if code, body := h.get(host, "/"); code != 200 || body != "v1" {
		t.Fatalf("through the ingress: %d %q", code, body)
	}
	containers, err := h.client.GetServiceContainers(as(adminCred), &deploymentsv1.GetServiceContainersRequest{ProjectId: projectID, ServiceId: "web-app"})
	if err != nil || len(containers.GetContainers()) != 1 || containers.GetContainers()[0].GetStatus() != "TASK_RUNNING" ||
		containers.GetContainers()[0].GetCreatedAt() == 0 || containers.GetPagination().GetHasNextPage() {
		t.Fatalf("containers %v, %v", containers, err)
	}
	instance := containers.GetContainers()[0].GetName()

	// A new image of the app (here: a new command) is a new release.
	upd, err := h.client.UpdateServiceDeployment(as(adminCred), &deploymentsv1.UpdateServiceDeploymentRequest{ProjectId: projectID, ServiceId: "web-app",
		Docker: &deploymentsv1.DockerOverrides{ConfigType: "customCommand", CustomCommand: webCommand("v2")}})
	if err != nil || upd.GetReleaseId() != "r000002" {
		t.Fatalf("UpdateServiceDeployment: %v, %v", upd, err)
	}
	h.waitStatus("web-app", "r000002", "COMPLETED")
	if code, body := h.get(host, "/"); code != 200 || body != "v2" {
		t.Fatalf("after the rollout: %d %q", code, body)
	}

	// The runtime environment is a release too; GET shows it, details too.
	env, err := h.client.UpdateServiceRuntimeEnvironment(as(adminCred), &deploymentsv1.UpdateServiceRuntimeEnvironmentRequest{ProjectId: projectID, ServiceId: "web-app",
		RuntimeEnvironment: map[string]string{"GREETING": "hello", "SECRET": "s3cret"}})
	if err != nil || !env.GetSuccess() || !env.GetRestartSuccessful() {
		t.Fatalf("UpdateServiceRuntimeEnvironment: %v, %v", env, err)
	}
	got, err := h.client.GetServiceRuntimeEnvironment(as(adminCred), &deploymentsv1.GetServiceRuntimeEnvironmentRequest{ProjectId: projectID, ServiceId: "web-app"})
	if err != nil || got.GetRuntimeEnvironment()["SECRET"] != "s3cret" {
		t.Fatalf("GetServiceRuntimeEnvironment: %v, %v", got, err)
	}
	details, err := h.client.GetServiceRuntimeEnvironmentDetails(as(adminCred), &deploymentsv1.GetServiceRuntimeEnvironmentDetailsRequest{ProjectId: projectID, ServiceId: "web-app"})
	if err != nil || details.GetRuntimeEnvironment()["GREETING"].GetValue() != "hello" {
		t.Fatalf("details: %v, %v", details, err)
	}
	h.waitStatus("web-app", "r000003", "COMPLETED")

	// The history: newest first, who and why, no secret values.
	rels, err := h.client.ListServiceReleases(as(adminCred), &deploymentsv1.ListServiceReleasesRequest{ProjectId: projectID, ServiceId: "web-app"})
	if err != nil || len(rels.GetReleases()) != 3 {
		t.Fatalf("releases: %v, %v", rels, err)
	}
	r3, r1 := rels.GetReleases()[0], rels.GetReleases()[2]
	if r3.GetCause() != "runtime-environment" || r3.GetStatus() != "COMPLETED" || !slices.Equal(r3.GetRuntimeEnvironmentKeys(), []string{"GREETING", "SECRET"}) ||
		r3.GetCreatedBy() == "" || r1.GetCause() != "create" || r1.GetPorts()[0].GetName() != "p01" || r1.GetHealthChecks()[0].GetHttpPort() != 8080 {
		t.Fatalf("releases %v", rels.GetReleases())
	}
	if strings.Contains(fmt.Sprint(rels), "s3cret") {
		t.Fatal("a release shows an environment value")
	}

	// Rollback deploys a copy of release 1 as release 4.
	rb, err := h.client.RollbackServiceRelease(as(adminCred), &deploymentsv1.RollbackServiceReleaseRequest{ProjectId: projectID, ServiceId: "web-app", ReleaseId: "r000001"})
	if err != nil || rb.GetRelease().GetId() != "r000004" || rb.GetRelease().GetRolledBackFrom() != "r000001" || rb.GetRelease().GetCause() != "rollback" {
		t.Fatalf("rollback: %v, %v", rb, err)
	}
	h.waitStatus("web-app", "r000004", "COMPLETED")
	if code, body := h.get(host, "/"); code != 200 || body != "v1" {
		t.Fatalf("after the rollback: %d %q", code, body)
	}
	if _, err := h.client.RollbackServiceRelease(as(adminCred), &deploymentsv1.RollbackServiceReleaseRequest{ProjectId: projectID, ServiceId: "web-app", ReleaseId: "r000099"}); status.Code(err) != codes.NotFound {
		t.Fatalf("rollback to an unknown release: %v", err)
	}

	// Scale to 2 and back to 1.
	if _, err := h.client.ScaleService(as(adminCred), &deploymentsv1.ScaleServiceRequest{ProjectId: projectID, ServiceId: "web-app", Instances: ptr(int32(2))}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "two instances", func() bool { return len(h.ctl.Instances("acme/web/web-app")) == 2 })

	// Logs of the first instance: its "serving" line.
	eventually(t, "the first instance's lines stored", func() bool {
		logs, err := h.client.GetServiceLogs(as(adminCred), &deploymentsv1.GetServiceLogsRequest{ProjectId: projectID, ServiceId: "web-app", ContainerName: instance, Direction: "forward"})
		return err == nil && len(logs.GetLines()) > 0 && logs.GetLines()[0].GetLog() == "serving v1" && logs.GetLines()[0].GetContainerId() == instance
	})
	filtered, err := h.client.GetServiceLogs(as(adminCred), &deploymentsv1.GetServiceLogsRequest{ProjectId: projectID, ServiceId: "web-app", TextIncludes: "v2"})
	if err != nil || len(filtered.GetLines()) == 0 {
		t.Fatalf("text filter: %v, %v", filtered, err)
	}
	for _, l := range filtered.GetLines() {
		if !strings.Contains(l.GetLog(), "v2") {
			t.Fatalf("text filter let %q through", l.GetLog())
		}
	}

	// Metrics: memory per instance from the driver's Usage (cpu too;
	// metrics_internal_test checks the rates), requests from the ingress.
	eventually(t, "memory sampled", func() bool {
		m, err := h.client.GetServiceMetrics(as(adminCred), &deploymentsv1.GetServiceMetricsRequest{ProjectId: projectID, ServiceId: "web-app", QueryType: "range", MetricTypes: []string{"memory"}})
		if err != nil || m.GetMemory().GetMetricInfo().GetMetricUnit() != "mb" || m.GetCpu() != nil {
			return false
		}
		for _, s := range m.GetMemory().GetValues() {
			if len(s.GetData()) > 0 && s.GetData()[0].GetValue() > 0 && strings.HasPrefix(s.GetMetadata().GetContainerId(), "web-app-") {
				return true
			}
		}
		return false
	})
	eventually(t, "requests sampled", func() bool {
		h.get(host, "/")
		m, err := h.client.GetServiceMetrics(as(adminCred), &deploymentsv1.GetServiceMetricsRequest{ProjectId: projectID, ServiceId: "web-app", QueryType: "range"})
		if err != nil || m.GetMemory() == nil || m.GetCpu() == nil || m.GetRequests().GetMetricInfo().GetMetricUnit() != "rps" {
			return false
		}
		for _, s := range m.GetRequests().GetValues() {
			for _, p := range s.GetData() {
				if p.GetValue() > 0 {
					return true
				}
			}
		}
		return false
	})
	single, err := h.client.GetServiceMetrics(as(adminCred), &deploymentsv1.GetServiceMetricsRequest{ProjectId: projectID, ServiceId: "web-app", QueryType: "single", MetricTypes: []string{"cpu"}})
	if err != nil || single.GetMemory() != nil || single.GetCpu() == nil {
		t.Fatalf("single cpu: %v, %v", single, err)
	}
	for _, s := range single.GetCpu().GetValues() {
		if len(s.GetData()) > 1 {
			t.Fatalf("single answered %d samples", len(s.GetData()))
		}
	}

	// Pause stops every instance; resume brings them back.
	if _, err := h.client.PauseService(as(adminCred), &deploymentsv1.PauseServiceRequest{ProjectId: projectID, ServiceId: "web-app"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "paused: no instance", func() bool { return len(h.ctl.Instances("acme/web/web-app")) == 0 })
	g, _ := h.client.GetService(as(adminCred), &deploymentsv1.GetServiceRequest{ProjectId: projectID, ServiceId: "web-app"})
	if !g.GetService().GetServicePaused() || g.GetService().GetDeployment().GetInstances() != 2 {
		t.Fatalf("paused service %v", g)
	}
	if _, err := h.client.ResumeService(as(adminCred), &deploymentsv1.ResumeServiceRequest{ProjectId: projectID, ServiceId: "web-app", Instances: ptr(int32(1))}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "resumed", func() bool {
		code, body := h.get(host, "/")
		return code == 200 && body == "v1"
	})
	if _, err := h.client.RestartService(as(adminCred), &deploymentsv1.RestartServiceRequest{ProjectId: projectID, ServiceId: "web-app"}); err != nil {
		t.Fatal(err)
	}

	// Delete stops the instances and forgets the service.
	if _, err := h.client.DeleteService(as(adminCred), &deploymentsv1.DeleteServiceRequest{ProjectId: projectID, ServiceId: "web-app"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "no instance after delete", func() bool { return len(h.ctl.Instances("acme/web/web-app")) == 0 })
	if _, err := h.client.GetService(as(adminCred), &deploymentsv1.GetServiceRequest{ProjectId: projectID, ServiceId: "web-app"}); status.Code(err) != codes.NotFound {
		t.Fatalf("GetService after delete: %v", err)
	}
	if code, _ := h.get(host, "/"); code != http.StatusNotFound && code != http.StatusServiceUnavailable {
		t.Fatalf("the ingress still routes a deleted service: %d", code)
	}
}

func ptr[T any](v T) *T { return &v }

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(40 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 40s: %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestBadInput: every refused request is a clear 4xx naming what is
// wrong, and leaves nothing behind.
func TestBadInput(t *testing.T) {
	h := newHarness(t)
	h.create(webApp("good", "ok"))
	h.waitStatus("good", "r000001", "COMPLETED")
	create := func(mutate func(*deploymentsv1.ServiceSpec)) error {
		spec := webApp("bad", "x")
		mutate(spec)
		_, err := h.client.CreateDeploymentService(as(adminCred), &deploymentsv1.CreateDeploymentServiceRequest{ProjectId: projectID, Spec: spec})
		return err
	}
	for _, c := range []struct {
		name   string
		err    func() error
		code   codes.Code
		detail string
	}{
		{"duplicate port names", func() error {
			return create(func(s *deploymentsv1.ServiceSpec) {
				s.Ports = append(s.Ports, &deploymentsv1.PortSpec{Name: "p01", InternalPort: 9090, Protocol: "TCP"})
			})
		}, codes.InvalidArgument, "ports[1].name"},
		{"duplicate port numbers", func() error {
			return create(func(s *deploymentsv1.ServiceSpec) {
				s.Ports = append(s.Ports, &deploymentsv1.PortSpec{Name: "p02", InternalPort: 8080, Protocol: "TCP"})
			})
		}, codes.InvalidArgument, "ports[1].internalPort"},
		{"UDP on the process driver's private network", func() error {
			return create(func(s *deploymentsv1.ServiceSpec) {
				s.Ports = append(s.Ports, &deploymentsv1.PortSpec{Name: "p02", InternalPort: 5353, Protocol: "UDP"})
			})
		}, codes.InvalidArgument, "ports[1].protocol"},
		{"port 0", func() error {
			return create(func(s *deploymentsv1.ServiceSpec) { s.Ports[0].InternalPort = 0 })
		}, codes.InvalidArgument, "ports[0].internalPort"},
		{"port 70000", func() error {
			return create(func(s *deploymentsv1.ServiceSpec) { s.Ports[0].InternalPort = 70000 })
		}, codes.InvalidArgument, "ports[0].internalPort"},
		{"public TCP port", func() error {
			return create(func(s *deploymentsv1.ServiceSpec) { s.Ports[0].Protocol = "TCP" })
		}, codes.InvalidArgument, "ports[0].public"},
		{"health check on an unknown port", func() error {
			return create(func(s *deploymentsv1.ServiceSpec) { s.HealthChecks[0].Port = 9999 })
		}, codes.InvalidArgument, "healthChecks[0].port"},
		{"image on the process driver", func() error {
			return create(func(s *deploymentsv1.ServiceSpec) {
				s.Deployment.External = &deploymentsv1.ExternalImage{ImagePath: "nginx:latest"}
			})
		}, codes.InvalidArgument, "deployment.external.imagePath"},
		{"no instances", func() error {
			return create(func(s *deploymentsv1.ServiceSpec) { s.Deployment.Instances = nil })
		}, codes.InvalidArgument, "deployment.instances"},
		{"instances above the plan's maximum", func() error {
			return create(func(s *deploymentsv1.ServiceSpec) { s.Deployment.Instances = ptr(int32(catalog.MaxInstances + 1)) })
		}, codes.InvalidArgument, "instances"},
		{"a build (internal) of an unknown service", func() error {
			return create(func(s *deploymentsv1.ServiceSpec) {
				s.Deployment.Internal = &deploymentsv1.InternalSource{Id: "builder", Branch: "main", BuildSha: "latest"}
			})
		}, codes.NotFound, ""},
		{"a build (internal) of a deployment service", func() error {
			return create(func(s *deploymentsv1.ServiceSpec) {
				s.Deployment.Internal = &deploymentsv1.InternalSource{Id: "good", Branch: "main"}
			})
		}, codes.InvalidArgument, "deployment.internal.id"},
		{"a build (internal) latest without a branch", func() error {
			return create(func(s *deploymentsv1.ServiceSpec) {
				s.Deployment.Internal = &deploymentsv1.InternalSource{Id: "good", BuildSha: "latest"}
			})
		}, codes.InvalidArgument, "deployment.internal.branch"},
		{"a build (internal) of a malformed commit", func() error {
			return create(func(s *deploymentsv1.ServiceSpec) {
				s.Deployment.Internal = &deploymentsv1.InternalSource{Id: "good", BuildSha: "abc"}
			})
		}, codes.InvalidArgument, "deployment.internal.buildSHA"},
		{"build settings on a deployment service", func() error {
			return create(func(s *deploymentsv1.ServiceSpec) {
				s.VcsData = &deploymentsv1.VcsData{ProjectUrl: "https://github.com/a/b", ProjectType: "github", ProjectBranch: "main"}
			})
		}, codes.InvalidArgument, "vcsData"},
		{"unknown plan", func() error {
			return create(func(s *deploymentsv1.ServiceSpec) { s.Billing = &deploymentsv1.Billing{DeploymentPlan: "huge"} })
		}, codes.InvalidArgument, "billing.deploymentPlan"},
		{"custom strategy without settings", func() error {
			return create(func(s *deploymentsv1.ServiceSpec) { s.Deployment.Strategy = &deploymentsv1.Strategy{Type: "custom"} })
		}, codes.InvalidArgument, "deployment.strategy.settings.maxSurge"},
		{"unknown project", func() error {
			_, err := h.client.CreateDeploymentService(as(adminCred), &deploymentsv1.CreateDeploymentServiceRequest{ProjectId: "nope", Spec: webApp("bad", "x")})
			return err
		}, codes.NotFound, ""},
		{"viewer creates", func() error {
			_, err := h.client.CreateDeploymentService(as(viewerCred), &deploymentsv1.CreateDeploymentServiceRequest{ProjectId: projectID, Spec: webApp("bad", "x")})
			return err
		}, codes.PermissionDenied, ""},
		{"other team reads", func() error {
			_, err := h.client.GetService(as(otherCred), &deploymentsv1.GetServiceRequest{ProjectId: projectID, ServiceId: "good"})
			return err
		}, codes.NotFound, ""},
		{"scale below 0", func() error {
			_, err := h.client.ScaleService(as(adminCred), &deploymentsv1.ScaleServiceRequest{ProjectId: projectID, ServiceId: "good", Instances: ptr(int32(-1))})
			return err
		}, codes.InvalidArgument, "instances"},
		{"scale above the plan's maximum", func() error {
			_, err := h.client.ScaleService(as(adminCred), &deploymentsv1.ScaleServiceRequest{ProjectId: projectID, ServiceId: "good", Instances: ptr(int32(catalog.MaxInstances + 1))})
			return err
		}, codes.InvalidArgument, "instances"},
		{"metrics ending before they start", func() error {
			now := time.Now()
			_, err := h.client.GetServiceMetrics(as(adminCred), &deploymentsv1.GetServiceMetricsRequest{ProjectId: projectID, ServiceId: "good", QueryType: "range",
				StartTime: timestamppb.New(now), EndTime: timestamppb.New(now.Add(-time.Hour))})
			return err
		}, codes.InvalidArgument, "endTime"},
		{"ports update removing a health-checked port", func() error {
			_, err := h.client.UpdateServicePorts(as(adminCred), &deploymentsv1.UpdateServicePortsRequest{ProjectId: projectID, ServiceId: "good",
				Ports: []*deploymentsv1.PortSpec{{Name: "p02", InternalPort: 9000, Protocol: "HTTP"}}})
			return err
		}, codes.InvalidArgument, "healthChecks[0].port"},
		{"health checks on an unknown port", func() error {
			_, err := h.client.UpdateServiceHealthChecks(as(adminCred), &deploymentsv1.UpdateServiceHealthChecksRequest{ProjectId: projectID, ServiceId: "good",
				HealthChecks: []*deploymentsv1.HealthCheck{{Protocol: "TCP", Type: "livenessProbe", Port: 1234, PeriodSeconds: 2, TimeoutSeconds: 1, FailureThreshold: 1}}})
			return err
		}, codes.InvalidArgument, "healthChecks[0].port"},
		{"an image on the process driver by update", func() error {
			_, err := h.client.UpdateServiceDeployment(as(adminCred), &deploymentsv1.UpdateServiceDeploymentRequest{ProjectId: projectID, ServiceId: "good",
				External: &deploymentsv1.ExternalImage{ImagePath: "nginx"}})
			return err
		}, codes.InvalidArgument, "deployment.external.imagePath"},
		{"a build by update without its service", func() error {
			_, err := h.client.UpdateServiceDeployment(as(adminCred), &deploymentsv1.UpdateServiceDeploymentRequest{ProjectId: projectID, ServiceId: "good",
				Internal: &deploymentsv1.InternalSource{BuildId: "b1"}})
			return err
		}, codes.InvalidArgument, "internal.id"},
		{"build arguments of a deployment service", func() error {
			_, err := h.client.GetServiceBuildArguments(as(adminCred), &deploymentsv1.GetServiceBuildArgumentsRequest{ProjectId: projectID, ServiceId: "good"})
			return err
		}, codes.FailedPrecondition, "SERVICE_TYPE_MISMATCH"},
		{"put turning a deployment service combined", func() error {
			spec := webApp("good", "x")
			spec.Deployment.Docker = nil
			spec.VcsData = &deploymentsv1.VcsData{ProjectUrl: "https://github.com/a/b", ProjectType: "github", ProjectBranch: "main"}
			spec.BuildSettings = &deploymentsv1.BuildSettings{Dockerfile: &deploymentsv1.DockerfileSettings{DockerFilePath: "/Dockerfile", DockerWorkDir: "/"}}
			_, err := h.client.PutCombinedService(as(adminCred), &deploymentsv1.PutCombinedServiceRequest{ProjectId: projectID, Spec: spec})
			return err
		}, codes.FailedPrecondition, "SERVICE_TYPE_MISMATCH"},
		{"patch as the other kind", func() error {
			_, err := h.client.PatchCombinedService(as(adminCred), &deploymentsv1.PatchCombinedServiceRequest{ProjectId: projectID, ServiceId: "good", Spec: &deploymentsv1.ServicePatch{}})
			return err
		}, codes.NotFound, ""},
		{"a bad log regex", func() error {
			_, err := h.client.GetServiceLogs(as(adminCred), &deploymentsv1.GetServiceLogsRequest{ProjectId: projectID, ServiceId: "good", RegexIncludes: "("})
			return err
		}, codes.InvalidArgument, "regexIncludes"},
	} {
		t.Run(c.name, func(t *testing.T) { wantCode(t, c.err(), c.code, c.detail) })
	}
	// Nothing half-created: one service, one release, the same instances.
	list, err := h.client.ListServices(as(adminCred), &deploymentsv1.ListServicesRequest{ProjectId: projectID})
	if err != nil || len(list.GetServices()) != 1 {
		t.Fatalf("services after bad input: %v, %v", list, err)
	}
	rels, err := h.client.ListServiceReleases(as(adminCred), &deploymentsv1.ListServiceReleasesRequest{ProjectId: projectID, ServiceId: "good"})
	if err != nil || len(rels.GetReleases()) != 1 {
		t.Fatalf("releases after bad input: %v, %v", rels, err)
	}
	g, _ := h.client.GetService(as(adminCred), &deploymentsv1.GetServiceRequest{ProjectId: projectID, ServiceId: "good"})
	if g.GetService().GetDeployment().GetInstances() != 1 || len(g.GetService().GetPorts()) != 1 {
		t.Fatalf("the service changed: %v", g)
	}
}

// TestCombinedServiceWaitsForItsBuild: a combined service keeps its git
// and build settings and runs nothing until a build of its branch exists.
func TestCombinedServiceWaitsForItsBuild(t *testing.T) {
	h := newHarness(t)
	spec := webApp("Full Stack", "x")
	spec.Deployment.Docker = nil
	spec.VcsData = &deploymentsv1.VcsData{ProjectUrl: "https://github.com/acme/app", ProjectType: "github", ProjectBranch: "main"}
	spec.BuildSettings = &deploymentsv1.BuildSettings{Dockerfile: &deploymentsv1.DockerfileSettings{DockerFilePath: "/Dockerfile", DockerWorkDir: "/", BuildEngine: "buildkit"}}
	spec.BuildConfiguration = &deploymentsv1.BuildConfiguration{PathIgnoreRules: []string{"docs/**"}}
	resp, err := h.client.CreateCombinedService(as(adminCred), &deploymentsv1.CreateCombinedServiceRequest{ProjectId: projectID, Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	sv := resp.GetService()
	if sv.GetServiceType() != "combined" || sv.GetVcsData().GetProjectUrl() != "https://github.com/acme/app" ||
		sv.GetBuildSettings().GetDockerfile().GetDockerFilePath() != "/Dockerfile" || sv.GetBuildConfiguration().GetPathIgnoreRules()[0] != "docs/**" || sv.GetBuildSource() != "git" {
		t.Fatalf("combined service %v", sv)
	}
	if in := sv.GetDeployment().GetInternal(); in.GetNfObjectId() != "full-stack" || in.GetBranch() != "main" || in.GetBuildSha() != "latest" ||
		in.GetDeployedSha() != "" || in.GetRepository() != "https://github.com/acme/app" || !sv.GetVcsData().GetPublicRepo() {
		t.Fatalf("combined service internal source %v", sv.GetDeployment())
	}
	if n := len(h.ctl.Instances("acme/web/full-stack")); n != 0 {
		t.Fatalf("a combined service runs %d instances before it has a build", n)
	}
	// Without its repository it is refused.
	spec.Name, spec.VcsData = "No Repo", nil
	_, err = h.client.CreateCombinedService(as(adminCred), &deploymentsv1.CreateCombinedServiceRequest{ProjectId: projectID, Spec: spec})
	wantCode(t, err, codes.InvalidArgument, "vcsData")
	// Patch changes the stored build settings.
	patched, err := h.client.PatchCombinedService(as(adminCred), &deploymentsv1.PatchCombinedServiceRequest{ProjectId: projectID, ServiceId: "full-stack",
		Spec: &deploymentsv1.ServicePatch{VcsData: &deploymentsv1.VcsData{ProjectUrl: "https://github.com/acme/app", ProjectType: "github", ProjectBranch: "dev"}}})
	if err != nil || patched.GetService().GetVcsData().GetProjectBranch() != "dev" {
		t.Fatalf("patch: %v, %v", patched, err)
	}

	// Rollout outcomes (reported here by hand: a combined service with
	// no build runs nothing) become the release's status; one about a release the
	// service has moved on from leaves the service's status alone.
	if _, err := h.client.UpdateServiceRuntimeEnvironment(as(adminCred), &deploymentsv1.UpdateServiceRuntimeEnvironmentRequest{ProjectId: projectID, ServiceId: "full-stack",
		RuntimeEnvironment: map[string]string{"A": "1"}}); err != nil {
		t.Fatal(err)
	}
	h.svc.Rollout(context.Background(), rollout.Outcome{ServiceID: "acme/web/full-stack", ReleaseID: "r000001", Status: rollout.RolloutFailed, Reason: "superseded"})
	d, _ := h.client.GetServiceDeployment(as(adminCred), &deploymentsv1.GetServiceDeploymentRequest{ProjectId: projectID, ServiceId: "full-stack"})
	if d.GetStatus().GetStatus() != "PENDING" || d.GetReleaseId() != "r000002" {
		t.Fatalf("an old release's outcome changed the service: %v", d)
	}
	h.svc.Rollout(context.Background(), rollout.Outcome{ServiceID: "acme/web/full-stack", ReleaseID: "r000002", Status: rollout.RolloutCompleted})
	d, _ = h.client.GetServiceDeployment(as(adminCred), &deploymentsv1.GetServiceDeploymentRequest{ProjectId: projectID, ServiceId: "full-stack"})
	if d.GetStatus().GetStatus() != "COMPLETED" || d.GetStatus().GetLastTransitionTime() == nil {
		t.Fatalf("the current release's outcome: %v", d)
	}
	// Every change went out with its lifecycle events, in order.
	want := []string{
		"slipway.deployments.service.created", "slipway.deployments.resource.created", "slipway.deployments.release.created", // create
		"slipway.deployments.service.updated", "slipway.deployments.resource.updated", // patch
		"slipway.deployments.service.updated", "slipway.deployments.resource.updated", "slipway.deployments.release.created", // environment
		"slipway.deployments.release.failed", "slipway.deployments.release.completed",
	}
	if got := h.subjects(); !slices.Equal(got, want) {
		t.Errorf("events %q,\nwant %q", got, want)
	}
	rels, _ := h.client.ListServiceReleases(as(adminCred), &deploymentsv1.ListServiceReleasesRequest{ProjectId: projectID, ServiceId: "full-stack"})
	if rels.GetReleases()[1].GetStatus() != "FAILED" || rels.GetReleases()[1].GetReason() != "superseded" || rels.GetReleases()[0].GetStatus() != "COMPLETED" {
		t.Fatalf("releases %v", rels.GetReleases())
	}
}

// TestAdoptionAfterRestart: after a restart of the service and its
// controller, the same instance keeps serving and its logs are not
// stored twice.
func TestAdoptionAfterRestart(t *testing.T) {
	h := newHarness(t)
	h.create(webApp("keep", "v1"))
	h.waitStatus("keep", "r000001", "COMPLETED")
	before := h.ctl.Instances("acme/web/keep")
	logs := func() int {
		l, err := h.client.GetServiceLogs(as(adminCred), &deploymentsv1.GetServiceLogsRequest{ProjectId: projectID, ServiceId: "keep"})
		if err != nil {
			t.Fatal(err)
		}
		return len(l.GetLines())
	}
	eventually(t, "the first line stored", func() bool { return logs() == 1 })
	h.start()
	eventually(t, "adopted", func() bool {
		after := h.ctl.Instances("acme/web/keep")
		return len(after) == 1 && after[0].WorkloadID == before[0].WorkloadID && after[0].Ready
	})
	if code, body := h.get("p01--keep--web.localhost", "/"); code != 200 || body != "v1" {
		t.Fatalf("after the restart: %d %q", code, body)
	}
	time.Sleep(500 * time.Millisecond) // let a duplicating pump show itself
	if n := logs(); n != 1 {
		t.Fatalf("%d lines after the restart, want 1 (no duplicates)", n)
	}
}

// TestProjectDeletedRemovesServices: the projects consumer deletes a
// deleted project's services and stops their instances.
func TestProjectDeletedRemovesServices(t *testing.T) {
	h := newHarness(t)
	h.create(webApp("doomed", "x"))
	h.waitStatus("doomed", "r000001", "COMPLETED")
	ev, err := events.New("projects", "project", "deleted", "acme/web", map[string]string{"teamId": teamID, "id": projectID})
	if err != nil {
		t.Fatal(err)
	}
	handle := events.ProjectDeletedHandler(h.svc.DeleteProjectServices)
	for range 2 { // a redelivery finds nothing left
		if err := handle(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.store.GetService(context.Background(), teamID, projectID, "doomed"); err == nil {
		t.Fatal("the service outlived its project")
	}
	eventually(t, "instances stopped", func() bool { return len(h.ctl.Instances("acme/web/doomed")) == 0 })
}

// TestTailServiceLogs: a tail sends the stored backlog, then lines as
// they are stored; a bad filter is refused before anything is sent.
func TestTailServiceLogs(t *testing.T) {
	h := newHarness(t)
	spec := webApp("chatty", "v1")
	spec.Deployment.Docker.CustomCommand = `echo first; sleep 1; echo second; ` + webCommand("v1")
	h.create(spec)
	ctx, cancel := context.WithTimeout(as(adminCred), 40*time.Second)
	defer cancel()
	stream, err := h.client.TailServiceLogs(ctx, &deploymentsv1.TailServiceLogsRequest{ProjectId: projectID, ServiceId: "chatty"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for !slices.Contains(got, "second") {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("tail after %q: %v", got, err)
		}
		for _, l := range resp.GetLines() {
			got = append(got, l.GetLog())
		}
	}
	if got[0] != "first" {
		t.Fatalf("tail lines %q, want first then second", got)
	}
	bad, err := h.client.TailServiceLogs(as(adminCred), &deploymentsv1.TailServiceLogsRequest{ProjectId: projectID, ServiceId: "chatty", RegexIncludes: "("})
	if err == nil {
		_, err = bad.Recv()
	}
	wantCode(t, err, codes.InvalidArgument, "regexIncludes")
}

// TestFailedRolloutKeepsTheHealthyRelease: a release whose readiness check
// never passes fails with the reason, the service goes back to the last
// healthy release, which served every request meanwhile.
func TestFailedRolloutKeepsTheHealthyRelease(t *testing.T) {
	h := newHarness(t)
	h.readyTimeout = 3 * time.Second
	h.start()
	h.create(webApp("steady", "v1"))
	h.waitStatus("steady", "r000001", "COMPLETED")
	host := "p01--steady--web.localhost"
	// v2 never answers /healthz.
	upd, err := h.client.UpdateServiceDeployment(as(adminCred), &deploymentsv1.UpdateServiceDeploymentRequest{ProjectId: projectID, ServiceId: "steady",
		Docker: &deploymentsv1.DockerOverrides{ConfigType: "customCommand", CustomCommand: `mkdir -p www && echo v2 > www/index.html && busybox httpd -f -p "$PORT" -h www`}})
	if err != nil || upd.GetReleaseId() != "r000002" {
		t.Fatalf("UpdateServiceDeployment: %v, %v", upd, err)
	}
	failed := false
	deadline := time.Now().Add(40 * time.Second)
	for !failed {
		if code, body := h.get(host, "/"); code != 200 || body != "v1" {
			t.Fatalf("during the failing rollout: %d %q, want v1", code, body)
		}
		d, err := h.client.GetServiceDeployment(as(adminCred), &deploymentsv1.GetServiceDeploymentRequest{ProjectId: projectID, ServiceId: "steady"})
		if err != nil {
			t.Fatal(err)
		}
		failed = d.GetStatus().GetStatus() == "FAILED"
		if failed && (d.GetStatus().GetMessage() == "" || d.GetReleaseId() != "r000001") {
			t.Fatalf("failed deployment %v: want a message and release r000001 running again", d)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the rollout did not fail: %v", d)
		}
		time.Sleep(100 * time.Millisecond)
	}
	rels, err := h.client.ListServiceReleases(as(adminCred), &deploymentsv1.ListServiceReleasesRequest{ProjectId: projectID, ServiceId: "steady"})
	if err != nil || rels.GetReleases()[0].GetStatus() != "FAILED" || rels.GetReleases()[0].GetReason() == "" {
		t.Fatalf("releases %v, %v", rels, err)
	}
	g, _ := h.client.GetService(as(adminCred), &deploymentsv1.GetServiceRequest{ProjectId: projectID, ServiceId: "steady"})
	if !strings.Contains(g.GetService().GetDeployment().GetDocker().GetCustomCommand(), "healthz") {
		t.Fatalf("the service does not show the restored release's command: %v", g.GetService().GetDeployment())
	}
	if code, body := h.get(host, "/"); code != 200 || body != "v1" {
		t.Fatalf("after the failed rollout: %d %q", code, body)
	}
}

// subjects lists the subjects of the events in the outbox, oldest first.
func (h *harness) subjects() []string {
	h.t.Helper()
	rows, err := h.db.Query(context.Background(), `SELECT subject FROM event_outbox ORDER BY seq`)
	if err != nil {
		h.t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			h.t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// TestRestartedInstanceLogsAfresh: an instance that dies is restarted
// under the same name as a new workload, whose output starts afresh: its
// lines are stored too, not skipped as already consumed.
func TestRestartedInstanceLogsAfresh(t *testing.T) {
	h := newHarness(t)
	one := int32(1)
	h.create(&deploymentsv1.ServiceSpec{Name: "flaky", Deployment: &deploymentsv1.ServiceDeploymentSpec{Instances: &one,
		Docker: &deploymentsv1.DockerOverrides{ConfigType: "customCommand", CustomCommand: "echo run; sleep 1; exit 1"}}})
	eventually(t, "two runs of one instance logged", func() bool {
		l, err := h.client.GetServiceLogs(as(adminCred), &deploymentsv1.GetServiceLogsRequest{ProjectId: projectID, ServiceId: "flaky", Direction: "forward"})
		if err != nil {
			t.Fatal(err)
		}
		runs := 0
		for _, line := range l.GetLines() {
			if line.GetLog() == "run" && line.GetContainerId() == l.GetLines()[0].GetContainerId() {
				runs++
			}
		}
		return runs >= 2
	})
	if in := h.ctl.Instances("acme/web/flaky"); len(in) != 1 || in[0].Restarts == 0 {
		t.Fatalf("instances %+v: want one, restarted", in)
	}
}
