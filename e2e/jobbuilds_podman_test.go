package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pkg/testenv"
	"github.com/slipwayhq/slipway/pkg/testenv/gitserver"
)

// jobDockerfile is a Dockerfile on the local test image (no registry is
// reachable) whose command prints the repository's version.txt, copied
// into the image: what a run prints comes from the built image.
func jobDockerfile(base string) string {
	return `FROM ` + base + `
COPY version.txt /report/version.txt
CMD ["sh", "-c", "echo report $(cat /report/version.txt)"]
`
}

// runOnce starts a run of the job at jobURL, waits for it to end and
// returns what it printed; the run must succeed.
func runOnce(t *testing.T, jobURL string) []string {
	t.Helper()
	id, _ := callJSON(t, "POST", jobURL+"/runs", `{}`).data(t)["id"].(string)
	r := awaitRun(t, jobURL, id, time.Minute)
	out := runLog(t, jobURL, id)
	if r["status"] != "SUCCESS" {
		t.Fatalf("run %s of %s: %v\nlog: %q", id, jobURL, r, out)
	}
	return out
}

// TestJobBuildsOnPodman: jobs run builds on the docker driver against
// Podman, with one server for both forms. A job with deployment.vcs and a
// Dockerfile builds through the engine's /build and its run prints what
// the built image holds; a job with deployment.internal runs a build
// service's build (the newest of a branch, or one by id, after a newer
// one). A job whose internal source names no build service, or a build
// that does not exist, is refused a run with 409 NO_BUILD naming it.
func TestJobBuildsOnPodman(t *testing.T) {
	host := testenv.Podman(t)
	base := testenv.BuildTestImage(t, host)
	gs := gitserver.New(t)
	repo := gs.Repo(t, "report")
	files := func(version string) map[string]string {
		return map[string]string{"Dockerfile": jobDockerfile(base), "version.txt": version + "\n"}
	}
	sha1 := repo.Commit(t, "main", "v1", files("v1"))
	inst := startSlipway(t, "SLIPWAY_RUNTIME_DRIVER=docker", "SLIPWAY_DOCKER_HOST="+host,
		"SLIPWAY_BUILD_ALLOW_HOSTS=127.0.0.1", "SLIPWAY_BUILD_POLL_INTERVAL=0")
	projectURL := inst.URL + "/v1/projects/reports"
	callJSON(t, "POST", inst.URL+"/v1/projects", `{"name":"Reports"}`).data(t)
	dockerfile := `{"dockerfile":{"buildEngine":"buildkit","dockerFilePath":"/Dockerfile","dockerWorkDir":"/"}}`

	// A job that builds from git: its Dockerfile, built by the engine.
	callJSON(t, "POST", projectURL+"/jobs/manual", fmt.Sprintf(`{"name":"Nightly","backoffLimit":0,
		"billing":{"deploymentPlan":"nf-compute-20","buildPlan":"nf-compute-100-1"},
		"deployment":{"vcs":{"projectUrl":%q,"projectType":"self-hosted","projectBranch":"main"}},
		"buildSettings":%s}`, repo.URL, dockerfile)).data(t)
	jobURL := projectURL + "/jobs/nightly"
	build := callJSON(t, "POST", jobURL+"/build", `{}`).data(t)["id"].(string)
	if b := awaitBuild(t, jobURL, build, 2*time.Minute); b["status"] != "SUCCESS" || b["sha"] != sha1 {
		t.Fatalf("the job's build: %v\nlog:\n%s", b, buildLog(t, jobURL, build))
	}
	if out := runOnce(t, jobURL); !slicesContain(out, "report v1") {
		t.Fatalf("the run of the job's build printed %q, want report v1", out)
	}

	// A build service on the same repository, and jobs that run its
	// builds (deployment.internal).
	callJSON(t, "POST", projectURL+"/services/build", fmt.Sprintf(`{"name":"Reporter","billing":{"buildPlan":"nf-compute-100-1"},
		"vcsData":{"projectUrl":%q,"projectType":"self-hosted"},"buildSettings":%s}`, repo.URL, dockerfile)).data(t)
	svcURL := projectURL + "/services/reporter"
	svcBuild1 := callJSON(t, "POST", svcURL+"/build", `{"branch":"main"}`).data(t)["id"].(string)
	if b := awaitBuild(t, svcURL, svcBuild1, 2*time.Minute); b["status"] != "SUCCESS" || b["sha"] != sha1 {
		t.Fatalf("the build service's build: %v\nlog:\n%s", b, buildLog(t, svcURL, svcBuild1))
	}
	internalJob := func(name, internal string) string {
		body := fmt.Sprintf(`{"name":%q,"backoffLimit":0,"billing":{"deploymentPlan":"nf-compute-20"},"deployment":{"internal":%s}}`, name, internal)
		return projectURL + "/jobs/" + callJSON(t, "POST", projectURL+"/jobs/manual", body).data(t)["id"].(string)
	}
	latestURL := internalJob("Follows Main", `{"id":"reporter","branch":"main","buildSHA":"latest"}`)
	pinnedURL := internalJob("Pinned", fmt.Sprintf(`{"id":"reporter","buildId":%q}`, svcBuild1))
	// The jobs service learns of the build through an event: until then
	// a run is refused (409 NO_BUILD).
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		res := callJSON(t, "POST", latestURL+"/runs", `{}`)
		if res.Status == http.StatusOK {
			id, _ := res.data(t)["id"].(string)
			if r := awaitRun(t, latestURL, id, time.Minute); r["status"] != "SUCCESS" {
				t.Fatalf("the run of the service's build: %v\nlog: %q", r, runLog(t, latestURL, id))
			}
			if out := runLog(t, latestURL, id); !slicesContain(out, "report v1") {
				t.Fatalf("the run of the service's build printed %q, want report v1", out)
			}
			break
		}
		if e := res.apiErr(t, http.StatusConflict); e.ID != "NO_BUILD" || time.Now().After(deadline) {
			t.Fatalf("a run of the service's build: %d %v", res.Status, res.Body)
		}
	}

	// A newer build: the job that follows the branch runs it, the pinned
	// one still runs the first.
	sha2 := repo.Commit(t, "main", "v2", files("v2"))
	svcBuild2 := callJSON(t, "POST", svcURL+"/build", `{"branch":"main"}`).data(t)["id"].(string)
	if b := awaitBuild(t, svcURL, svcBuild2, 2*time.Minute); b["status"] != "SUCCESS" || b["sha"] != sha2 {
		t.Fatalf("the build service's second build: %v\nlog:\n%s", b, buildLog(t, svcURL, svcBuild2))
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		out := runOnce(t, latestURL)
		if slicesContain(out, "report v2") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("runs of the job following main still print %q after the second build", out)
		}
	}
	if out := runOnce(t, pinnedURL); !slicesContain(out, "report v1") {
		t.Errorf("the run of the job pinned to build %s printed %q, want report v1", svcBuild1, out)
	}

	// A bad internal source: no such build service, no such build.
	for _, c := range []struct{ name, internal, want string }{
		{"No Service", `{"id":"no-such-service","branch":"main","buildSHA":"latest"}`, "no-such-service"},
		{"No Build", `{"id":"reporter","buildId":"no-such-build"}`, "no-such-build"},
	} {
		u := internalJob(c.name, c.internal)
		e := callJSON(t, "POST", u+"/runs", `{}`).apiErr(t, http.StatusConflict)
		if e.ID != "NO_BUILD" || !strings.Contains(e.Message, c.want) {
			t.Errorf("a run of a job with internal %s: %+v, want 409 NO_BUILD naming %s", c.internal, e, c.want)
		}
	}
	// An internal source without a service is refused when the job is made.
	e := callJSON(t, "POST", projectURL+"/jobs/manual", `{"name":"No Id","billing":{"deploymentPlan":"nf-compute-20"},"deployment":{"internal":{"branch":"main","buildSHA":"latest"}}}`).
		apiErr(t, http.StatusBadRequest)
	if _, ok := e.Details["deployment.internal.id"]; !ok {
		t.Errorf("a job with internal and no id: details %v do not name deployment.internal.id", e.Details)
	}
}
