package e2e

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/slipwayhq/slipway/pkg/testenv"
	"github.com/slipwayhq/slipway/pkg/testenv/gitserver"
)

// pyApp is a web app in Python's standard library answering version on
// $PORT, with a Procfile: the buildpack path's "Procfile" stack.
func pyApp(version string) map[string]string {
	return map[string]string{
		"Procfile": "web: python3 app.py\n",
		"app.py": `import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"` + version + `\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), H).serve_forever()
`,
	}
}

// buildsScript drives a build service through @northflank/js-client
// 0.9.5: create it on the loopback git server's repository, start a build
// of its branch, wait for it to succeed, list its builds, and deploy it
// with a deployment service that follows the branch (internal, latest).
// It prints one JSON object of results.
const buildsScript = `
const { ApiClient, ApiClientInMemoryContextProvider } = require('@northflank/js-client');
(async () => {
  const ctx = new ApiClientInMemoryContextProvider();
  await ctx.addContext({ name: 'e2e', token: process.env.NF_TOKEN, host: process.env.NF_URL });
  const api = new ApiClient(ctx, { throwErrorOnHttpErrorCode: true });
  const projectId = 'shop';
  await api.create.project({ data: { name: 'Shop' } });
  const { data: svc } = await api.create.service.build({ parameters: { projectId }, data: {
    name: 'App', billing: { buildPlan: 'nf-compute-20' },
    vcsData: { projectUrl: process.env.REPO_URL, projectType: 'self-hosted', projectBranch: 'main' },
    buildSettings: { buildpack: { buildContext: '/' } },
  } });
  const { data: started } = await api.start.service.build({ parameters: { projectId, serviceId: svc.id }, data: { branch: 'main' } });
  let build;
  for (let i = 0; i < 600; i++) {
    ({ data: build } = await api.get.service.build({ parameters: { projectId, serviceId: svc.id, buildId: started.id } }));
    if (build.concluded) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const { data: list } = await api.get.service.builds({ parameters: { projectId, serviceId: svc.id } });
  const { data: branches } = await api.get.service.branches({ parameters: { projectId, serviceId: svc.id } });
  const { data: web } = await api.create.service.deployment({ parameters: { projectId }, data: {
    name: 'Web', billing: { deploymentPlan: 'nf-compute-20' },
    deployment: { instances: 1, internal: { id: svc.id, branch: 'main', buildSHA: 'latest' } },
    ports: [{ name: 'p01', internalPort: 8080, public: true, protocol: 'HTTP' }],
    healthChecks: [{ protocol: 'HTTP', type: 'readinessProbe', path: '/', port: 8080,
      initialDelaySeconds: 0, periodSeconds: 2, timeoutSeconds: 1, failureThreshold: 3 }],
  } });
  console.log(JSON.stringify({ service: svc, started, build, list, branches, web }));
})().catch((e) => { console.error(e); process.exit(1); });
`

// runJSData runs call (an expression of the official JS client, api,
// returning a promise of a response) against Slipway at url and returns
// the response's data.
func runJSData(t *testing.T, url, call string, env ...string) map[string]any {
	t.Helper()
	dir := requireNodeSuite(t)
	script := `const { ApiClient, ApiClientInMemoryContextProvider } = require('@northflank/js-client');
(async () => {
  const ctx = new ApiClientInMemoryContextProvider();
  await ctx.addContext({ name: 'e2e', token: process.env.NF_TOKEN, host: process.env.NF_URL });
  const api = new ApiClient(ctx, { throwErrorOnHttpErrorCode: true });
  const { data } = await ` + call + `;
  console.log(JSON.stringify(data));
})().catch((e) => { console.error(e); process.exit(1); });`
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "-e", script)
	cmd.Dir = dir
	cmd.Env = append(append(baseEnv(), "NF_URL="+url, "NF_TOKEN="+adminToken), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	raw, err := cmd.Output()
	if err != nil {
		t.Fatalf("node %s: %v\n%s", call, err, stderr.String())
	}
	var data map[string]any
	if err := json.Unmarshal(raw, &data); err != nil {
		t.Fatalf("node %s printed %q: %v", call, raw, err)
	}
	return data
}

// signGitHub returns the headers of a GitHub push delivery of body signed
// with secret.
func signGitHub(secret, delivery string, body []byte) []string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return []string{"X-GitHub-Event", "push", "X-GitHub-Delivery", delivery,
		"X-Hub-Signature-256", "sha256=" + hex.EncodeToString(mac.Sum(nil)), "Content-Type", "application/json"}
}

// githubPush is the body of a GitHub push event of sha to branch of the
// repository at url, with message as the head commit's.
func githubPush(url, branch, sha, message string) []byte {
	b, _ := json.Marshal(map[string]any{
		"ref": "refs/heads/" + branch, "before": strings.Repeat("0", 40), "after": sha,
		"repository":  map[string]any{"clone_url": url, "html_url": strings.TrimSuffix(url, ".git")},
		"head_commit": map[string]any{"id": sha, "message": message},
		"commits":     []any{map[string]any{"id": sha, "message": message, "added": []string{}, "modified": []string{"app.py"}, "removed": []string{}}},
	})
	return b
}

// awaitBuild polls a build until it has concluded and returns it.
func awaitBuild(t *testing.T, svcURL, id string, timeout time.Duration) map[string]any {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		b := callJSON(t, "GET", svcURL+"/build/"+id, "").data(t)
		if b["concluded"] == true {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("build %s did not conclude within %s: %v", id, timeout, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// buildLog returns a build's log as text.
func buildLog(t *testing.T, svcURL, id string) string {
	t.Helper()
	r := callJSON(t, "GET", svcURL+"/build-logs?direction=forward&lineLimit=10000&buildId="+id, "")
	lines, _ := r.Body["data"].([]any)
	var b strings.Builder
	for _, l := range lines {
		m, _ := l.(map[string]any)
		fmt.Fprintln(&b, m["log"])
	}
	return b.String()
}

// tailBuildLog follows a service's build log over the WebSocket tail
// (Northflank's protocol) until a line of build holds until, and returns
// the lines of that build it saw.
func tailBuildLog(t *testing.T, base, project, service, build, until string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	url := "ws" + strings.TrimPrefix(base, "http") + "/v1/projects/" + project + "/services/" + service + "/build-logs?queryType=tail"
	c, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	defer c.CloseNow()
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"init","data":{"auth":{"type":"apiToken","apiToken":"`+adminToken+`"}}}`)); err != nil {
		t.Fatal(err)
	}
	var seen []string
	for {
		_, data, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("build log tail after %q: %v", seen, err)
		}
		var m struct {
			Type string `json:"type"`
			Data []struct {
				Log         string `json:"log"`
				ContainerID string `json:"containerId"`
			} `json:"data"`
		}
		if json.Unmarshal(data, &m) != nil || m.Type != "log-lines" {
			continue // the init answer
		}
		for _, l := range m.Data {
			if l.ContainerID != build {
				continue
			}
			seen = append(seen, l.Log)
			if strings.Contains(l.Log, until) {
				return seen
			}
		}
	}
}

// buildCount is how many builds a service has.
func buildCount(t *testing.T, svcURL string) int {
	t.Helper()
	d := callJSON(t, "GET", svcURL+"/build?per_page=100", "").data(t)
	list, _ := d["builds"].([]any)
	return len(list)
}

// TestBuildsFromGitOnTheProcessDriver is "push code, get a running app"
// on the process driver, through the official JS client, the CLI and the
// git hosts' webhooks: a build service builds a commit of a repository on
// a loopback git server (buildpack: a Procfile app) in the sandbox, a
// deployment service follows its branch; a push announced by a signed
// webhook builds and rolls out with no failed request; an older build is
// deployed again (rollback to a commit); a new combined service builds and
// deploys its branch at once; a [skip ci] commit, a branch
// outside the restrictions and a forged signature build nothing; a
// failing build, an unknown branch and bad input say why.
func TestBuildsFromGitOnTheProcessDriver(t *testing.T) {
	dir := requireNodeSuite(t)
	gs := gitserver.New(t)
	repo := gs.Repo(t, "shop")
	sha1 := repo.Commit(t, "main", "v1", pyApp("v1"))
	ingressAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	inst := startSlipway(t, "SLIPWAY_BUILD_ALLOW_HOSTS=127.0.0.1", "SLIPWAY_INGRESS_ADDR="+ingressAddr, "SLIPWAY_BUILD_POLL_INTERVAL=0")

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "-e", buildsScript)
	cmd.Dir = dir
	cmd.Env = append(baseEnv(), "NF_URL="+inst.URL, "NF_TOKEN="+adminToken, "REPO_URL="+repo.URL)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	raw, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, stderr.String())
	}
	var js struct {
		Service  map[string]any `json:"service"`
		Started  map[string]any `json:"started"`
		Build    map[string]any `json:"build"`
		List     struct{ Builds []map[string]any }
		Branches struct{ Branches []map[string]any }
		Web      map[string]any `json:"web"`
	}
	if err := json.Unmarshal(raw, &js); err != nil {
		t.Fatalf("node printed %q: %v", raw, err)
	}
	svcURL := inst.URL + "/v1/projects/shop/services/app"
	webURL := inst.URL + "/v1/projects/shop/services/web"
	build1, _ := js.Started["id"].(string)
	if js.Service["serviceType"] != "build" || js.Started["status"] != "QUEUED" {
		t.Errorf("created %v, started %v", js.Service, js.Started)
	}
	if js.Build["status"] != "SUCCESS" || js.Build["success"] != true || js.Build["sha"] != sha1 {
		t.Fatalf("the first build: %v (want SUCCESS of %s)\nlog:\n%s", js.Build, sha1, buildLog(t, svcURL, build1))
	}
	if len(js.List.Builds) != 1 || js.List.Builds[0]["id"] != build1 {
		t.Errorf("list of builds: %v", js.List.Builds)
	}
	if len(js.Branches.Branches) != 1 || js.Branches.Branches[0]["name"] != "main" {
		t.Errorf("branches: %v", js.Branches.Branches)
	}
	if log := buildLog(t, svcURL, build1); !strings.Contains(log, "procfile") {
		t.Errorf("the build's log does not say which stack it detected:\n%s", log)
	}

	ing := newIngressClient(ingressAddr, "p01--web--shop.localhost")
	ing.waitBody(t, "v1", 60*time.Second)
	waitDeployment(t, webURL, 30*time.Second)

	// A push, announced by a signed GitHub webhook, builds and rolls out
	// under load with no failed request.
	hook := callJSON(t, "GET", svcURL+"/build-webhook", "").data(t)
	hookURL, secret := hook["url"].(string), hook["secret"].(string)
	sha2 := repo.Commit(t, "main", "v2", pyApp("v2"))
	stopLoad := ing.startLoad(5000, 120*time.Second)
	time.Sleep(300 * time.Millisecond)
	body := githubPush(repo.URL, "main", sha2, "v2")
	res := call(t, "POST", hookURL, strings.NewReader(string(body)), signGitHub(secret, "delivery-2", body)...)
	ids, _ := res.data(t)["buildIds"].([]any)
	if len(ids) != 1 {
		t.Fatalf("the webhook queued %v", res.Body)
	}
	build2 := ids[0].(string)
	if lines := tailBuildLog(t, inst.URL, "shop", "app", build2, "successfully built"); !strings.Contains(strings.Join(lines, "\n"), "cloning") {
		t.Errorf("the build log's tail: %q", lines)
	}
	if b := awaitBuild(t, svcURL, build2, 2*time.Minute); b["status"] != "SUCCESS" || b["sha"] != sha2 {
		t.Fatalf("the pushed build: %v\nlog:\n%s", b, buildLog(t, svcURL, build2))
	}
	ing.waitBody(t, "v2", 60*time.Second)
	waitDeployment(t, webURL, 60*time.Second)
	time.Sleep(300 * time.Millisecond)
	checkSwitch(t, "push → build → rollout under load", stopLoad(), "v1", "v2")

	// The same delivery again is a replay; a forged signature builds nothing.
	res = call(t, "POST", hookURL, strings.NewReader(string(body)), signGitHub(secret, "delivery-2", body)...)
	res.apiErr(t, http.StatusConflict)
	forged := signGitHub("not-the-secret", "delivery-3", body)
	res = call(t, "POST", hookURL, strings.NewReader(string(body)), forged...)
	res.apiErr(t, http.StatusUnauthorized)

	// [skip ci] in the head commit's message: not built.
	sha3 := repo.Commit(t, "main", "docs only [skip ci]", map[string]string{"README.md": "docs\n"})
	body = githubPush(repo.URL, "main", sha3, "docs only [skip ci]")
	res = call(t, "POST", hookURL, strings.NewReader(string(body)), signGitHub(secret, "delivery-4", body)...)
	if r, _ := res.data(t)["result"].(string); !strings.Contains(r, "skip ci") {
		t.Errorf("a [skip ci] push: %v", res.Body)
	}
	// A branch outside the restrictions: not built.
	callJSON(t, "POST", svcURL+"/build-options", `{"branchRestrictions":["main","release/*"]}`).data(t)
	shaF := repo.Commit(t, "feature", "a feature", pyApp("feature"))
	body = githubPush(repo.URL, "feature", shaF, "a feature")
	res = call(t, "POST", hookURL, strings.NewReader(string(body)), signGitHub(secret, "delivery-5", body)...)
	if r, _ := res.data(t)["result"].(string); !strings.Contains(r, "branch restrictions") {
		t.Errorf("a push outside the branch restrictions: %v", res.Body)
	}
	if n := buildCount(t, svcURL); n != 2 {
		t.Errorf("%d builds after a replay, a forgery, a [skip ci] push and a push outside the restrictions, want 2", n)
	}

	// Rollback to a commit: deploy the first build again.
	callJSON(t, "POST", webURL+"/deployment", fmt.Sprintf(`{"internal":{"id":"app","buildId":%q}}`, build1)).data(t)
	ing.waitBody(t, "v1", 60*time.Second)
	d := callJSON(t, "GET", inst.URL+"/v1/projects/shop/services/web", "").data(t)
	if in, _ := d["deployment"].(map[string]any)["internal"].(map[string]any); in["deployedSHA"] != sha1 {
		t.Errorf("after deploying build %s, the service says %v", build1, in)
	}

	// A combined service builds its branch's head as soon as it is
	// created, with no push and no start, and deploys it.
	comboURL := inst.URL + "/v1/projects/shop/services/combo"
	callJSON(t, "POST", inst.URL+"/v1/projects/shop/services/combined", fmt.Sprintf(`{"name":"combo",
		"billing":{"deploymentPlan":"nf-compute-20","buildPlan":"nf-compute-20"},"deployment":{"instances":1},
		"vcsData":{"projectUrl":%q,"projectType":"self-hosted","projectBranch":"main"},
		"buildSettings":{"buildpack":{"buildContext":"/"}},
		"ports":[{"name":"p01","internalPort":8080,"public":true,"protocol":"HTTP"}]}`, repo.URL)).data(t)
	newIngressClient(ingressAddr, "p01--combo--shop.localhost").waitBody(t, "v2", 2*time.Minute)
	if n := buildCount(t, comboURL); n != 1 {
		t.Errorf("the new combined service has %d builds, want 1", n)
	}
	callJSON(t, "DELETE", comboURL, "").data(t)

	// The CLI: list the builds and start one.
	cli := newNorthflankCLI(t)
	config := fmt.Sprintf(`{"current":"e2e","contexts":[{"name":"e2e","token":%q,"host":%q}],"lastUpdateCheck":253402300799000}`, adminToken, inst.URL)
	if err := os.WriteFile(filepath.Join(cli.home, ".northflank", "config.json"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	out := cli.run("get", "service", "builds", "--projectId", "shop", "--serviceId", "app", "--output", "json")
	if out.exitCode != 0 || !strings.Contains(out.stdout, build1) || !strings.Contains(out.stdout, build2) {
		t.Errorf("northflank get service builds: exit %d\n%s%s", out.exitCode, out.stdout, out.stderr)
	}
	out = cli.run("start", "service", "build", "--projectId", "shop", "--serviceId", "app", "--input", `{"sha":"`+sha1+`"}`, "--output", "json")
	if out.exitCode != 0 || !strings.Contains(out.stdout, "QUEUED") {
		t.Errorf("northflank start service build: exit %d\n%s%s", out.exitCode, out.stdout, out.stderr)
	}

	// A failing build (a Go compile error) ends FAILURE with the
	// compiler's words in its log.
	repo.Commit(t, "broken", "broken", map[string]string{"Procfile": "", "go.mod": "module broken\n\ngo 1.22\n", "main.go": "package main\n\nfunc main() { this is not go }\n"})
	b := callJSON(t, "POST", svcURL+"/build", `{"branch":"broken"}`).data(t)
	done := awaitBuild(t, svcURL, b["id"].(string), 2*time.Minute)
	if done["status"] != "FAILURE" || !strings.Contains(buildLog(t, svcURL, b["id"].(string)), "syntax error") {
		t.Errorf("a build with a compile error: %v\nlog:\n%s", done, buildLog(t, svcURL, b["id"].(string)))
	}
	// An unknown branch: FAILURE saying so.
	b = callJSON(t, "POST", svcURL+"/build", `{"branch":"no-such-branch"}`).data(t)
	done = awaitBuild(t, svcURL, b["id"].(string), time.Minute)
	if msg, _ := done["message"].(string); done["status"] != "FAILURE" || !strings.Contains(msg, "no-such-branch") {
		t.Errorf("a build of an unknown branch: %v", done)
	}
	// Bad input: clear 4xx.
	for _, tc := range []struct{ body, field string }{
		{`{"overrides":{"docker":{"dockerFilePath":"../../etc/Dockerfile"}}}`, "dockerFilePath"},
		{`{"overrides":{"buildArguments":{"A":"` + strings.Repeat("x", 70<<10) + `"}}}`, "buildArguments"},
		{`{"overrides":{"buildArguments":{"not a name":"x"}}}`, "buildArguments"},
		{`{"sha":"abc"}`, "sha"},
		{`{"bundleUrl":"https://example.com/app.tar"}`, "bundleUrl"},
	} {
		e := callJSON(t, "POST", svcURL+"/build", tc.body).apiErr(t, http.StatusBadRequest)
		if !strings.Contains(fmt.Sprint(e.Details), tc.field) && !strings.Contains(e.Message, tc.field) {
			t.Errorf("POST build %.80s: %+v, want it to name %s", tc.body, e, tc.field)
		}
	}
	callJSON(t, "POST", inst.URL+"/v1/projects/shop/services/nope/build", `{}`).apiErr(t, http.StatusNotFound)
	callJSON(t, "POST", webURL+"/build", `{}`).apiErr(t, http.StatusConflict)

	// Deleting the build service while web runs one of its builds: web
	// keeps serving; the build's app tree goes once web is deleted too.
	tree := filepath.Join(inst.DataDir, "builds", "artifacts", build1)
	if _, err := os.Stat(tree); err != nil {
		t.Fatalf("the running build's app tree: %v", err)
	}
	callJSON(t, "DELETE", svcURL, "").data(t)
	for range 20 {
		if status, body, err := ing.get(); err != nil || status != http.StatusOK || body != "v1" {
			t.Fatalf("after the build service's deletion, web answered %d %q %v", status, body, err)
		}
		time.Sleep(150 * time.Millisecond)
	}
	if _, err := os.Stat(tree); err != nil {
		t.Errorf("the app tree web runs was removed with the build service: %v", err)
	}
	callJSON(t, "DELETE", webURL, "").data(t)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if _, err := os.Stat(tree); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("30s after both services' deletion the app tree %s is still there", tree)
		}
	}
}

// slowNodeApp is a Node.js app whose install runs a local dependency's
// postinstall for a minute: a build that is still BUILDING when the test
// needs it to be, with no network at all.
func slowNodeApp() map[string]string {
	return map[string]string{
		"package.json":          `{"name":"slow","version":"1.0.0","dependencies":{"slow-dep":"file:./slow-dep"},"scripts":{"start":"node index.js"}}`,
		"index.js":              "require('http').createServer((q, s) => s.end('slow\\n')).listen(process.env.PORT)\n",
		"slow-dep/package.json": `{"name":"slow-dep","version":"1.0.0","scripts":{"postinstall":"echo still installing; sleep 60"}}`,
	}
}

// TestBuildsAfterSIGKILL: Slipway is SIGKILLed while a build runs. After
// the restart the build has ended FAILURE saying why (never stays
// BUILDING), what it ran in the sandbox is gone, and the next build of
// the service runs. A git server polled every second builds a pushed
// commit without any webhook.
func TestBuildsAfterSIGKILL(t *testing.T) {
	gs := gitserver.New(t)
	repo := gs.Repo(t, "slow")
	repo.Commit(t, "main", "slow", slowNodeApp())
	dataDir := t.TempDir()
	env := []string{"SLIPWAY_DATA_DIR=" + dataDir, "SLIPWAY_BUILD_ALLOW_HOSTS=127.0.0.1", "SLIPWAY_BUILD_POLL_INTERVAL=1s"}
	first := startSlipway(t, env...)
	callJSON(t, "POST", first.URL+"/v1/projects", `{"name":"Crash"}`).data(t)
	callJSON(t, "POST", first.URL+"/v1/projects/crash/services/build", fmt.Sprintf(`{"name":"Slow","billing":{"buildPlan":"nf-compute-20"},
		"vcsData":{"projectUrl":%q,"projectType":"self-hosted","projectBranch":"main"},"buildSettings":{"buildpack":{}}}`, repo.URL)).data(t)
	svcURL := func(base string) string { return base + "/v1/projects/crash/services/slow" }
	id := callJSON(t, "POST", svcURL(first.URL)+"/build", `{}`).data(t)["id"].(string)
	deadline := time.Now().Add(90 * time.Second)
	// npm shows a script's output only once it ends: the slow step is
	// seen running in the process table.
	for out, _ := exec.Command("pgrep", "-f", "echo still installing; sleep 60").Output(); strings.TrimSpace(string(out)) == ""; out, _ = exec.Command("pgrep", "-f", "echo still installing; sleep 60").Output() {
		if time.Now().After(deadline) {
			t.Fatalf("the build did not reach its slow step:\n%s", buildLog(t, svcURL(first.URL), id))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if b := callJSON(t, "GET", svcURL(first.URL)+"/build/"+id, "").data(t); b["status"] != "BUILDING" {
		t.Fatalf("mid-build status %v", b["status"])
	}
	first.kill()

	second := startSlipway(t, env...)
	b := awaitBuild(t, svcURL(second.URL), id, 30*time.Second)
	if msg, _ := b["message"].(string); b["status"] != "FAILURE" || !strings.Contains(msg, "Interrupted") {
		t.Errorf("the interrupted build after the restart: %v", b)
	}
	// Its sandboxed npm (sleep 60) is gone.
	out, _ := exec.Command("pgrep", "-f", "echo still installing; sleep 60").Output()
	if strings.TrimSpace(string(out)) != "" {
		t.Errorf("the interrupted build's processes still run: %s", out)
	}

	// Polling: a pushed commit builds within seconds, with no webhook.
	sha := repo.Commit(t, "main", "fast now", map[string]string{"slow-dep/package.json": `{"name":"slow-dep","version":"1.0.0"}`})
	deadline = time.Now().Add(90 * time.Second)
	for {
		list := callJSON(t, "GET", svcURL(second.URL)+"/build", "").data(t)["builds"].([]any)
		var polled map[string]any
		for _, v := range list {
			if m := v.(map[string]any); m["sha"] == sha {
				polled = m
			}
		}
		if polled != nil && polled["concluded"] == true {
			if polled["status"] != "SUCCESS" {
				t.Errorf("the polled build: %v\n%s", polled, buildLog(t, svcURL(second.URL), polled["id"].(string)))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no build of the pushed commit %s within 90s: %v", sha, list)
		}
		time.Sleep(300 * time.Millisecond)
	}
}
