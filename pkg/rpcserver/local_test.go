package rpcserver_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	projectsv1 "github.com/slipwayhq/slipway/gen/slipway/projects/v1"
	"github.com/slipwayhq/slipway/pkg/requestid"
	"github.com/slipwayhq/slipway/pkg/rpcserver"
)

// recordingAuthorizer lets every call through and remembers what it saw.
type recordingAuthorizer struct {
	methods []string
	auth    []string
}

func (a *recordingAuthorizer) Authorize(ctx context.Context, method string, _ any) (context.Context, error) {
	a.methods = append(a.methods, method)
	a.auth = append(a.auth, metadata.ValueFromIncomingContext(ctx, "authorization")...)
	return ctx, nil
}

type callerKey struct{}

// echo answers GetProject with the project id it was asked for, after
// changing the request, and reports whether the caller's context values
// reached it.
type echo struct {
	projectsv1.UnimplementedProjectsServiceServer
	last     *projectsv1.GetProjectResponse
	deadline bool
}

func (e *echo) GetProject(ctx context.Context, req *projectsv1.GetProjectRequest) (*projectsv1.GetProjectResponse, error) {
	name := req.GetProjectId()
	if ctx.Value(callerKey{}) != nil {
		name = "leaked"
	}
	_, e.deadline = ctx.Deadline()
	req.ProjectId = "changed by the handler"
	if err := grpc.SetHeader(ctx, metadata.Pairs("x-header", name)); err != nil {
		return nil, err
	}
	if err := grpc.SetTrailer(ctx, metadata.Pairs("x-trailer", name)); err != nil {
		return nil, err
	}
	e.last = &projectsv1.GetProjectResponse{Project: &projectsv1.Project{Id: name}}
	return e.last, nil
}

// TestLocal: calls in one process run the chain in the caller's goroutine
// and give the handler what the network would: copies of the messages,
// the metadata, the deadline, not the caller's context values.
func TestLocal(t *testing.T) {
	authz := &recordingAuthorizer{}
	chain, err := rpcserver.NewChain(rpcserver.Options{Authorizer: authz, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	local := rpcserver.NewLocal()
	chain.Bind(local)
	e := &echo{}
	projectsv1.RegisterProjectsServiceServer(local, e)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(local, hs)

	ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), callerKey{}, true), time.Minute)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer x")
	req := &projectsv1.GetProjectRequest{ProjectId: "p1"}
	var header, trailer metadata.MD
	resp, err := projectsv1.NewProjectsServiceClient(local).GetProject(ctx, req, grpc.Header(&header), grpc.Trailer(&trailer))
	if err != nil {
		t.Fatal(err)
	}
	if header.Get("x-header")[0] != "p1" || trailer.Get("x-trailer")[0] != "p1" || len(header.Get(requestid.MetadataKey)) != 1 {
		t.Fatalf("the caller got header %v and trailer %v; want the handler's and the chain's", header, trailer)
	}
	if got := resp.GetProject().GetId(); got != "p1" {
		t.Fatalf("the handler saw project %q (caller values leak as \"leaked\")", got)
	}
	if !e.deadline {
		t.Fatal("the handler did not get the caller's deadline")
	}
	if req.GetProjectId() != "p1" {
		t.Fatalf("the handler changed the caller's request: %q", req.GetProjectId())
	}
	e.last.Project.Id = "changed after return"
	if resp.GetProject().GetId() != "p1" {
		t.Fatal("the caller shares the handler's response")
	}
	if len(authz.methods) != 1 || authz.methods[0] != projectsv1.ProjectsService_GetProject_FullMethodName || authz.auth[0] != "Bearer x" {
		t.Fatalf("the chain saw %v with %v", authz.methods, authz.auth)
	}

	// Errors are statuses, as over the network.
	_, err = projectsv1.NewProjectsServiceClient(local).ListProjects(ctx, &projectsv1.ListProjectsRequest{})
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("unimplemented method: %v", err)
	}
	err = local.Invoke(ctx, "/nope.Service/Method", &projectsv1.GetProjectRequest{}, &projectsv1.GetProjectResponse{})
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("unknown service: %v", err)
	}

	// Streams run through the same chain.
	stream, err := healthpb.NewHealthClient(local).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil || first.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Watch: %v, %v", first, err)
	}
	if authz.methods[len(authz.methods)-1] != "/grpc.health.v1.Health/Watch" {
		t.Fatalf("the stream did not run the chain: %v", authz.methods)
	}
	_ = stream.CloseSend()
}
