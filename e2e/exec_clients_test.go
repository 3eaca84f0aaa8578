package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gwruntime "github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"

	"github.com/slipwayhq/slipway/gateway"
	execv1 "github.com/slipwayhq/slipway/gen/slipway/exec/v1"
	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/authz"
	"github.com/slipwayhq/slipway/pkg/authz/authztest"
	comp "github.com/slipwayhq/slipway/pkg/component"
	"github.com/slipwayhq/slipway/pkg/execstream"
	"github.com/slipwayhq/slipway/pkg/execstream/exectest"
	"github.com/slipwayhq/slipway/pkg/quota"
	"github.com/slipwayhq/slipway/pkg/rpcserver"
	"github.com/slipwayhq/slipway/pkg/rpcserver/rpctest"
)

// execScript drives the exec channel with both versions of the official
// client: js-client 0.9.5 and the 0.7.25 the CLI bundles (what `northflank
// exec` runs). It prints one JSON object of results.
const execScript = `
const path = require('path');
const clients = {
  '0.9.5': require('@northflank/js-client'),
  '0.7.25': require(path.join(process.cwd(), 'node_modules/@northflank/cli/node_modules/@northflank/js-client')),
};
const svc = { projectId: 'web', serviceId: 'api' };
function collect(stream) { let s = ''; stream.on('data', (d) => { s += d.toString(); }); return () => s; }
(async () => {
  const out = {};
  for (const [v, m] of Object.entries(clients)) {
    const ctx = new m.ApiClientInMemoryContextProvider();
    await ctx.addContext({ name: 'e2e', token: process.env.EXEC_TOKEN, host: process.env.EXEC_URL });
    const api = new m.ApiClient(ctx);
    const r = {};
    r.command = await api.exec.execServiceCommand(svc, { command: 'sh -c "echo out; echo err >&2; exit 3"' });
    // A session fed on stdin: 0.7.25 cannot end stdin, so the command
    // reads a known number of bytes.
    const s = await api.exec.execServiceSession(svc, { command: ['head', '-c', '11'], shell: 'none' });
    const stdout = collect(s.stdOut);
    s.stdIn.write('hello ');
    s.stdIn.write('world');
    const result = await s.waitForCommandResult();
    r.session = { result, stdout: stdout() };
    if (v === '0.9.5') {
      r.team = await api.exec.execServiceCommand({ teamId: 'acme', ...svc }, { command: ['printf', '%s', 'team route'] });
      const f = await api.exec.execServiceSession(svc, { command: ['cat'], shell: 'none', tty: false, encoding: 'base64' });
      const chunks = [];
      f.stdOut.on('data', (d) => chunks.push(Buffer.from(d)));
      f.stdIn.write(Buffer.from([0, 255, 254, 1]).toString('base64'));
      f.stdIn.end();
      r.base64 = { result: await f.waitForCommandResult(), bytes: [...Buffer.concat(chunks)] };
      try {
        await api.exec.execServiceCommand({ projectId: 'web', serviceId: 'gone' }, { command: 'id' });
        r.missing = 'no error';
      } catch (e) { r.missing = e.message; }
    }
    out[v] = r;
  }
  console.log(JSON.stringify(out));
})().catch((e) => { console.error(e); process.exit(1); });
`

// TestExecJSClients runs the official clients' exec against the gateway's
// command-exec channel (served from exectest's component with execstream,
// running commands as local processes, until a component of the table
// declares one): `northflank exec service --cmd` (with and without
// --shell-cmd), then, in both client versions, a command's output and exit
// code and a session's standard input, and with 0.9.5 the team route,
// base64 (file copy's encoding) and an unknown service.
func TestExecJSClients(t *testing.T) {
	dir := requireNodeSuite(t)
	const token = "exec-js-token"
	tokens := authztest.Static{"Bearer " + token: authztest.TeamToken("acme", "admin")}
	workDir := t.TempDir()
	resolve := func(_ context.Context, first *execv1.ExecInput) (execstream.Target, error) {
		if first.GetProjectId() != "web" || first.GetStart().GetResourceId() != "api" {
			return execstream.Target{}, apierr.NotFound("service", first.GetStart().GetResourceId())
		}
		return execstream.Target{Instance: "api-1", Container: "api", Run: exectest.Local(workDir)}, nil
	}
	conn := rpctest.Serve(t, rpcserver.Options{Authorizer: authz.New(tokens, "internal")}, func(s *grpc.Server) {
		s.RegisterService(exectest.Desc(func(stream execstream.Stream) error { return execstream.Serve(stream, resolve) }), struct{}{})
	})
	ctx, stop := context.WithCancel(context.Background())
	t.Cleanup(stop)
	gw, err := gateway.New(ctx, gateway.Options{Logger: slog.New(slog.DiscardHandler),
		Backends: []comp.Backend{{Name: "exectest", Conn: conn, API: comp.API{
			Register:      func(context.Context, *gwruntime.ServeMux, grpc.ClientConnInterface) error { return nil },
			HealthService: exectest.ServiceName,
			Exec:          []comp.Exec{{Path: "/projects/{project_id}/services/{resource_id}", Method: exectest.Method}},
		}}},
		Auth: authz.New(tokens, "internal"), Quota: quota.NewMemory(time.Hour), Plans: quota.Plans{Default: 1_000_000}})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(gw)
	t.Cleanup(ts.Close)

	runCtx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(runCtx, "node", "-e", execScript)
	cmd.Dir = dir
	cmd.Env = append(baseEnv(), "EXEC_URL="+ts.URL, "EXEC_TOKEN="+token)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	raw, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, stderr.String())
	}
	// The CLI itself: `northflank exec service --cmd` as a user types it,
	// logged in by its config file (the login command would ask the auth
	// service, which this gateway does not front).
	cli := newNorthflankCLI(t)
	config := fmt.Sprintf(`{"current":"e2e","contexts":[{"name":"e2e","token":%q,"host":%q}],"lastUpdateCheck":253402300799000}`, token, ts.URL)
	if err := os.WriteFile(filepath.Join(cli.home, ".northflank", "config.json"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	res := cli.run("exec", "service", "--projectId", "web", "--serviceId", "api", "--cmd", `sh -c "echo from the CLI"`)
	if res.exitCode != 0 || !strings.Contains(res.stdout, "from the CLI") || !strings.Contains(res.stdout+res.stderr, "exit code: 0") {
		t.Errorf("northflank exec: exit %d\nstdout: %s\nstderr: %s", res.exitCode, res.stdout, res.stderr)
	}
	res = cli.run("exec", "service", "--projectId", "web", "--serviceId", "api", "--cmd", `"echo $((6*7)); exit 5"`, "--shell-cmd", "sh -c")
	if !strings.Contains(res.stdout, "42") || !strings.Contains(res.stdout+res.stderr, "exit code: 5") {
		t.Errorf("northflank exec --shell-cmd: exit %d\nstdout: %s\nstderr: %s", res.exitCode, res.stdout, res.stderr)
	}
	t.Logf("northflank exec --shell-cmd printed:\n%s%s", res.stdout, res.stderr)

	type result struct {
		ExitCode int    `json:"exitCode"`
		Status   string `json:"status"`
	}
	var got map[string]struct {
		Command struct {
			CommandResult  result `json:"commandResult"`
			StdOut, StdErr string
		} `json:"command"`
		Session struct {
			Result result `json:"result"`
			Stdout string `json:"stdout"`
		} `json:"session"`
		Team struct {
			CommandResult result `json:"commandResult"`
			StdOut        string
		} `json:"team"`
		Base64 struct {
			Result result `json:"result"`
			Bytes  []int  `json:"bytes"`
		} `json:"base64"`
		Missing string `json:"missing"`
	}
	t.Logf("node: %s", raw)
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("node printed %q: %v", raw, err)
	}
	for _, v := range []string{"0.9.5", "0.7.25"} {
		r, ok := got[v]
		if !ok {
			t.Fatalf("no results for %s: %s", v, raw)
		}
		if c := r.Command; c.StdOut != "out\n" || c.StdErr != "err\n" || c.CommandResult != (result{3, "Failure"}) {
			t.Errorf("%s execServiceCommand: %+v", v, c)
		}
		if s := r.Session; s.Stdout != "hello world" || s.Result != (result{0, "Success"}) {
			t.Errorf("%s execServiceSession: %+v", v, s)
		}
	}
	r := got["0.9.5"]
	if r.Team.StdOut != "team route" || r.Team.CommandResult != (result{0, "Success"}) {
		t.Errorf("team route: %+v", r.Team)
	}
	if b := r.Base64; len(b.Bytes) != 4 || b.Bytes[0] != 0 || b.Bytes[1] != 255 || b.Bytes[2] != 254 || b.Bytes[3] != 1 || b.Result.Status != "Success" {
		t.Errorf("base64: %+v", b)
	}
	if !strings.Contains(r.Missing, `service \"gone\" not found`) && !strings.Contains(r.Missing, `service "gone" not found`) {
		t.Errorf("unknown service: %q", r.Missing)
	}
}
