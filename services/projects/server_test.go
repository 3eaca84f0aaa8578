package projects_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	projectsv1 "github.com/slipwayhq/slipway/gen/slipway/projects/v1"
	"github.com/slipwayhq/slipway/pkg/authz"
	"github.com/slipwayhq/slipway/pkg/authz/authztest"
	"github.com/slipwayhq/slipway/pkg/catalog"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/events/eventstest"
	"github.com/slipwayhq/slipway/pkg/rpcserver"
	"github.com/slipwayhq/slipway/pkg/rpcserver/rpctest"
	"github.com/slipwayhq/slipway/pkg/sqldb"
	"github.com/slipwayhq/slipway/pkg/sqldb/sqltest"
	"github.com/slipwayhq/slipway/pkg/testenv"
	"github.com/slipwayhq/slipway/services/projects"
)

// stack is a projects service on real gRPC, a real database and a real
// NATS JetStream, wired as `slipway serve` wires it.
type stack struct {
	client projectsv1.ProjectsServiceClient
	js     jetstream.JetStream
}

func newStack(t *testing.T, engine sqldb.Dialect) *stack {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	db := openDB(t, engine)
	nats := testenv.StartNATS(t)
	nc, err := events.Connect(nats.URL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := events.EnsureStream(ctx, js); err != nil {
		t.Fatal(err)
	}
	relay := events.NewRelay(db, js)
	go func() { _ = relay.Run(ctx) }()
	store := projects.NewSQLStore(db, relay.Notify)
	stop, err := events.Consume(ctx, js, events.ConsumerConfig{Durable: projects.ResourceConsumer, Subjects: projects.ResourceSubjects}, projects.ResourceHandler(store))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	cat, err := catalog.Load("")
	if err != nil {
		t.Fatal(err)
	}
	conn := rpctest.Serve(t, rpcserver.Options{Authorizer: authz.New(tokens, "internal")}, func(s *grpc.Server) {
		projectsv1.RegisterProjectsServiceServer(s, projects.NewServer(store, cat))
	}, grpc.WithUnaryInterceptor(asAcmeAdmin))
	return &stack{client: projectsv1.NewProjectsServiceClient(conn), js: js}
}

// tokens are the credentials the tests use: acme's admin (the default),
// acme's viewer, a token restricted to one project, and globex's admin.
var tokens = authztest.Static{
	"Bearer acme-admin":  authztest.TeamToken("acme", "admin"),
	"Bearer acme-viewer": authztest.TeamToken("acme", "viewer"),
	"Bearer acme-only":   authztest.TeamToken("acme", "admin", "only-this"),
	"Bearer globex":      authztest.TeamToken("globex", "admin"),
}

// asAcmeAdmin sends acme's admin token unless the call names another.
func asAcmeAdmin(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if md, _ := metadata.FromOutgoingContext(ctx); len(md.Get("authorization")) == 0 {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer acme-admin")
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

// as returns ctx carrying another token.
func as(token string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
}

// collect returns a function that waits for n events on subject.
func (s *stack) collect(t *testing.T, subject string) func(n int) []events.Event {
	return func(n int) []events.Event {
		t.Helper()
		out := eventstest.Collect(t, s.js, []string{subject}, n, 0, nil)
		if len(out) != n {
			t.Fatalf("got %d events on %s, want %d", len(out), subject, n)
		}
		return out
	}
}

func fieldViolations(t *testing.T, err error) map[string]string {
	t.Helper()
	st := status.Convert(err)
	out := map[string]string{}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				out[v.GetField()] = v.GetDescription()
			}
		}
	}
	return out
}

func TestServer(t *testing.T) {
	sqltest.EachEngine(t, func(t *testing.T, engine sqldb.Dialect) {
		s := newStack(t, engine)
		t.Run("CreateEmitsEvent", func(t *testing.T) { testCreateEmitsEvent(t, s) })
		t.Run("Validation", func(t *testing.T) { testValidation(t, s) })
		t.Run("PutCreatesThenUpdates", func(t *testing.T) { testPut(t, s) })
		t.Run("PatchIsPartial", func(t *testing.T) { testPatch(t, s) })
		t.Run("DeleteRefusesNonEmpty", func(t *testing.T) { testDeleteNonEmpty(t, s) })
		t.Run("Catalog", func(t *testing.T) { testCatalog(t, s) })
		t.Run("Authorization", func(t *testing.T) { testAuthorization(t, s) })
	})
}

func testCreateEmitsEvent(t *testing.T, s *stack) {
	ctx := context.Background()
	wait := s.collect(t, "slipway.projects.project.created")
	resp, err := s.client.CreateProject(ctx, &projectsv1.CreateProjectRequest{Name: "Event Project", Color: "#EF233C"})
	if err != nil {
		t.Fatal(err)
	}
	p := resp.GetProject()
	if p.GetId() != "event-project" || p.GetRegion() != "local" || p.GetDeployment().GetRegion() != "local" || p.GetCreatedAt() == nil {
		t.Fatalf("created %+v", p)
	}
	var found bool
	for _, ev := range wait(1) {
		var data map[string]any
		if err := ev.Decode(&data); err != nil {
			t.Fatal(err)
		}
		if ev.Subject == "acme/event-project" && data["name"] == "Event Project" && ev.Source == "slipway/projects" && ev.SpecVersion == "1.0" {
			found = true
		}
	}
	if !found {
		t.Fatal("no created event for event-project")
	}
	_, err = s.client.CreateProject(ctx, &projectsv1.CreateProjectRequest{Name: "event  PROJECT"})
	if status.Code(err) != codes.AlreadyExists {
		t.Fatalf("duplicate derived id: %v, want AlreadyExists", err)
	}
}

func testValidation(t *testing.T, s *stack) {
	ctx := context.Background()
	for name, tc := range map[string]struct {
		req   *projectsv1.CreateProjectRequest
		field string
	}{
		"short name":     {&projectsv1.CreateProjectRequest{Name: "ab"}, "name"},
		"long name":      {&projectsv1.CreateProjectRequest{Name: "a123456789012345678901234567890123456789"}, "name"},
		"bad characters": {&projectsv1.CreateProjectRequest{Name: "bad/name"}, "name"},
		"bad color":      {&projectsv1.CreateProjectRequest{Name: "colorful", Color: "red"}, "color"},
		"unknown region": {&projectsv1.CreateProjectRequest{Name: "placed", Region: "mars"}, "region"},
	} {
		_, err := s.client.CreateProject(ctx, tc.req)
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
			continue
		}
		if _, ok := fieldViolations(t, err)[tc.field]; !ok {
			t.Errorf("%s: violations %v do not name %q", name, fieldViolations(t, err), tc.field)
		}
	}
	_, err := s.client.ListProjects(ctx, &projectsv1.ListProjectsRequest{PerPage: 101})
	if _, ok := fieldViolations(t, err)["perPage"]; !ok {
		t.Errorf("per_page 101: %v, want a perPage violation", err)
	}
	_, err = s.client.ListProjects(ctx, &projectsv1.ListProjectsRequest{Cursor: "!!!"})
	if _, ok := fieldViolations(t, err)["cursor"]; !ok {
		t.Errorf("bad cursor: %v, want a cursor violation", err)
	}
}

func testPut(t *testing.T, s *stack) {
	ctx := context.Background()
	first, err := s.client.PutProject(ctx, &projectsv1.PutProjectRequest{Name: "Put Project", Description: "one"})
	if err != nil {
		t.Fatal(err)
	}
	second, err := s.client.PutProject(ctx, &projectsv1.PutProjectRequest{Name: "Put Project", Description: "two"})
	if err != nil {
		t.Fatal(err)
	}
	if second.GetProject().GetId() != first.GetProject().GetId() || second.GetProject().GetDescription() != "two" {
		t.Fatalf("PUT update = %+v", second.GetProject())
	}
	if !second.GetProject().GetCreatedAt().AsTime().Equal(first.GetProject().GetCreatedAt().AsTime()) {
		t.Fatal("PUT update changed createdAt")
	}
	third, err := s.client.PutProject(ctx, &projectsv1.PutProjectRequest{Name: "Put Project", Description: "two"})
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(third.GetProject(), second.GetProject()) {
		t.Fatalf("repeated PUT changed the project:\n%v\n%v", second.GetProject(), third.GetProject())
	}
	_, err = s.client.PutProject(ctx, &projectsv1.PutProjectRequest{Name: "Put Project", Region: "elsewhere"})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("PUT with another region: %v, want InvalidArgument", err)
	}
}

func testPatch(t *testing.T, s *stack) {
	ctx := context.Background()
	if _, err := s.client.CreateProject(ctx, &projectsv1.CreateProjectRequest{Name: "Patchy", Description: "keep", Color: "#000000"}); err != nil {
		t.Fatal(err)
	}
	color := "#FFFFFF"
	resp, err := s.client.PatchProject(ctx, &projectsv1.PatchProjectRequest{ProjectId: "patchy", Color: &color})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetProject().GetColor() != "#FFFFFF" || resp.GetProject().GetDescription() != "keep" {
		t.Fatalf("PATCH = %+v", resp.GetProject())
	}
	if _, err := s.client.PatchProject(ctx, &projectsv1.PatchProjectRequest{ProjectId: "missing", Color: &color}); status.Code(err) != codes.NotFound {
		t.Fatalf("PATCH missing: %v, want NotFound", err)
	}
}

// testDeleteNonEmpty shows the non-empty rule working from real events: a
// job created by the jobs service (here: its event) blocks the delete.
func testDeleteNonEmpty(t *testing.T, s *stack) {
	ctx := context.Background()
	if _, err := s.client.CreateProject(ctx, &projectsv1.CreateProjectRequest{Name: "Busy"}); err != nil {
		t.Fatal(err)
	}
	ev, err := events.NewProjectResource("jobs", events.ResourceCreated, events.ProjectResource{TeamID: "acme", ProjectID: "busy", Kind: events.ResourceJob, ID: "nightly", Name: "Nightly", Type: "cron"})
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(ev)
	if _, err := s.js.Publish(ctx, ev.NATSSubject(), payload, jetstream.WithMsgID(ev.ID)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		got, err := s.client.GetProject(ctx, &projectsv1.GetProjectRequest{ProjectId: "busy"})
		if err != nil {
			t.Fatal(err)
		}
		if len(got.GetProject().GetJobs()) == 1 {
			if j := got.GetProject().GetJobs()[0]; j.GetId() != "nightly" || j.GetJobType() != "cron" || j.GetAppId() != "/acme/busy/nightly" {
				t.Fatalf("job = %+v", j)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the job's event never reached the project")
		}
		time.Sleep(50 * time.Millisecond)
	}
	_, err = s.client.DeleteProject(ctx, &projectsv1.DeleteProjectRequest{ProjectId: "busy"})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("delete non-empty: %v, want FailedPrecondition", err)
	}
	wait := s.collect(t, "slipway.projects.project.deleted")
	if _, err := s.client.DeleteProject(ctx, &projectsv1.DeleteProjectRequest{ProjectId: "busy", DeleteChildObjects: true}); err != nil {
		t.Fatal(err)
	}
	var data struct {
		ID                 string `json:"id"`
		DeleteChildObjects bool   `json:"deleteChildObjects"`
	}
	if err := wait(1)[0].Decode(&data); err != nil {
		t.Fatal(err)
	}
	if data.ID != "busy" || !data.DeleteChildObjects {
		t.Fatalf("deleted event data = %+v", data)
	}
	if _, err := s.client.GetProject(ctx, &projectsv1.GetProjectRequest{ProjectId: "busy"}); status.Code(err) != codes.NotFound {
		t.Fatalf("get after delete: %v", err)
	}
}

func testCatalog(t *testing.T, s *stack) {
	ctx := context.Background()
	regions, err := s.client.ListRegions(ctx, &projectsv1.ListRegionsRequest{})
	if err != nil || len(regions.GetRegions()) == 0 {
		t.Fatalf("regions = %v, %v", regions, err)
	}
	plans, err := s.client.ListPlans(ctx, &projectsv1.ListPlansRequest{})
	if err != nil || len(plans.GetPlans()) == 0 || plans.GetPlans()[0].GetCurrency() != "usd" {
		t.Fatalf("plans = %v, %v", plans, err)
	}
	// A Northflank region id of the built-in catalogue: the project keeps
	// it as its region and runs on this install's cluster.
	resp, err := s.client.CreateProject(ctx, &projectsv1.CreateProjectRequest{Name: "Northflank Region", Region: "europe-west"})
	if err != nil {
		t.Fatal(err)
	}
	p := resp.GetProject()
	if p.GetRegion() != "europe-west" || p.GetDeployment().GetRegion() != "europe-west" ||
		p.GetCluster().GetId() != "local" || p.GetCluster().GetName() != "Local" {
		t.Errorf("project in europe-west: region %q, deployment %v, cluster %v; want europe-west on cluster local",
			p.GetRegion(), p.GetDeployment(), p.GetCluster())
	}
	// Northflank's clusterId places a project on a cluster: a region that
	// runs on its own machines, agreeing with region when both are given.
	if resp, err := s.client.CreateProject(ctx, &projectsv1.CreateProjectRequest{Name: "On Cluster", ClusterId: "local"}); err != nil ||
		resp.GetProject().GetRegion() != "local" || resp.GetProject().GetCluster().GetId() != "local" {
		t.Errorf("project with clusterId local: %v, %v", resp, err)
	}
	if _, err := s.client.CreateProject(ctx, &projectsv1.CreateProjectRequest{Name: "Both Given", Region: "us-west", ClusterId: "local"}); err != nil {
		t.Errorf("region us-west on cluster local: %v", err)
	}
	for name, req := range map[string]*projectsv1.CreateProjectRequest{
		"a region without machines of its own": {Name: "Not A Cluster", ClusterId: "europe-west"},
		"an unknown cluster":                   {Name: "No Cluster", ClusterId: "mars"},
	} {
		if _, err := s.client.CreateProject(ctx, req); status.Code(err) != codes.InvalidArgument || !strings.Contains(fmt.Sprint(status.Convert(err).Details()), "clusterId") {
			t.Errorf("clusterId of %s: %v, want InvalidArgument naming clusterId", name, err)
		}
	}
	// Networking settings cannot be honoured: refused, naming the field.
	net, err := structpb.NewValue(map[string]any{"allowedIngressProjects": []any{"other"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.client.CreateProject(ctx, &projectsv1.CreateProjectRequest{Name: "Networked", Networking: net})
	if d := fmt.Sprint(status.Convert(err).Details()); status.Code(err) != codes.InvalidArgument || !strings.Contains(d, "networking") || !strings.Contains(d, "not supported by Slipway") {
		t.Errorf("project with networking: %v (%s), want InvalidArgument: not supported", err, d)
	}
	empty, _ := structpb.NewValue(map[string]any{})
	if _, err := s.client.PatchProject(ctx, &projectsv1.PatchProjectRequest{ProjectId: "on-cluster", Networking: empty}); err != nil {
		t.Errorf("patch with empty networking: %v", err)
	}
}

// testAuthorization runs the service behind the real interceptor: roles,
// teams and project restrictions decide, and other teams see 404s.
func testAuthorization(t *testing.T, s *stack) {
	if _, err := s.client.CreateProject(context.Background(), &projectsv1.CreateProjectRequest{Name: "Guarded"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.client.CreateProject(as("globex"), &projectsv1.CreateProjectRequest{Name: "Guarded", Description: "globex's own"}); err != nil {
		t.Fatalf("same name in another team: %v", err)
	}
	for name, tc := range map[string]struct {
		ctx  context.Context
		call func(context.Context) error
		want codes.Code
	}{
		"no token": {metadata.AppendToOutgoingContext(context.Background(), "authorization", ""), func(ctx context.Context) error {
			_, err := s.client.GetProject(ctx, &projectsv1.GetProjectRequest{ProjectId: "guarded"})
			return err
		}, codes.Unauthenticated},
		"viewer reads": {as("acme-viewer"), func(ctx context.Context) error {
			_, err := s.client.GetProject(ctx, &projectsv1.GetProjectRequest{ProjectId: "guarded"})
			return err
		}, codes.OK},
		"viewer writes": {as("acme-viewer"), func(ctx context.Context) error {
			_, err := s.client.DeleteProject(ctx, &projectsv1.DeleteProjectRequest{ProjectId: "guarded"})
			return err
		}, codes.PermissionDenied},
		"restricted elsewhere": {as("acme-only"), func(ctx context.Context) error {
			_, err := s.client.GetProject(ctx, &projectsv1.GetProjectRequest{ProjectId: "guarded"})
			return err
		}, codes.NotFound},
		"restricted create elsewhere": {as("acme-only"), func(ctx context.Context) error {
			_, err := s.client.CreateProject(ctx, &projectsv1.CreateProjectRequest{Name: "Somewhere Else"})
			return err
		}, codes.PermissionDenied},
		"restricted create its own": {as("acme-only"), func(ctx context.Context) error {
			_, err := s.client.CreateProject(ctx, &projectsv1.CreateProjectRequest{Name: "Only This"})
			return err
		}, codes.OK},
	} {
		t.Run(name, func(t *testing.T) {
			if got := status.Code(tc.call(tc.ctx)); got != tc.want {
				t.Fatalf("code %v, want %v", got, tc.want)
			}
		})
	}
	got, err := s.client.GetProject(as("globex"), &projectsv1.GetProjectRequest{ProjectId: "guarded"})
	if err != nil || got.GetProject().GetDescription() != "globex's own" {
		t.Fatalf("globex sees %v, %v", got, err)
	}
	list, err := s.client.ListProjects(as("acme-only"), &projectsv1.ListProjectsRequest{})
	if err != nil || len(list.GetProjects()) != 1 || list.GetProjects()[0].GetId() != "only-this" {
		t.Fatalf("restricted list = %v, %v", list, err)
	}
	list, err = s.client.ListProjects(as("globex"), &projectsv1.ListProjectsRequest{})
	if err != nil || len(list.GetProjects()) != 1 {
		t.Fatalf("globex list = %v, %v", list, err)
	}
}
