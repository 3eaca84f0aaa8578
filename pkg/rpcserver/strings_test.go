package rpcserver_test

import (
	"context"
	"log/slog"
	"reflect"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	jobsv1 "github.com/slipwayhq/slipway/gen/slipway/jobs/v1"
	projectsv1 "github.com/slipwayhq/slipway/gen/slipway/projects/v1"
	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/rpcserver"
)

// violations returns a status's field violations by field.
func violations(t *testing.T, err error) map[string][]string {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument {
		t.Fatalf("got %v, want InvalidArgument", err)
	}
	out := map[string][]string{}
	reason := ""
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.BadRequest:
			for _, v := range d.GetFieldViolations() {
				out[v.GetField()] = append(out[v.GetField()], v.GetDescription())
			}
		case *errdetails.ErrorInfo:
			reason = d.GetReason()
		}
	}
	if reason != string(apierr.ReasonValidationFailed) {
		t.Errorf("reason %q, want %s", reason, apierr.ReasonValidationFailed)
	}
	return out
}

// TestCheckRequestWalksEveryString: the check finds a bad string wherever
// it sits in a request and names it by the path the client sent.
func TestCheckRequestWalksEveryString(t *testing.T) {
	for name, c := range map[string]struct {
		method string
		req    any
		want   map[string][]string
	}{
		"clean":         {projectsv1.ProjectsService_GetProject_FullMethodName, &projectsv1.GetProjectRequest{ProjectId: "ok-é"}, nil},
		"not a message": {"/x/Y", "a\x00", nil},
		"path id NUL": {projectsv1.ProjectsService_GetProject_FullMethodName,
			&projectsv1.GetProjectRequest{ProjectId: "\x00"}, map[string][]string{"projectId": {"must not contain NUL characters"}}},
		"path id not UTF-8": {projectsv1.ProjectsService_GetProject_FullMethodName,
			&projectsv1.GetProjectRequest{ProjectId: "\xff"}, map[string][]string{"projectId": {"must be valid UTF-8"}}},
		"cursor": {projectsv1.ProjectsService_ListProjects_FullMethodName,
			&projectsv1.ListProjectsRequest{Cursor: "a\x00"}, map[string][]string{"cursor": {"must not contain NUL characters"}}},
		"body fields": {projectsv1.ProjectsService_CreateProject_FullMethodName,
			&projectsv1.CreateProjectRequest{Name: "a\x00b", Description: "\xc3"},
			map[string][]string{"name": {"must not contain NUL characters"}, "description": {"must be valid UTF-8"}}},
		// body: "spec" — the client sends the spec's fields at the top.
		"nested, list and map; body field dropped": {jobsv1.JobsService_CreateManualJob_FullMethodName,
			&jobsv1.CreateManualJobRequest{ProjectId: "p\x00", Spec: &jobsv1.JobSpec{
				Name:               "ok",
				Deployment:         &jobsv1.JobDeployment{Docker: &jobsv1.DockerOverrides{ConfigType: "customCommand", CustomCommand: "\xff"}},
				RuntimeEnvironment: map[string]string{"pwned_key": "v\x00", "bad\xffkey": "v"},
			}},
			map[string][]string{
				"projectId":                        {"must not contain NUL characters"},
				"deployment.docker.customCommand":  {"must be valid UTF-8"},
				`runtimeEnvironment["pwned_key"]`:  {"must not contain NUL characters"},
				`runtimeEnvironment["bad\xffkey"]`: {"must be valid UTF-8"},
			}},
	} {
		t.Run(name, func(t *testing.T) {
			err := rpcserver.CheckRequest(c.method, c.req)
			if c.want == nil {
				if err != nil {
					t.Fatalf("CheckRequest = %v, want nil", err)
				}
				return
			}
			if got := violations(t, err); !reflect.DeepEqual(got, c.want) {
				t.Fatalf("violations %q, want %q", got, c.want)
			}
		})
	}
}

// TestChainRefusesBadStrings: the chain answers the validation error before
// the authorizer or the handler sees a bad string, in one process and over
// the network.
func TestChainRefusesBadStrings(t *testing.T) {
	authz := &recordingAuthorizer{}
	chain, err := rpcserver.NewChain(rpcserver.Options{Authorizer: authz, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	local := rpcserver.NewLocal()
	chain.Bind(local)
	e := &echo{}
	projectsv1.RegisterProjectsServiceServer(local, e)
	for _, id := range []string{"\x00", "\xff", "a\x00b"} {
		_, err := projectsv1.NewProjectsServiceClient(local).GetProject(context.Background(), &projectsv1.GetProjectRequest{ProjectId: id})
		if got := violations(t, err); len(got["projectId"]) != 1 {
			t.Fatalf("%q: violations %v, want projectId", id, got)
		}
	}
	if len(authz.methods) != 0 || e.last != nil {
		t.Fatalf("the authorizer (%v) or the handler (%v) saw a bad string", authz.methods, e.last)
	}

	// Over the network a NUL arrives (it is valid UTF-8); the chain
	// refuses it there too.
	client, f := start(t, rpcserver.Options{Logger: slog.New(slog.DiscardHandler)})
	_, err = client.GetProject(context.Background(), &projectsv1.GetProjectRequest{ProjectId: "\x00"})
	if got := violations(t, err); len(got["projectId"]) != 1 {
		t.Fatalf("violations %v, want projectId", got)
	}
	if f.lastID != "" {
		t.Fatal("the handler ran")
	}
}

// TestValidationKeepsMapKeys: a map key in a violation's path is the
// user's own text, named verbatim, not camel-cased like a field name.
func TestValidationKeepsMapKeys(t *testing.T) {
	chain, err := rpcserver.NewChain(rpcserver.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	local := rpcserver.NewLocal()
	chain.Bind(local)
	jobsv1.RegisterJobsServiceServer(local, jobsv1.UnimplementedJobsServiceServer{})
	long := make([]byte, 70000)
	for i := range long {
		long[i] = 'x'
	}
	_, err = jobsv1.NewJobsServiceClient(local).CreateManualJob(context.Background(), &jobsv1.CreateManualJobRequest{
		ProjectId: "p", Spec: &jobsv1.JobSpec{
			Name:               "job",
			Deployment:         &jobsv1.JobDeployment{Docker: &jobsv1.DockerOverrides{ConfigType: "default"}},
			RuntimeEnvironment: map[string]string{"pwned_key": string(long), "bad key_x": "v"},
		}})
	got := violations(t, err)
	for _, field := range []string{`runtimeEnvironment["pwned_key"]`, `runtimeEnvironment["bad key_x"]`} {
		if _, ok := got[field]; !ok {
			t.Errorf("no violation of %s in %v", field, got)
		}
	}
}

// BenchmarkCheckRequest is the cost every RPC pays for a clean request.
func BenchmarkCheckRequest(b *testing.B) {
	req := &jobsv1.GetJobLogsRequest{ProjectId: "my-project", JobId: "nightly-backup", RunId: "run-1", ContainerName: "all"}
	b.ReportAllocs()
	for b.Loop() {
		if err := rpcserver.CheckRequest(jobsv1.JobsService_GetJobLogs_FullMethodName, req); err != nil {
			b.Fatal(err)
		}
	}
}
