package rpcserver_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	execv1 "github.com/slipwayhq/slipway/gen/slipway/exec/v1"
	"github.com/slipwayhq/slipway/pkg/authz"
	"github.com/slipwayhq/slipway/pkg/authz/authztest"
	"github.com/slipwayhq/slipway/pkg/execstream"
	"github.com/slipwayhq/slipway/pkg/execstream/exectest"
	"github.com/slipwayhq/slipway/pkg/rpcserver"
	"github.com/slipwayhq/slipway/pkg/rpcserver/rpctest"
)

// TestBidiStreamAuthorizesFirstMessage: on a client stream (an exec
// session), the real authorizer checks the first message's team and
// project, with the method's access rule, before the handler receives it;
// a refused first message never reaches the handler; the handler cannot
// send before; later messages are validated (not authorized again).
func TestBidiStreamAuthorizesFirstMessage(t *testing.T) {
	seen := make(chan *execv1.ExecInput, 10)
	handlerErr := make(chan error, 10)
	conn := rpctest.Serve(t, rpcserver.Options{Authorizer: authz.New(authztest.Static{
		"Bearer dev":        authztest.TeamToken("acme", "developer"),
		"Bearer viewer":     authztest.TeamToken("acme", "viewer"),
		"Bearer restricted": authztest.TeamToken("acme", "developer", "web"),
	}, "internal")}, func(s *grpc.Server) {
		s.RegisterService(exectest.Desc(func(stream execstream.Stream) error {
			for {
				in, err := stream.Recv()
				if err != nil {
					handlerErr <- err
					return err
				}
				seen <- in
				if err := stream.Send(&execv1.ExecOutput{Output: &execv1.ExecOutput_Stdout{Stdout: []byte("ok")}}); err != nil {
					return err
				}
			}
		}), struct{}{})
	})
	open := func(t *testing.T, token string) grpc.ClientStream {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		t.Cleanup(cancel)
		s, err := conn.NewStream(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token),
			&grpc.StreamDesc{ClientStreams: true, ServerStreams: true}, exectest.Method)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	first := func(team, project string) *execv1.ExecInput {
		return &execv1.ExecInput{TeamId: team, ProjectId: project, Input: &execv1.ExecInput_Start{Start: &execv1.ExecStart{ResourceId: "api", Command: []string{"true"}}}}
	}
	recvCode := func(t *testing.T, s grpc.ClientStream) codes.Code {
		t.Helper()
		var out execv1.ExecOutput
		err := s.RecvMsg(&out)
		if err == nil {
			t.Fatalf("received %v, want an error", &out)
		}
		return status.Code(err)
	}
	drain := func() {
		for len(seen) > 0 {
			<-seen
		}
		for len(handlerErr) > 0 {
			<-handlerErr
		}
	}

	for _, c := range []struct {
		name, token string
		first       *execv1.ExecInput
		want        codes.Code
	}{
		{"no permission", "viewer", first("", "web"), codes.PermissionDenied},
		{"other team", "dev", first("globex", "web"), codes.NotFound},
		{"restricted project", "restricted", first("", "shop"), codes.NotFound},
		{"bad credentials", "nope", first("", "web"), codes.Unauthenticated},
		{"invalid first message", "dev", &execv1.ExecInput{ProjectId: "web", Input: &execv1.ExecInput_Start{Start: &execv1.ExecStart{}}}, codes.InvalidArgument},
	} {
		t.Run(c.name, func(t *testing.T) {
			drain()
			s := open(t, c.token)
			if err := s.SendMsg(c.first); err != nil {
				t.Fatal(err)
			}
			if got := recvCode(t, s); got != c.want {
				t.Fatalf("code %v, want %v", got, c.want)
			}
			if len(seen) > 0 {
				t.Fatalf("the handler received a refused first message: %v", <-seen)
			}
		})
	}

	t.Run("allowed", func(t *testing.T) {
		drain()
		s := open(t, "restricted")
		if err := s.SendMsg(first("", "web")); err != nil {
			t.Fatal(err)
		}
		var out execv1.ExecOutput
		if err := s.RecvMsg(&out); err != nil {
			t.Fatal(err)
		}
		if in := <-seen; in.GetProjectId() != "web" {
			t.Fatalf("handler saw %v", in)
		}
		// A later message naming another project is not authorized again
		// (the handler must ignore or refuse it: execstream refuses it)...
		if err := s.SendMsg(&execv1.ExecInput{ProjectId: "shop", Input: &execv1.ExecInput_StdinEnd{StdinEnd: true}}); err != nil {
			t.Fatal(err)
		}
		if err := s.RecvMsg(&out); err != nil {
			t.Fatal(err)
		}
		<-seen
		// ...but it is validated: stdin over its limit ends the stream.
		if err := s.SendMsg(&execv1.ExecInput{Input: &execv1.ExecInput_Stdin{Stdin: []byte(strings.Repeat("x", 65537))}}); err != nil && !errors.Is(err, io.EOF) {
			t.Fatal(err)
		}
		if got := recvCode(t, s); got != codes.InvalidArgument {
			t.Fatalf("oversized stdin: %v", got)
		}
		if err := <-handlerErr; status.Code(err) != codes.InvalidArgument {
			t.Fatalf("the handler's Recv returned %v", err)
		}
		if len(seen) > 0 {
			t.Fatalf("the handler received an invalid message: %v", <-seen)
		}
	})
}

// TestStreamSendBeforeRecv: a streaming handler that sends before it has
// received (and so authorized) its request is refused.
func TestStreamSendBeforeRecv(t *testing.T) {
	conn := rpctest.Serve(t, rpcserver.Options{Authorizer: denyAll{}}, func(s *grpc.Server) {
		s.RegisterService(exectest.Desc(func(stream execstream.Stream) error {
			return stream.Send(&execv1.ExecOutput{Output: &execv1.ExecOutput_Stdout{Stdout: []byte("leak")}})
		}), struct{}{})
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := conn.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}, exectest.Method)
	if err != nil {
		t.Fatal(err)
	}
	var out execv1.ExecOutput
	if err := s.RecvMsg(&out); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("got %v %v, want PermissionDenied", &out, err)
	}
}
