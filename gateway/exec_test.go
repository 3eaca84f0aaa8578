package gateway_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	gwruntime "github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/slipwayhq/slipway/gateway"
	execv1 "github.com/slipwayhq/slipway/gen/slipway/exec/v1"
	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/authz"
	"github.com/slipwayhq/slipway/pkg/component"
	"github.com/slipwayhq/slipway/pkg/execstream"
	"github.com/slipwayhq/slipway/pkg/execstream/exectest"
	"github.com/slipwayhq/slipway/pkg/quota"
	"github.com/slipwayhq/slipway/pkg/rpcserver"
	"github.com/slipwayhq/slipway/pkg/rpcserver/rpctest"
	"github.com/slipwayhq/slipway/pkg/runtime"
)

// execEnv is a gateway in front of exectest's service, served by
// execstream behind the real chain and authorizer: the service "api" of
// project "web" runs commands as local processes in a temp dir; "term"
// reports what its terminal gets; "gone" does not exist and "paused" has
// no running instance.
type execEnv struct {
	ws string
	// stop ends the gateway's life, as a shutdown does.
	stop context.CancelFunc
	// resolved counts the sessions the component resolved.
	mu       sync.Mutex
	resolved int
	// ended receives the context error of every command that ended.
	ended chan error
}

func newExecEnv(t *testing.T) *execEnv { return newExecEnvOn(t, nil, false) }

// newExecEnvWith adds services of project "web" that run commands with
// the given functions.
func newExecEnvWith(t *testing.T, runs map[string]func(context.Context, runtime.ExecSpec) (int, error)) *execEnv {
	return newExecEnvOn(t, runs, false)
}

// newExecEnvOn is newExecEnvWith, calling the component in memory (as in
// one process, --target=all) when inProcess is set, else over loopback.
func newExecEnvOn(t *testing.T, runs map[string]func(context.Context, runtime.ExecSpec) (int, error), inProcess bool) *execEnv {
	t.Helper()
	env := &execEnv{ended: make(chan error, 10)}
	dir := t.TempDir()
	resolve := func(_ context.Context, first *execv1.ExecInput) (execstream.Target, error) {
		env.mu.Lock()
		env.resolved++
		env.mu.Unlock()
		if first.GetProjectId() != "web" {
			return execstream.Target{}, apierr.NotFound("project", first.GetProjectId())
		}
		run := exectest.Local(dir)
		resource := first.GetStart().GetResourceId()
		switch {
		case runs[resource] != nil:
			run = runs[resource]
		case resource == "api":
		case resource == "term":
			run = terminal
		case resource == "paused":
			return execstream.Target{}, runtime.ErrNotRunning
		default:
			return execstream.Target{}, apierr.NotFound("service", first.GetStart().GetResourceId())
		}
		return execstream.Target{Instance: "api-7f9c", Container: "api", Run: func(ctx context.Context, spec runtime.ExecSpec) (int, error) {
			code, err := run(ctx, spec)
			env.ended <- ctx.Err()
			return code, err
		}}, nil
	}
	desc := exectest.Desc(func(stream execstream.Stream) error { return execstream.Serve(stream, resolve) })
	opts := rpcserver.Options{Logger: quiet, Authorizer: authz.New(tokens, "internal")}
	var conn grpc.ClientConnInterface
	if inProcess {
		chain, err := rpcserver.NewChain(opts)
		if err != nil {
			t.Fatal(err)
		}
		local := rpcserver.NewLocal()
		chain.Bind(local)
		local.RegisterService(desc, struct{}{})
		conn = local
	} else {
		conn = rpctest.Serve(t, opts, func(s *grpc.Server) { s.RegisterService(desc, struct{}{}) })
	}
	ctx, stop := context.WithCancel(context.Background())
	t.Cleanup(stop)
	reg := prometheus.NewRegistry()
	gw, err := gateway.New(ctx, gateway.Options{Logger: quiet, Registerer: reg, Gatherer: reg,
		Backends: []component.Backend{{Name: "exectest", Conn: conn, API: component.API{
			Register:      func(context.Context, *gwruntime.ServeMux, grpc.ClientConnInterface) error { return nil },
			HealthService: exectest.ServiceName,
			Exec:          []component.Exec{{Path: "/projects/{project_id}/services/{resource_id}", Method: exectest.Method}},
		}}},
		Auth: authz.New(tokens, "internal"), Quota: quota.NewMemory(time.Hour), Plans: quota.Plans{Default: 1_000_000}})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(gw)
	t.Cleanup(ts.Close)
	env.ws = "ws" + strings.TrimPrefix(ts.URL, "http")
	env.stop = stop
	return env
}

// terminal reports what its spec says, then every resize, and exits at a
// size of 1x1.
func terminal(ctx context.Context, spec runtime.ExecSpec) (int, error) {
	fmt.Fprintf(spec.Stdout, "tty=%v %dx%d %q\n", spec.TTY, spec.Size.Cols, spec.Size.Rows, spec.Command)
	for {
		select {
		case s := <-spec.Resize:
			fmt.Fprintf(spec.Stdout, "%dx%d\n", s.Cols, s.Rows)
			if s.Cols == 1 && s.Rows == 1 {
				return 0, nil
			}
		case <-ctx.Done():
			return -1, ctx.Err()
		}
	}
}

// execClient speaks as the js clients do: binary frames of JSON.
type execClient struct{ tailClient }

func dialExec(t *testing.T, url, token, context string) execClient {
	t.Helper()
	c := execClient{dialTail(t, url)}
	c.frame(`{"type":"init","data":{"auth":{"type":"apiToken","apiToken":"` + token + `"},"context":` + context + `}}`)
	return c
}

func (c execClient) frame(msg string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.c.Write(ctx, websocket.MessageBinary, []byte(msg)); err != nil {
		c.t.Fatal(err)
	}
}

func (c execClient) payload(s string) {
	c.t.Helper()
	data, _ := json.Marshal(s)
	c.frame(`{"type":"payload","data":` + string(data) + `}`)
}

type completion struct {
	ExitCode int    `json:"exitCode"`
	Status   string `json:"status"`
	Message  string `json:"message"`
}

// started checks the init answer of a session that runs.
func (c execClient) started() {
	c.t.Helper()
	var r struct {
		Auth    string            `json:"auth"`
		Context map[string]string `json:"context"`
	}
	c.expect("init", &r)
	if r.Auth != "successful" || r.Context["instanceName"] != "api-7f9c" || r.Context["containerName"] != "api" {
		c.t.Fatalf("init answer %+v", r)
	}
}

// rest reads the session to its completion and the close.
func (c execClient) rest() (stdout, stderr string, done completion) {
	c.t.Helper()
	for {
		m, err := c.next()
		if err != nil {
			c.t.Fatalf("before the completion: %v", err)
		}
		var s string
		switch m.Type {
		case "stdOut", "stdErr":
			if err := json.Unmarshal(m.Data, &s); err != nil {
				c.t.Fatalf("%s data %s", m.Type, m.Data)
			}
			if m.Type == "stdOut" {
				stdout += s
			} else {
				stderr += s
			}
		case "completion":
			if err := json.Unmarshal(m.Data, &done); err != nil {
				c.t.Fatal(err)
			}
			c.expectClose(websocket.StatusNormalClosure)
			return stdout, stderr, done
		default:
			c.t.Fatalf("got %s %s", m.Type, m.Data)
		}
	}
}

func TestExecSession(t *testing.T) {
	t.Run("network", func(t *testing.T) { testExecSession(t, newExecEnv(t)) })
	t.Run("in process", func(t *testing.T) { testExecSession(t, newExecEnvOn(t, nil, true)) })
}

func testExecSession(t *testing.T, env *execEnv) {
	url := env.ws + "/v1/command-exec/projects/web/services/api"

	t.Run("0.9.5 command array, team route", func(t *testing.T) {
		c := dialExec(t, env.ws+"/v1/command-exec/teams/acme/projects/web/services/api", "test-token",
			`{"command":["sh","-c","echo out; echo err >&2; exit 3"],"shell":"none","tty":false}`)
		c.started()
		out, errOut, done := c.rest()
		if out != "out\n" || errOut != "err\n" || done.ExitCode != 3 || done.Status != "Failure" {
			t.Fatalf("stdout %q stderr %q completion %+v", out, errOut, done)
		}
	})

	t.Run("CLI --cmd", func(t *testing.T) {
		// 0.7.25's context: `northflank exec service --cmd 'echo hello  "big world"'`.
		c := dialExec(t, url, "test-token", `{"command":"echo hello  \"big  world\"","shell":"none","ttyColumns":120,"ttyRows":40}`)
		c.started()
		if out, _, done := c.rest(); out != "hello big  world\n" || done.ExitCode != 0 || done.Status != "Success" {
			t.Fatalf("stdout %q completion %+v", out, done)
		}
	})

	t.Run("CLI --shell-cmd", func(t *testing.T) {
		c := dialExec(t, url, "test-token", `{"command":"\"echo $((6*7)) >&2\"","shell":"sh -c"}`)
		c.started()
		if _, errOut, done := c.rest(); errOut != "42\n" || done.Status != "Success" {
			t.Fatalf("stderr %q completion %+v", errOut, done)
		}
	})

	t.Run("stdin and stdInEnd", func(t *testing.T) {
		c := dialExec(t, url, "test-token", `{"command":"cat","shell":"none"}`)
		c.payload("héllo ") // may arrive before the init answer, as the client sends it
		c.started()
		c.payload("wörld\n")
		c.frame(`{"type":"stdInEnd"}`)
		if out, _, done := c.rest(); out != "héllo wörld\n" || done.ExitCode != 0 {
			t.Fatalf("stdout %q completion %+v", out, done)
		}
	})

	t.Run("UTF-8 split across writes", func(t *testing.T) {
		c := dialExec(t, url, "test-token", `{"command":["sh","-c","printf '\\303'; sleep 0.2; printf '\\251\\n'"]}`)
		c.started()
		if out, _, _ := c.rest(); out != "é\n" {
			t.Fatalf("stdout %q", out)
		}
	})

	t.Run("interactive session, resize", func(t *testing.T) {
		// The CLI's interactive `northflank exec`: no command, no shell.
		c := dialExec(t, env.ws+"/v1/command-exec/projects/web/services/term", "test-token", `{"ttyColumns":80,"ttyRows":24}`)
		c.started()
		var line string
		c.expect("stdOut", &line)
		if want := fmt.Sprintf("tty=true 80x24 %q\n", []string{"/bin/sh", "-c", "if command -v bash >/dev/null 2>&1; then exec bash; fi; exec sh"}); line != want {
			t.Fatalf("got %q, want %q", line, want)
		}
		c.frame(`{"type":"resize","data":{"ttyRows":50,"ttyColumns":200}}`)
		c.expect("stdOut", &line)
		if line != "200x50\n" {
			t.Fatalf("resize: %q", line)
		}
		c.frame(`{"type":"resize","data":{"ttyRows":1,"ttyColumns":1}}`)
		if out, _, done := c.rest(); out != "1x1\n" || done.Status != "Success" {
			t.Fatalf("%q %+v", out, done)
		}
	})

	t.Run("0.9.5 session with a shell", func(t *testing.T) {
		c := dialExec(t, env.ws+"/v1/command-exec/projects/web/services/term", "test-token", `{"shell":"bash","tty":true,"ttyColumns":10,"ttyRows":5}`)
		c.started()
		var line string
		c.expect("stdOut", &line)
		if line != "tty=true 10x5 [\"bash\"]\n" {
			t.Fatalf("got %q", line)
		}
		c.frame(`{"type":"resize","data":{"ttyRows":1,"ttyColumns":1}}`)
		c.rest()
	})
}

// TestExecBase64 checks each base64 message on its own, as the client
// decodes them.
func TestExecBase64(t *testing.T) {
	env := newExecEnv(t)
	blob := []byte("\x00\xff\xfe binary \x80")
	c := dialExec(t, env.ws+"/v1/command-exec/projects/web/services/api", "test-token", `{"command":["cat"],"shell":"none","encoding":"base64"}`)
	c.started()
	c.payload(base64.StdEncoding.EncodeToString(blob[:5]))
	c.payload(base64.RawStdEncoding.EncodeToString(blob[5:]))
	c.frame(`{"type":"stdInEnd"}`)
	var got []byte
	for {
		m, err := c.next()
		if err != nil {
			t.Fatal(err)
		}
		if m.Type == "completion" {
			break
		}
		var s string
		if m.Type != "stdOut" || json.Unmarshal(m.Data, &s) != nil {
			t.Fatalf("got %s %s", m.Type, m.Data)
		}
		part, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			t.Fatalf("message %q: %v", s, err)
		}
		got = append(got, part...)
	}
	if string(got) != string(blob) {
		t.Fatalf("got %q", got)
	}
	c.expectClose(websocket.StatusNormalClosure)
}

func TestExecRefused(t *testing.T) {
	env := newExecEnv(t)
	url := env.ws + "/v1/command-exec/projects/web/services/api"
	command := `{"command":"id","shell":"none"}`

	// Credentials: the init answer says why, then a policy close; the
	// component is never asked.
	for token, status := range map[string]int{"nope": 401, "": 401} {
		c := dialExec(t, url, token, command)
		if r := c.expectInit("failed"); r.Status != status || r.ID != "UNAUTHENTICATED" || r.Message == "" {
			t.Fatalf("token %q: %+v", token, r)
		}
		c.expectClose(websocket.StatusPolicyViolation)
	}
	// A viewer lacks the exec permission: the component's authorizer
	// refuses the session before its handler resolves anything.
	c := dialExec(t, url, "viewer", command)
	if r := c.expectInit("failed"); r.Status != 403 || r.ID != "PERMISSION_DENIED" || !strings.Contains(r.Message, exectest.Permission) {
		t.Fatalf("viewer: %+v", r)
	}
	c.expectClose(websocket.StatusPolicyViolation)
	// Another team is not found (an error, like any unknown resource).
	c = dialExec(t, env.ws+"/v1/command-exec/teams/globex/projects/web/services/api", "test-token", command)
	c.expectError(404, "NOT_FOUND")
	c.expectClose(websocket.StatusNormalClosure)
	env.mu.Lock()
	if env.resolved != 0 {
		t.Fatalf("the component resolved %d refused sessions", env.resolved)
	}
	env.mu.Unlock()

	for _, c := range []struct {
		name, path, context string
		status              int
		id, contains        string
	}{
		{"unknown service", "/projects/web/services/gone", command, 404, "NOT_FOUND", `service "gone" not found`},
		{"unknown project", "/projects/shop/services/api", command, 404, "NOT_FOUND", `project "shop" not found`},
		{"paused", "/projects/web/services/paused", command, 409, "NOT_RUNNING", "no running instance"},
		{"shell none without a command", "/projects/web/services/api", `{"shell":"none"}`, 400, "VALIDATION_FAILED", "request validation failed"},
		{"bad quotes", "/projects/web/services/api", `{"command":"echo 'oops","shell":"none"}`, 400, "VALIDATION_FAILED", ""},
		{"bad command type", "/projects/web/services/api", `{"command":42}`, 400, "VALIDATION_FAILED", ""},
		{"unknown encoding", "/projects/web/services/api", `{"command":"id","encoding":"hex"}`, 400, "VALIDATION_FAILED", ""},
		{"another user", "/projects/web/services/api", `{"command":"id","user":0}`, 400, "VALIDATION_FAILED", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			cl := dialExec(t, env.ws+"/v1/command-exec"+c.path, "test-token", c.context)
			e := cl.expectError(c.status, c.id)
			if !strings.Contains(e.Message, c.contains) {
				t.Fatalf("message %q", e.Message)
			}
			cl.expectClose(websocket.StatusNormalClosure)
		})
	}

	t.Run("bad init", func(t *testing.T) {
		for _, msg := range []string{"hello", `{"type":"payload","data":"x"}`, `{"type":"init","data":{"context":{"ttyRows":-1}}}`} {
			cl := execClient{dialTail(t, url)}
			cl.frame(msg)
			cl.expectError(400, "BAD_INIT")
			cl.expectClose(websocket.StatusPolicyViolation)
		}
	})
}

// TestExecEnds: a frame of no known type and a client leaving both cancel
// the command.
func TestExecEnds(t *testing.T) {
	env := newExecEnv(t)
	url := env.ws + "/v1/command-exec/projects/web/services/api"
	for _, c := range []struct{ name, frame string }{
		{"unknown frame", `{"type":"signal","data":"KILL"}`},
		{"not JSON", `nope`},
		{"payload not a string", `{"type":"payload","data":42}`},
		{"client leaves", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			cl := dialExec(t, url, "test-token", `{"command":"sleep 60","shell":"none"}`)
			cl.started()
			if c.frame == "" {
				_ = cl.c.Close(websocket.StatusNormalClosure, "bye")
			} else {
				cl.frame(c.frame)
				cl.expectError(400, "BAD_INIT")
				cl.expectClose(websocket.StatusPolicyViolation)
			}
			if err := wait(t, env.ended, "the command's end"); err == nil {
				t.Fatal("the command ended on its own")
			}
		})
	}
}

// TestExecShutdown: a gateway shutting down closes its sessions with 1001
// and cancels their commands.
func TestExecShutdown(t *testing.T) {
	env := newExecEnv(t)
	c := dialExec(t, env.ws+"/v1/command-exec/projects/web/services/api", "test-token", `{"command":"sleep 60"}`)
	c.started()
	env.stop()
	c.expectClose(websocket.StatusGoingAway)
	if err := wait(t, env.ended, "the command's end"); err == nil {
		t.Fatal("the command ended on its own")
	}
}

// TestExecNotUpgraded: the exec path is no REST route.
func TestExecNotUpgraded(t *testing.T) {
	env := newExecEnv(t)
	resp, err := http.Get("http" + strings.TrimPrefix(env.ws, "ws") + "/v1/command-exec/projects/web/services/api")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status %d", resp.StatusCode)
	}
}
