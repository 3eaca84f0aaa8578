package execstream_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
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
	"github.com/slipwayhq/slipway/pkg/runtime"
)

func chainOptions() rpcserver.Options {
	return rpcserver.Options{Logger: slog.New(slog.DiscardHandler), Authorizer: authz.New(authztest.Static{
		"Bearer dev": authztest.TeamToken("acme", "developer"),
	}, "internal")}
}

// serve runs execstream.Serve behind the real chain and authorizer, over
// a loopback connection, with resolve saying where each session runs.
func serve(t *testing.T, resolve execstream.Resolve) grpc.ClientConnInterface {
	t.Helper()
	return rpctest.Serve(t, chainOptions(), func(s *grpc.Server) {
		s.RegisterService(exectest.Desc(func(stream execstream.Stream) error { return execstream.Serve(stream, resolve) }), struct{}{})
	})
}

// serveLocal is serve in memory, as components of one process call each
// other (--target=all).
func serveLocal(t *testing.T, resolve execstream.Resolve) grpc.ClientConnInterface {
	t.Helper()
	chain, err := rpcserver.NewChain(chainOptions())
	if err != nil {
		t.Fatal(err)
	}
	l := rpcserver.NewLocal()
	chain.Bind(l)
	l.RegisterService(exectest.Desc(func(stream execstream.Stream) error { return execstream.Serve(stream, resolve) }), struct{}{})
	return l
}

type session struct {
	t *testing.T
	s grpc.ClientStream
}

func open(t *testing.T, conn grpc.ClientConnInterface, start *execv1.ExecStart) session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return openCtx(t, ctx, conn, start)
}

func openCtx(t *testing.T, ctx context.Context, conn grpc.ClientConnInterface, start *execv1.ExecStart) session {
	t.Helper()
	s, err := conn.NewStream(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer dev"),
		&grpc.StreamDesc{ClientStreams: true, ServerStreams: true}, exectest.Method)
	if err != nil {
		t.Fatal(err)
	}
	if start.ResourceId == "" {
		start.ResourceId = "api"
	}
	if err := s.SendMsg(&execv1.ExecInput{ProjectId: "web", Input: &execv1.ExecInput_Start{Start: start}}); err != nil {
		t.Fatal(err)
	}
	return session{t, s}
}

func (s session) send(in *execv1.ExecInput) {
	s.t.Helper()
	if err := s.s.SendMsg(in); err != nil && !errors.Is(err, io.EOF) {
		s.t.Fatal(err)
	}
}

func (s session) stdin(data string) {
	s.send(&execv1.ExecInput{Input: &execv1.ExecInput_Stdin{Stdin: []byte(data)}})
}

func (s session) stdinEnd() {
	s.send(&execv1.ExecInput{Input: &execv1.ExecInput_StdinEnd{StdinEnd: true}})
}

// result is everything a session sent.
type result struct {
	started        *execv1.ExecStarted
	stdout, stderr bytes.Buffer
	exit           *execv1.ExecExit
	messages       []*execv1.ExecOutput
	err            error
}

// wait reads the session to its end, checking the order of messages.
func (s session) wait() *result {
	s.t.Helper()
	r := &result{}
	for {
		out := new(execv1.ExecOutput)
		err := s.s.RecvMsg(out)
		if errors.Is(err, io.EOF) {
			return r
		}
		if err != nil {
			r.err = err
			return r
		}
		r.messages = append(r.messages, out)
		if r.exit != nil {
			s.t.Fatalf("%v after the exit", out)
		}
		switch x := out.GetOutput().(type) {
		case *execv1.ExecOutput_Started:
			if r.started != nil || len(r.messages) != 1 {
				s.t.Fatalf("started is message %d", len(r.messages))
			}
			r.started = x.Started
		case *execv1.ExecOutput_Stdout:
			r.stdout.Write(x.Stdout)
		case *execv1.ExecOutput_Stderr:
			r.stderr.Write(x.Stderr)
		case *execv1.ExecOutput_Exit:
			r.exit = x.Exit
		}
		if r.started == nil {
			s.t.Fatalf("%v before started", out)
		}
	}
}

func reason(err error) string {
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.GetReason()
		}
	}
	return ""
}

func local(t *testing.T) execstream.Resolve {
	dir := t.TempDir()
	return func(ctx context.Context, first *execv1.ExecInput) (execstream.Target, error) {
		// A component resolves for the caller the chain authorized, as
		// the deployments service does: its grant must be in ctx.
		if g, ok := authz.GrantFrom(ctx); !ok || g.GetTeamId() != "acme" {
			return execstream.Target{}, fmt.Errorf("resolve: no grant of team acme in the context (%v)", g)
		}
		if first.GetProjectId() != "web" || first.GetStart().GetResourceId() != "api" {
			return execstream.Target{}, fmt.Errorf("resolved %v", first)
		}
		return execstream.Target{Instance: "api-1", Container: "api", Run: exectest.Local(dir)}, nil
	}
}

// transports are the two ways components are called: over a network
// connection, and in memory within one process.
var transports = []struct {
	name  string
	serve func(*testing.T, execstream.Resolve) grpc.ClientConnInterface
}{{"network", serve}, {"in process", serveLocal}}

func TestSession(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) { testSession(t, tr.serve(t, local(t))) })
	}
}

func testSession(t *testing.T, conn grpc.ClientConnInterface) {

	t.Run("output and exit", func(t *testing.T) {
		r := open(t, conn, &execv1.ExecStart{Command: []string{"sh", "-c", `echo out; echo err >&2; printf "$GREETING"; exit 3`}, Env: map[string]string{"GREETING": "hi"}}).wait()
		if r.err != nil {
			t.Fatal(r.err)
		}
		if r.started.GetInstance() != "api-1" || r.started.GetContainer() != "api" {
			t.Fatalf("started %v", r.started)
		}
		if r.stdout.String() != "out\nhi" || r.stderr.String() != "err\n" || r.exit == nil || r.exit.GetCode() != 3 {
			t.Fatalf("stdout %q stderr %q exit %v", &r.stdout, &r.stderr, r.exit)
		}
	})

	t.Run("stdin and its end", func(t *testing.T) {
		s := open(t, conn, &execv1.ExecStart{Command: []string{"sh", "-c", "cat; echo done"}})
		s.stdin("hello ")
		s.stdin("\x00binary\xff")
		s.stdinEnd()
		r := s.wait()
		if r.err != nil || r.stdout.String() != "hello \x00binary\xffdone\n" || r.exit.GetCode() != 0 {
			t.Fatalf("stdout %q exit %v err %v", &r.stdout, r.exit, r.err)
		}
	})

	t.Run("closing the send side ends stdin", func(t *testing.T) {
		s := open(t, conn, &execv1.ExecStart{Command: []string{"cat"}})
		s.stdin("bye")
		if err := s.s.CloseSend(); err != nil {
			t.Fatal(err)
		}
		if r := s.wait(); r.err != nil || r.stdout.String() != "bye" || r.exit.GetCode() != 0 {
			t.Fatalf("stdout %q exit %v err %v", &r.stdout, r.exit, r.err)
		}
	})

	t.Run("large output in bounded messages", func(t *testing.T) {
		r := open(t, conn, &execv1.ExecStart{Command: []string{"sh", "-c", "head -c 3000000 /dev/zero | tr '\\0' x"}}).wait()
		if r.err != nil || r.stdout.Len() != 3000000 || strings.Trim(r.stdout.String(), "x") != "" {
			t.Fatalf("%d bytes, err %v", r.stdout.Len(), r.err)
		}
		for _, m := range r.messages {
			if n := len(m.GetStdout()); n > execstream.ChunkBytes {
				t.Fatalf("a message of %d bytes", n)
			}
		}
	})

	t.Run("a second start", func(t *testing.T) {
		s := open(t, conn, &execv1.ExecStart{Command: []string{"sleep", "30"}})
		s.send(&execv1.ExecInput{ProjectId: "other", Input: &execv1.ExecInput_Start{Start: &execv1.ExecStart{ResourceId: "x", Command: []string{"id"}}}})
		if r := s.wait(); status.Code(r.err) != codes.InvalidArgument {
			t.Fatalf("got %v", r.err)
		}
	})

	t.Run("stdin after its end", func(t *testing.T) {
		s := open(t, conn, &execv1.ExecStart{Command: []string{"sleep", "30"}})
		s.stdinEnd()
		s.stdin("late")
		if r := s.wait(); status.Code(r.err) != codes.InvalidArgument {
			t.Fatalf("got %v", r.err)
		}
	})

	t.Run("another user", func(t *testing.T) {
		r := open(t, conn, &execv1.ExecStart{Command: []string{"id"}, User: "root"}).wait()
		if status.Code(r.err) != codes.InvalidArgument || r.started != nil {
			t.Fatalf("got %v", r.err)
		}
	})
}

// TestCallerLeaves: the caller going away kills the command.
func TestCallerLeaves(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) { testCallerLeaves(t, tr.serve) })
	}
}

func testCallerLeaves(t *testing.T, serve func(*testing.T, execstream.Resolve) grpc.ClientConnInterface) {
	ended := make(chan error, 1)
	conn := serve(t, func(context.Context, *execv1.ExecInput) (execstream.Target, error) {
		return execstream.Target{Instance: "api-1", Run: func(ctx context.Context, spec runtime.ExecSpec) (int, error) {
			code, err := exectest.Local(t.TempDir())(ctx, spec)
			ended <- ctx.Err()
			return code, err
		}}, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := openCtx(t, ctx, conn, &execv1.ExecStart{Command: []string{"sleep", "60"}})
	var out execv1.ExecOutput
	if err := s.s.RecvMsg(&out); err != nil || out.GetStarted() == nil {
		t.Fatalf("%v %v", &out, err)
	}
	cancel()
	select {
	case err := <-ended:
		if err == nil {
			t.Fatal("the command ended with its context alive")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the command outlived its caller")
	}
}

// TestTerminal: tty, the first size and every resize reach the spec.
func TestTerminal(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) { testTerminal(t, tr.serve) })
	}
}

func testTerminal(t *testing.T, serve func(*testing.T, execstream.Resolve) grpc.ClientConnInterface) {
	conn := serve(t, func(context.Context, *execv1.ExecInput) (execstream.Target, error) {
		return execstream.Target{Instance: "api-1", Run: func(ctx context.Context, spec runtime.ExecSpec) (int, error) {
			fmt.Fprintf(spec.Stdout, "tty=%v %dx%d\n", spec.TTY, spec.Size.Cols, spec.Size.Rows)
			for {
				select {
				case size := <-spec.Resize:
					fmt.Fprintf(spec.Stdout, "%dx%d\n", size.Cols, size.Rows)
					if size.Cols == 0 {
						return 0, nil
					}
				case <-ctx.Done():
					return -1, ctx.Err()
				}
			}
		}}, nil
	})
	s := open(t, conn, &execv1.ExecStart{Command: []string{"sh"}, Tty: true, Size: &execv1.TerminalSize{Rows: 24, Cols: 80}})
	var out execv1.ExecOutput
	if err := s.s.RecvMsg(&out); err != nil || out.GetStarted() == nil {
		t.Fatalf("%v %v", &out, err)
	}
	if err := s.s.RecvMsg(&out); err != nil || string(out.GetStdout()) != "tty=true 80x24\n" {
		t.Fatalf("%v %v", &out, err)
	}
	s.send(&execv1.ExecInput{Input: &execv1.ExecInput_Resize{Resize: &execv1.TerminalSize{Rows: 50, Cols: 200}}})
	if err := s.s.RecvMsg(&out); err != nil || string(out.GetStdout()) != "200x50\n" {
		t.Fatalf("%v %v", &out, err)
	}
	s.send(&execv1.ExecInput{Input: &execv1.ExecInput_Resize{Resize: &execv1.TerminalSize{}}})
	if err := s.s.RecvMsg(&out); err != nil || string(out.GetStdout()) != "0x0\n" {
		t.Fatalf("%v %v", &out, err)
	}
	if err := s.s.RecvMsg(&out); err != nil || out.GetExit() == nil || out.GetExit().GetCode() != 0 {
		t.Fatalf("%v %v", &out, err)
	}
}

// TestErrors: what resolving or running returns reaches the caller in the
// API's vocabulary, internals hidden.
func TestErrors(t *testing.T) {
	for _, c := range []struct {
		name     string
		resolve  error
		run      error
		code     codes.Code
		reason   string
		contains string
	}{
		{name: "no instance", resolve: runtime.ErrNotRunning, code: codes.FailedPrecondition, reason: "NOT_RUNNING", contains: "no running instance"},
		{name: "instance gone", run: fmt.Errorf("exec in 10.1.2.3: %w", runtime.ErrNotRunning), code: codes.FailedPrecondition, reason: "NOT_RUNNING", contains: `"api-1" is not running`},
		{name: "driver cannot", run: runtime.ErrUnsupported, code: codes.Unimplemented, reason: "EXEC_UNSUPPORTED"},
		{name: "internal", run: errors.New("dial unix /run/podman.sock: refused"), code: codes.Internal, reason: "INTERNAL"},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn := serve(t, func(context.Context, *execv1.ExecInput) (execstream.Target, error) {
				if c.resolve != nil {
					return execstream.Target{}, c.resolve
				}
				return execstream.Target{Instance: "api-1", Run: func(context.Context, runtime.ExecSpec) (int, error) { return -1, c.run }}, nil
			})
			r := open(t, conn, &execv1.ExecStart{Command: []string{"true"}}).wait()
			if status.Code(r.err) != c.code || reason(r.err) != c.reason || r.exit != nil {
				t.Fatalf("got %v (%s), want %v %s", r.err, reason(r.err), c.code, c.reason)
			}
			msg := status.Convert(r.err).Message()
			if !strings.Contains(msg, c.contains) || strings.Contains(msg, "10.1.2.3") || strings.Contains(msg, "podman") {
				t.Fatalf("message %q", msg)
			}
			if (c.resolve != nil) != (r.started == nil) {
				t.Fatalf("started %v", r.started)
			}
		})
	}
}
