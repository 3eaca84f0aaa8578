package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pkg/testenv/gitserver"
)

// pyTask is a Python program that prints a line and exits: a job's app,
// started by its Procfile.
func pyTask(line string) map[string]string {
	return map[string]string{
		"Procfile": "web: python3 task.py\n", // a job runs the web process too
		"task.py":  "print(" + fmt.Sprintf("%q", line) + ")\n",
	}
}

// jobBuildsScript drives a job that builds from git through
// @northflank/js-client 0.9.5: create a manual job on the loopback git
// server's repository (deployment.vcs, buildpack), start a build of its
// branch, wait for it to succeed, and start a run. It prints one JSON
// object of results.
const jobBuildsScript = `
const { ApiClient, ApiClientInMemoryContextProvider } = require('@northflank/js-client');
(async () => {
  const ctx = new ApiClientInMemoryContextProvider();
  await ctx.addContext({ name: 'e2e', token: process.env.NF_TOKEN, host: process.env.NF_URL });
  const api = new ApiClient(ctx, { throwErrorOnHttpErrorCode: true });
  const projectId = 'ops';
  await api.create.project({ data: { name: 'Ops' } });
  const { data: job } = await api.create.job.manual({ parameters: { projectId }, data: {
    name: 'Report', billing: { deploymentPlan: 'nf-compute-20', buildPlan: 'nf-compute-20' }, backoffLimit: 0,
    deployment: { vcs: { projectUrl: process.env.REPO_URL, projectType: 'self-hosted', projectBranch: 'main' } },
    buildSettings: { buildpack: { buildContext: '/' } },
  } });
  let refused = null;
  try {
    await api.start.job.run({ parameters: { projectId, jobId: job.id }, data: {} });
  } catch (e) {
    refused = e.status !== undefined ? { status: e.status, id: e.id, message: e.message } : { message: String(e) };
  }
  const { data: started } = await api.start.job.build({ parameters: { projectId, jobId: job.id }, data: {} });
  let build;
  for (let i = 0; i < 1200; i++) {
    ({ data: build } = await api.get.job.build({ parameters: { projectId, jobId: job.id, buildId: started.id } }));
    if (build.concluded) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const { data: builds } = await api.get.job.builds({ parameters: { projectId, jobId: job.id } });
  const { data: run } = await api.start.job.run({ parameters: { projectId, jobId: job.id }, data: {} });
  console.log(JSON.stringify({ job, refused, started, build, builds, run }));
})().catch((e) => { console.error(e); process.exit(1); });
`

// awaitRun polls a job run until it has concluded and returns it.
func awaitRun(t *testing.T, jobURL, id string, timeout time.Duration) map[string]any {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r := callJSON(t, "GET", jobURL+"/runs/"+id, "").data(t)
		if r["concluded"] == true {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s did not conclude within %s: %v", id, timeout, r)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// runLog returns a run's log lines, waiting until it has some.
func runLog(t *testing.T, jobURL, id string) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := callJSON(t, "GET", jobURL+"/logs?direction=forward&runId="+id, "")
		lines, _ := r.Body["data"].([]any)
		var out []string
		for _, l := range lines {
			m, _ := l.(map[string]any)
			out = append(out, fmt.Sprint(m["log"]))
		}
		if len(out) > 0 || time.Now().After(deadline) {
			return out
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestJobBuildsFromGit: a manual job builds from a repository on a
// loopback git server (buildpack: a Procfile task in Python) through the
// official JS client and runs the build on the process driver: a run
// before any build is refused (409 NO_BUILD), the run after the build
// prints the task's line, and after a push announced by the job's signed
// webhook builds, the next run runs the new commit (a forged signature
// gets 401 and builds nothing). Deleting the job deletes its builds.
func TestJobBuildsFromGit(t *testing.T) {
	dir := requireNodeSuite(t)
	gs := gitserver.New(t)
	repo := gs.Repo(t, "report")
	sha1 := repo.Commit(t, "main", "v1", pyTask("report v1"))
	inst := startSlipway(t, "SLIPWAY_BUILD_ALLOW_HOSTS=127.0.0.1", "SLIPWAY_BUILD_POLL_INTERVAL=0")

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "-e", jobBuildsScript)
	cmd.Dir = dir
	cmd.Env = append(baseEnv(), "NF_URL="+inst.URL, "NF_TOKEN="+adminToken, "REPO_URL="+repo.URL)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	raw, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, stderr.String())
	}
	var js struct {
		Job     map[string]any `json:"job"`
		Refused map[string]any `json:"refused"`
		Started map[string]any `json:"started"`
		Build   map[string]any `json:"build"`
		Builds  struct{ Builds []map[string]any }
		Run     map[string]any `json:"run"`
	}
	if err := json.Unmarshal(raw, &js); err != nil {
		t.Fatalf("node printed %q: %v", raw, err)
	}
	jobURL := inst.URL + "/v1/projects/ops/jobs/report"
	build1, _ := js.Started["id"].(string)
	vcs, _ := js.Job["deployment"].(map[string]any)["vcs"].(map[string]any)
	if js.Job["id"] != "report" || vcs["projectUrl"] != repo.URL || vcs["projectBranch"] != "main" {
		t.Errorf("created job %v", js.Job)
	}
	if js.Refused == nil || fmt.Sprint(js.Refused["status"]) != "409" || !strings.Contains(fmt.Sprint(js.Refused["message"]), "no successful build") {
		t.Errorf("a run before any build: %v, want 409 NO_BUILD", js.Refused)
	}
	if js.Build["status"] != "SUCCESS" || js.Build["sha"] != sha1 {
		t.Fatalf("the job's build: %v (want SUCCESS of %s)\nlog:\n%s", js.Build, sha1, buildLog(t, jobURL, build1))
	}
	if len(js.Builds.Builds) != 1 || js.Builds.Builds[0]["id"] != build1 {
		t.Errorf("the job's builds: %v", js.Builds.Builds)
	}
	run1, _ := js.Run["id"].(string)
	if r := awaitRun(t, jobURL, run1, time.Minute); r["status"] != "SUCCESS" {
		t.Fatalf("the run of build 1: %v\nlog: %q", r, runLog(t, jobURL, run1))
	}
	if out := runLog(t, jobURL, run1); !slicesContain(out, "report v1") {
		t.Fatalf("the run of build 1 printed %q", out)
	}

	// A push announced by a signed GitHub webhook (the job's own) builds
	// the job, and the next run runs the new commit; a forged signature
	// builds nothing.
	hook := callJSON(t, "GET", jobURL+"/build-webhook", "").data(t)
	hookURL, secret := hook["url"].(string), hook["secret"].(string)
	if !strings.HasPrefix(hookURL, inst.URL+"/v1/git-webhooks/") || secret == "" {
		t.Fatalf("the job's build webhook: %v", hook)
	}
	sha2 := repo.Commit(t, "main", "v2", pyTask("report v2"))
	body := githubPush(repo.URL, "main", sha2, "v2")
	call(t, "POST", hookURL, strings.NewReader(string(body)), signGitHub("not-the-secret", "job-delivery-1", body)...).apiErr(t, http.StatusUnauthorized)
	if n := buildCount(t, jobURL); n != 1 {
		t.Fatalf("after a forged delivery the job has %d builds, want 1", n)
	}
	res := call(t, "POST", hookURL, strings.NewReader(string(body)), signGitHub(secret, "job-delivery-2", body)...)
	ids, _ := res.data(t)["buildIds"].([]any)
	if len(ids) != 1 {
		t.Fatalf("the job's webhook queued %v", res.Body)
	}
	build2, _ := ids[0].(string)
	if got := awaitBuild(t, jobURL, build2, 2*time.Minute); got["status"] != "SUCCESS" || got["sha"] != sha2 {
		t.Fatalf("the second build: %v\nlog:\n%s", got, buildLog(t, jobURL, build2))
	}
	var run2 string
	deadline := time.Now().Add(30 * time.Second)
	for {
		// The jobs service learns of the build through an event: until
		// then a run still runs build 1.
		r := callJSON(t, "POST", jobURL+"/runs", `{}`).data(t)
		run2, _ = r["id"].(string)
		if rr := awaitRun(t, jobURL, run2, time.Minute); rr["status"] != "SUCCESS" {
			t.Fatalf("a run after build 2: %v\nlog: %q", rr, runLog(t, jobURL, run2))
		}
		out := runLog(t, jobURL, run2)
		if slicesContain(out, "report v2") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("runs after build 2 still print %q", out)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// A job's build routes are its own: a service of the same name has
	// none, and a pull request cannot be built.
	callJSON(t, "GET", inst.URL+"/v1/projects/ops/services/report/build", "").apiErr(t, http.StatusNotFound)
	callJSON(t, "POST", jobURL+"/build", `{"pullRequestId": 3}`).apiErr(t, http.StatusBadRequest)

	// Deleting the job deletes its builds and their artifacts (the app
	// trees under the data directory).
	artifacts := []string{filepath.Join(inst.DataDir, "builds", "artifacts", build1), filepath.Join(inst.DataDir, "builds", "artifacts", build2)}
	for _, a := range artifacts {
		if _, err := os.Stat(a); err != nil {
			t.Fatalf("the artifact of a job build before the job's deletion: %v", err)
		}
	}
	callJSON(t, "DELETE", jobURL, "").data(t)
	callJSON(t, "GET", jobURL+"/build/"+build2, "").apiErr(t, http.StatusNotFound)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		gone := 0
		for _, a := range artifacts {
			if _, err := os.Stat(a); os.IsNotExist(err) {
				gone++
			}
		}
		if gone == len(artifacts) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of the deleted job's %d artifacts are still there", len(artifacts)-gone, len(artifacts))
		}
	}
}

func slicesContain(list []string, s string) bool {
	for _, v := range list {
		if strings.TrimSpace(v) == s {
			return true
		}
	}
	return false
}
