package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
      r.team = await api.exec.execServiceCommand({ teamId: process.env.EXEC_TEAM, ...svc }, { command: ['printf', '%s', 'team route'] });
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
// command-exec channel of a real Slipway, into the sandboxed instance of
// a service on the process driver: `northflank exec service --cmd` (with and without
// --shell-cmd), then, in both client versions, a command's output and exit
// code and a session's standard input, and with 0.9.5 the team route,
// base64 (file copy's encoding) and an unknown service.
func TestExecJSClients(t *testing.T) {
	dir := requireNodeSuite(t)
	const token = adminToken
	inst := startSlipway(t)
	team := deployExecTarget(t, inst.URL)

	runCtx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(runCtx, "node", "-e", execScript)
	cmd.Dir = dir
	cmd.Env = append(baseEnv(), "EXEC_URL="+inst.URL, "EXEC_TOKEN="+token, "EXEC_TEAM="+team)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	raw, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, stderr.String())
	}
	// The CLI itself: `northflank exec service --cmd` as a user types it,
	// logged in by its config file.
	cli := newNorthflankCLI(t)
	config := fmt.Sprintf(`{"current":"e2e","contexts":[{"name":"e2e","token":%q,"host":%q}],"lastUpdateCheck":253402300799000}`, token, inst.URL)
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

	// Into a paused service: refused, saying why.
	callJSON(t, "POST", inst.URL+"/v1/projects/web/services/api/pause", `{}`).data(t)
	res = cli.run("exec", "service", "--projectId", "web", "--serviceId", "api", "--cmd", "true")
	if !strings.Contains(res.stdout+res.stderr, `service "api" is paused`) {
		t.Errorf("northflank exec into a paused service: exit %d\nstdout: %s\nstderr: %s", res.exitCode, res.stdout, res.stderr)
	}
	t.Logf("northflank exec into a paused service printed:\n%s%s", res.stdout, res.stderr)

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

// deployExecTarget creates project "web" with service "api" on the
// process driver (busybox httpd on a port, so that it is ready only once
// its sandbox runs) and waits for its rollout; it returns the team the
// admin token acts in.
func deployExecTarget(t *testing.T, base string) string {
	t.Helper()
	callJSON(t, "POST", base+"/v1/projects", `{"name":"web"}`).data(t)
	callJSON(t, "POST", base+"/v1/projects/web/services/deployment", `{"name":"api",
		"deployment":{"instances":1,"docker":{"configType":"customCommand","customCommand":"busybox httpd -f -p 8080 -h /tmp"}},
		"ports":[{"name":"p01","internalPort":8080,"protocol":"TCP"}]}`).data(t)
	deadline := time.Now().Add(60 * time.Second)
	for {
		d := callJSON(t, "GET", base+"/v1/projects/web/services/api/deployment", "").data(t)
		st, _ := d["status"].(map[string]any)
		if st["status"] == "COMPLETED" {
			break
		}
		if st["status"] == "FAILED" || time.Now().After(deadline) {
			t.Fatalf("service api did not roll out: %v", d)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return "default" // the bootstrap admin's team
}
