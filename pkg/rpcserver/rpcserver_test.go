package rpcserver_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	projectsv1 "github.com/slipwayhq/slipway/gen/slipway/projects/v1"
	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/requestid"
	"github.com/slipwayhq/slipway/pkg/rpcserver"
	"github.com/slipwayhq/slipway/pkg/rpcserver/rpctest"
)

// fake answers GetProject according to the id it is asked for, so each
// test case can provoke one kind of failure.
type fake struct {
	projectsv1.UnimplementedProjectsServiceServer
	mu     sync.Mutex
	lastID string
}

func (f *fake) GetProject(ctx context.Context, req *projectsv1.GetProjectRequest) (*projectsv1.GetProjectResponse, error) {
	f.mu.Lock()
	f.lastID = requestid.FromContext(ctx)
	f.mu.Unlock()
	switch req.GetProjectId() {
	case "panic":
		panic("handler bug")
	case "plain":
		return nil, errors.New("pq: connection to 10.0.0.7 refused")
	case "missing":
		return nil, apierr.NotFound("project", "missing")
	}
	return &projectsv1.GetProjectResponse{Project: &projectsv1.Project{Id: req.GetProjectId()}}, nil
}

type denyAll struct{}

func (denyAll) Authorize(ctx context.Context, _ string, _ any) (context.Context, error) {
	return ctx, &apierr.Error{Code: codes.Unauthenticated, Reason: "UNAUTHENTICATED", Message: "credentials required"}
}

func start(t *testing.T, opts rpcserver.Options) (projectsv1.ProjectsServiceClient, *fake) {
	t.Helper()
	f := &fake{}
	conn := rpctest.Serve(t, opts, func(s *grpc.Server) { projectsv1.RegisterProjectsServiceServer(s, f) })
	return projectsv1.NewProjectsServiceClient(conn), f
}

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestErrorMapping(t *testing.T) {
	logs := &syncBuffer{}
	reg := prometheus.NewRegistry()
	client, _ := start(t, rpcserver.Options{Logger: slog.New(slog.NewTextHandler(logs, nil)), Registerer: reg})
	ctx := context.Background()

	_, err := client.GetProject(ctx, &projectsv1.GetProjectRequest{ProjectId: "panic"})
	if st := status.Convert(err); st.Code() != codes.Internal || st.Message() != "internal error" {
		t.Fatalf("panic: %v, want a bare internal error", err)
	}
	_, err = client.GetProject(ctx, &projectsv1.GetProjectRequest{ProjectId: "plain"})
	if st := status.Convert(err); st.Code() != codes.Internal || strings.Contains(st.Message(), "10.0.0.7") {
		t.Fatalf("unexpected error leaked: %v", err)
	}
	if !strings.Contains(logs.String(), "10.0.0.7") || !strings.Contains(logs.String(), "handler bug") {
		t.Fatalf("causes not logged:\n%s", logs)
	}
	_, err = client.GetProject(ctx, &projectsv1.GetProjectRequest{ProjectId: "missing"})
	st := status.Convert(err)
	if st.Code() != codes.NotFound {
		t.Fatalf("not found: %v", err)
	}
	var reason string
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == apierr.Domain {
			reason = info.GetReason()
		}
	}
	if reason != "NOT_FOUND" {
		t.Fatalf("ErrorInfo reason %q", reason)
	}
	if n := handled(t, reg, "Internal"); n != 2 {
		t.Fatalf("internal errors counted %v, want 2", n)
	}
}

// handled returns slipway_grpc_server_handled_total summed for code.
func handled(t *testing.T, reg *prometheus.Registry, code string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != "slipway_grpc_server_handled_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "grpc_code" && l.GetValue() == code {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}

func TestValidationNamesJSONFields(t *testing.T) {
	client, _ := start(t, rpcserver.Options{Logger: slog.New(slog.DiscardHandler)})
	_, err := client.ListProjects(context.Background(), &projectsv1.ListProjectsRequest{PerPage: 500})
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument {
		t.Fatalf("got %v", err)
	}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) == 1 && br.GetFieldViolations()[0].GetField() == "perPage" {
			return
		}
	}
	t.Fatalf("no perPage violation in %v", st.Details())
}

func TestRequestIDPropagates(t *testing.T) {
	logs := &syncBuffer{}
	client, f := start(t, rpcserver.Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	ctx := metadata.AppendToOutgoingContext(context.Background(), requestid.MetadataKey, "trace-42")
	var header metadata.MD
	if _, err := client.GetProject(ctx, &projectsv1.GetProjectRequest{ProjectId: "ok"}, grpc.Header(&header)); err != nil {
		t.Fatal(err)
	}
	if f.lastID != "trace-42" {
		t.Fatalf("handler saw request id %q", f.lastID)
	}
	if got := header.Get(requestid.MetadataKey); len(got) != 1 || got[0] != "trace-42" {
		t.Fatalf("response header %v", got)
	}
	if !strings.Contains(logs.String(), "request_id=trace-42") {
		t.Fatalf("log lacks the request id:\n%s", logs)
	}
	// Without one, the server makes one up.
	if _, err := client.GetProject(context.Background(), &projectsv1.GetProjectRequest{ProjectId: "ok"}); err != nil {
		t.Fatal(err)
	}
	if f.lastID == "" || f.lastID == "trace-42" {
		t.Fatalf("generated id %q", f.lastID)
	}
}

func TestAuthorizerGuardsEveryCall(t *testing.T) {
	client, f := start(t, rpcserver.Options{Logger: slog.New(slog.DiscardHandler), Authorizer: denyAll{}})
	_, err := client.GetProject(context.Background(), &projectsv1.GetProjectRequest{ProjectId: "ok"})
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("got %v, want Unauthenticated", err)
	}
	if f.lastID != "" {
		t.Fatal("handler ran despite the authorizer")
	}
}
