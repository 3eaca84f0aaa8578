package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// cliTimeout bounds one command of the Northflank CLI. With stdin closed a
// command that would prompt fails or hangs; the timeout turns a hang into
// a failure that names the command.
const cliTimeout = time.Minute

// northflankCLI runs the official @northflank/cli (pinned in
// e2e/js/package.json, installed by `make deps`) as a user would, with a
// home of its own: the CLI keeps its contexts (host, token, defaults) in
// $HOME/.northflank/config.json.
type northflankCLI struct {
	t      *testing.T
	script string // .../@northflank/cli/dist/cli.js
	guard  string // e2e/js/loopback-only.cjs
	home   string
}

// newNorthflankCLI fails (never skips) unless node and the installed CLI
// are present, and returns a CLI with a throwaway home. The home's config
// already records an update check in the far future: the CLI otherwise asks
// registry.npmjs.org for its latest version once a day, and tests reach
// loopback only. (The CLI compares Number(lastUpdateCheck) plus one day
// with now, so the value must be a number of milliseconds; a stored date
// string is NaN and would check on every run.) Every run also preloads
// loopback-only.cjs, which refuses and records any connection to another
// host; the test fails if one was attempted.
func newNorthflankCLI(t *testing.T) *northflankCLI {
	t.Helper()
	dir := requireNodeSuite(t)
	script := filepath.Join(dir, "node_modules", "@northflank", "cli", "dist", "cli.js")
	if _, err := os.Stat(script); err != nil {
		t.Fatalf("the Northflank CLI is not installed (%v): run `make test` (or `make deps`), which runs npm ci in e2e/js", err)
	}
	home := t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, ".northflank"), 0o700); err != nil {
		t.Fatal(err)
	}
	const farFuture = 253402300799000 // 9999-12-31T23:59:59Z in milliseconds
	config := fmt.Sprintf(`{"contexts":[],"lastUpdateCheck":%d}`, farFuture)
	if err := os.WriteFile(filepath.Join(home, ".northflank", "config.json"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &northflankCLI{t: t, script: script, guard: filepath.Join(dir, "loopback-only.cjs"), home: home}
	t.Cleanup(func() {
		if hosts, err := os.ReadFile(c.offHostLog()); err == nil {
			t.Errorf("the CLI tried to reach hosts other than loopback (refused): %q", hosts)
		} else if !errors.Is(err, os.ErrNotExist) {
			t.Error(err)
		}
	})
	return c
}

func (c *northflankCLI) offHostLog() string { return filepath.Join(c.home, "offhost.log") }

// cliResult is what one command printed and how it ended.
type cliResult struct {
	stdout, stderr string
	exitCode       int
}

// run runs `northflank args...` to completion with stdin closed.
func (c *northflankCLI) run(args ...string) cliResult {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", append([]string{"--require", c.guard, c.script}, args...)...)
	cmd.Dir = c.home
	cmd.Env = append(baseEnv(), "HOME="+c.home, "NO_COLOR=1", "FORCE_COLOR=0",
		"SLIPWAY_E2E_OFFHOST_LOG="+c.offHostLog())
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := cliResult{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		c.t.Fatalf("northflank %s: no exit within %s (waiting for input?)\nstdout: %s\nstderr: %s",
			strings.Join(args, " "), cliTimeout, res.stdout, res.stderr)
	case errors.As(err, &exit):
		res.exitCode = exit.ExitCode()
	case err != nil:
		c.t.Fatalf("northflank %s: %v", strings.Join(args, " "), err)
	}
	return res
}

// ok runs a command that must succeed: exit 0 and nothing on stderr (the
// CLI reports some failures there while exiting 0).
func (c *northflankCLI) ok(args ...string) string {
	c.t.Helper()
	res := c.run(args...)
	if res.exitCode != 0 || strings.TrimSpace(res.stderr) != "" {
		c.t.Fatalf("northflank %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), res.exitCode, res.stdout, res.stderr)
	}
	return res.stdout
}

// json runs a command with `--output json` and decodes what it prints.
func (c *northflankCLI) json(out any, args ...string) {
	c.t.Helper()
	stdout := c.ok(append(args, "--output", "json")...)
	if err := json.Unmarshal([]byte(stdout), out); err != nil {
		c.t.Fatalf("northflank %s --output json: not JSON (%v):\n%s", strings.Join(args, " "), err, stdout)
	}
}

// config is the CLI's stored configuration.
func (c *northflankCLI) config() (current string, contexts []string) {
	c.t.Helper()
	raw, err := os.ReadFile(filepath.Join(c.home, ".northflank", "config.json"))
	if err != nil {
		c.t.Fatal(err)
	}
	var cfg struct {
		Current  string `json:"current"`
		Contexts []struct {
			Name string `json:"name"`
		} `json:"contexts"`
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		c.t.Fatalf("CLI config: %v\n%s", err, raw)
	}
	for _, ctx := range cfg.Contexts {
		contexts = append(contexts, ctx.Name)
	}
	return cfg.Current, contexts
}

// TestLoginRoute: GET /v1/login is how the Northflank CLI checks a token
// before it keeps a login. It answers 200 for any valid credential, and
// goes through the same authentication as every route: 401 in the error
// envelope, with WWW-Authenticate, without or with a bad credential.
func TestLoginRoute(t *testing.T) {
	inst := startSlipway(t)
	for _, auth := range []string{"", "Bearer not-a-valid-token-0123456789abcdefghij", "Basic Ym9ndXM6Ym9ndXM="} {
		res := requestAs(t, auth, "GET", inst.URL+"/v1/login", "")
		res.apiErr(t, http.StatusUnauthorized)
		if res.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("Authorization %q: 401 without WWW-Authenticate", auth)
		}
	}
	// A viewer team token restricted to one project logs in too.
	project := callJSON(t, "POST", inst.URL+"/v1/projects", `{"name":"Login Project"}`).data(t)["id"].(string)
	viewer := callJSON(t, "POST", inst.URL+"/v1/api-tokens",
		fmt.Sprintf(`{"name":"login viewer","kind":"team","roleId":"viewer","projects":[%q]}`, project)).data(t)["token"].(string)
	for name, auth := range map[string]string{"admin": "Bearer " + adminToken, "restricted viewer": "Bearer " + viewer} {
		d := requestAs(t, auth, "GET", inst.URL+"/v1/login", "").data(t)
		if d["teamId"] != "default" {
			t.Errorf("%s: GET /v1/login data %v, want the caller (teamId default)", name, d)
		}
	}
}

// TestNorthflankCLI drives the official Northflank CLI (@northflank/cli,
// which bundles js-client 0.7.25) against Slipway by changing only the
// host, non-interactively, as a user would: log in with a token, create,
// list, get and delete a project, create a manual job running a command
// (the process driver), start a run, see it succeed and read its logs.
func TestNorthflankCLI(t *testing.T) {
	inst := startSlipway(t)
	cli := newNorthflankCLI(t)

	// A bad token: the CLI checks it with GET /v1/login and drops the
	// context it has just added.
	res := cli.run("login", "--token-login", "--token", "slw_pat_not-a-real-token", "--host", inst.URL, "--name", "bad")
	if !strings.Contains(res.stderr, "Failed to login") {
		t.Errorf("login with a bad token: want %q on stderr\nstdout: %s\nstderr: %s", "Failed to login", res.stdout, res.stderr)
	}
	if _, contexts := cli.config(); len(contexts) != 0 {
		t.Errorf("login with a bad token kept contexts %v", contexts)
	}

	out := cli.ok("login", "--token-login", "--token", adminToken, "--host", inst.URL, "--name", "slipway")
	if !strings.Contains(out, "Successfully logged in") {
		t.Errorf("login: stdout %q, want a success message", out)
	}
	if current, contexts := cli.config(); current != "slipway" || len(contexts) != 1 {
		t.Fatalf("after login: current context %q of %v, want slipway", current, contexts)
	}

	// Projects.
	// In a Northflank region, as a script written for Northflank would.
	var project struct {
		ID, Name, Description, Region string
		Cluster                       struct{ ID string }
	}
	cli.json(&project, "create", "project", "--input", `{"name":"CLI Project","description":"made by the Northflank CLI","region":"europe-west"}`)
	if project.ID != "cli-project" || project.Description != "made by the Northflank CLI" ||
		project.Region != "europe-west" || project.Cluster.ID != "local" {
		t.Errorf("create project: %+v, want cli-project in europe-west on cluster local", project)
	}
	var list struct{ Projects []struct{ ID string } }
	cli.json(&list, "list", "projects")
	if len(list.Projects) != 1 || list.Projects[0].ID != "cli-project" {
		t.Errorf("list projects: %+v, want cli-project", list)
	}
	var got struct{ ID, Name string }
	cli.json(&got, "get", "project", "--projectId", "cli-project")
	if got.ID != "cli-project" || got.Name != "CLI Project" {
		t.Errorf("get project: %+v", got)
	}
	if res := cli.run("get", "project", "--projectId", "missing", "--output", "json"); res.exitCode == 0 ||
		!strings.Contains(res.stderr, "404") || !strings.Contains(res.stderr, "NOT_FOUND") {
		t.Errorf("get a missing project: exit %d, want a failure naming 404 NOT_FOUND\nstdout: %s\nstderr: %s", res.exitCode, res.stdout, res.stderr)
	}

	// A manual job running a command, one run, its logs.
	var job struct{ ID, JobType string }
	cli.json(&job, "create", "job", "manual", "--projectId", "cli-project", "--input", `{
		"name": "CLI Job", "billing": {"deploymentPlan": "nf-compute-20"}, "backoffLimit": 0,
		"deployment": {"docker": {"configType": "customCommand", "customCommand": "echo hello from the northflank cli"}}}`)
	if job.ID != "cli-job" || job.JobType != "manual" {
		t.Errorf("create job manual: %+v", job)
	}
	var run struct {
		ID, Status string
		Concluded  bool
	}
	cli.json(&run, "start", "job", "run", "--projectId", "cli-project", "--jobId", "cli-job", "--input", `{}`)
	if run.ID == "" {
		t.Fatalf("start job run: no run id")
	}
	runID := run.ID
	for deadline := time.Now().Add(30 * time.Second); !run.Concluded; {
		if time.Now().After(deadline) {
			t.Fatalf("run %s: not concluded within 30s: %+v", runID, run)
		}
		time.Sleep(200 * time.Millisecond)
		cli.json(&run, "get", "job", "run", "--projectId", "cli-project", "--jobId", "cli-job", "--runId", runID)
	}
	if run.Status != "SUCCESS" {
		t.Fatalf("run %s: status %s, want SUCCESS", runID, run.Status)
	}
	var runs struct{ Runs []struct{ ID string } }
	cli.json(&runs, "get", "job", "runs", "--projectId", "cli-project", "--jobId", "cli-job")
	if len(runs.Runs) != 1 || runs.Runs[0].ID != runID {
		t.Errorf("get job runs: %+v, want the one run %s", runs, runID)
	}
	var lines []struct{ ContainerID, Log string }
	cli.json(&lines, "get", "job", "logs", "--projectId", "cli-project", "--jobId", "cli-job", "--runId", runID)
	if len(lines) != 1 || lines[0].Log != "hello from the northflank cli" {
		t.Errorf("get job logs: %+v, want the run's one line", lines)
	}
	// The CLI's own log format, as a user reads it.
	if out := cli.ok("get", "job", "logs", "--projectId", "cli-project", "--jobId", "cli-job", "--runId", runID); !strings.Contains(out, "hello from the northflank cli") {
		t.Errorf("get job logs: %q, want the run's line", out)
	}

	// Delete the project with its job; it is gone.
	cli.ok("delete", "project", "--projectId", "cli-project", "--delete_child_objects", "--force")
	cli.json(&list, "list", "projects")
	if len(list.Projects) != 0 {
		t.Errorf("list projects after delete: %+v", list)
	}
	callJSON(t, "GET", inst.URL+"/v1/projects/cli-project/jobs/cli-job", "").apiErr(t, http.StatusNotFound)
}
