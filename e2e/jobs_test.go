package e2e

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pkg/procfs"
	"github.com/slipwayhq/slipway/pkg/testenv"
)

// pollEvery is how often the jobs tests look again while they wait.
const pollEvery = 50 * time.Millisecond

// jobsAPI drives the jobs routes of one Slipway as its admin.
type jobsAPI struct {
	t       *testing.T
	base    string
	project string
}

// newJobsProject creates a project named name and returns the API of its
// jobs.
func newJobsProject(t *testing.T, base, name string) *jobsAPI {
	t.Helper()
	d := callJSON(t, "POST", base+"/v1/projects", fmt.Sprintf(`{"name":%q}`, name)).data(t)
	return &jobsAPI{t: t, base: base, project: d["id"].(string)}
}

func (a *jobsAPI) jobURL(job string) string {
	return a.base + "/v1/projects/" + a.project + "/jobs/" + job
}

// createManual creates a manual job from its JSON spec and returns its id.
func (a *jobsAPI) createManual(spec string) string {
	a.t.Helper()
	return callJSON(a.t, "POST", a.base+"/v1/projects/"+a.project+"/jobs/manual", spec).data(a.t)["id"].(string)
}

// commandJob is the spec of a manual job that runs command.
func commandJob(name, command string) string {
	return fmt.Sprintf(`{"name":%q,"deployment":{"docker":{"configType":"customCommand","customCommand":%q}}}`, name, command)
}

// start starts a run of job and returns its id and name.
func (a *jobsAPI) start(job string) (id, name string) {
	a.t.Helper()
	d := callJSON(a.t, "POST", a.jobURL(job)+"/runs", "{}").data(a.t)
	return d["id"].(string), d["runName"].(string)
}

func (a *jobsAPI) run(job, run string) map[string]any {
	a.t.Helper()
	return callJSON(a.t, "GET", a.jobURL(job)+"/runs/"+run, "").data(a.t)
}

// waitRun polls a run until until accepts it, and returns it; it fails
// the test after timeout.
func (a *jobsAPI) waitRun(job, run string, timeout time.Duration, what string, until func(map[string]any) bool) map[string]any {
	a.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r := a.run(job, run)
		if until(r) {
			return r
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("run %s of %s: not %s within %s; last: %v", run, job, what, timeout, r)
		}
		time.Sleep(pollEvery)
	}
}

func concluded(r map[string]any) bool { return r["concluded"] == true }
func active(r map[string]any) bool    { return r["active"] == float64(1) }

// logs returns the text of a run's log lines, oldest first.
func (a *jobsAPI) logs(job, run string) []string {
	a.t.Helper()
	r := callJSON(a.t, "GET", a.jobURL(job)+"/logs?direction=forward&runId="+url.QueryEscape(run), "")
	if r.Status != http.StatusOK {
		a.t.Fatalf("logs of run %s: HTTP %d: %s", run, r.Status, r.Raw)
	}
	lines, ok := r.Body["data"].([]any)
	if !ok {
		a.t.Fatalf("logs of run %s: data is not an array: %s", run, r.Raw)
	}
	texts := []string{}
	for _, l := range lines {
		texts = append(texts, l.(map[string]any)["log"].(string))
	}
	return texts
}

// uniqueSeconds is a sleep duration less than 10 ms over whole, (almost
// certainly) unique to this call: it makes the command line of a run's
// processes recognisable.
func uniqueSeconds(t testing.TB, whole int) string {
	n, err := rand.Int(rand.Reader, big.NewInt(10_000))
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d.00%04d", whole, n.Int64())
}

// processesMatching returns the command lines (arguments joined by spaces,
// as pgrep -f sees them) of the live processes that contain marker.
func processesMatching(marker string) []string {
	var found []string
	pids, _ := procfs.PIDs()
	for _, pid := range pids {
		cmdline, err := procfs.Cmdline(pid)
		cmdline = strings.TrimSpace(cmdline)
		if err != nil || cmdline == "" { // gone, or a zombie
			continue
		}
		if strings.Contains(cmdline, marker) {
			found = append(found, strconv.Itoa(pid)+": "+cmdline)
		}
	}
	return found
}

// waitNoProcesses fails the test unless, within timeout, no process
// matches marker.
func waitNoProcesses(t *testing.T, marker string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		left := processesMatching(marker)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes of the run (%q) still alive after %s:\n%s", marker, timeout, strings.Join(left, "\n"))
		}
		time.Sleep(pollEvery)
	}
}

// kill ends Slipway with SIGKILL, as a crash or the OOM killer would: no
// shutdown runs.
func (inst *instance) kill() {
	inst.stopStarted.Store(true)
	inst.stopOnce.Do(func() {
		_ = inst.cmd.Process.Kill()
		<-inst.done
		inst.stopErr = fmt.Errorf("killed with SIGKILL: %v", inst.err)
	})
}

// TestJobsSurviveKill kills Slipway with SIGKILL while two runs are active
// (process driver) and starts it again on the same data dir: each run gets
// its real outcome, its logs hold every line exactly once, and none of its
// processes is left behind.
func TestJobsSurviveKill(t *testing.T) {
	dataDir := t.TempDir()
	first := startSlipway(t, "SLIPWAY_DATA_DIR="+dataDir)
	api := newJobsProject(t, first.URL, "Crash Test")

	// Unique sleep durations mark the runs' processes.
	sleepA, sleepB := uniqueSeconds(t, 3), uniqueSeconds(t, 2)
	jobA := api.createManual(commandJob("Before After", "echo before; sleep "+sleepA+"; echo after"))
	jobB := api.createManual(commandJob("Exit Five", "sleep "+sleepB+"; exit 5"))
	runA, _ := api.start(jobA)
	runB, _ := api.start(jobB)
	api.waitRun(jobA, runA, 5*time.Second, "active", active)
	api.waitRun(jobB, runB, 5*time.Second, "active", active)
	// Let "before" be stored, so that the restarted Slipway must not store
	// it again when it reads the workload's output anew.
	deadline := time.Now().Add(3 * time.Second)
	for len(api.logs(jobA, runA)) == 0 && time.Now().Before(deadline) {
		time.Sleep(pollEvery)
	}
	if got := api.logs(jobA, runA); !slices.Equal(got, []string{"before"}) {
		t.Fatalf("logs of run A before the kill: %q, want [before]", got)
	}

	killedAt := time.Now()
	first.kill()
	if len(processesMatching("sleep "+sleepA)) == 0 || len(processesMatching("sleep "+sleepB)) == 0 {
		t.Fatalf("the runs' processes died with Slipway (or ended before it was killed): A %q, B %q", processesMatching("sleep "+sleepA), processesMatching("sleep "+sleepB))
	}
	// Run B ends while Slipway is down (its outcome must be read back);
	// run A, a second longer, is normally still running at the restart
	// (it must be watched again).
	waitNoProcesses(t, "sleep "+sleepB, 5*time.Second)
	aAlive := len(processesMatching("sleep "+sleepA)) > 0

	second := startSlipway(t, "SLIPWAY_DATA_DIR="+dataDir)
	t.Logf("restarted %s after the kill; run A was still running: %v", time.Since(killedAt).Round(time.Millisecond), aAlive)
	api.base = second.URL
	a := api.waitRun(jobA, runA, 20*time.Second, "concluded", concluded)
	b := api.waitRun(jobB, runB, 20*time.Second, "concluded", concluded)
	t.Logf("run A %s, run B %s, %s after the kill", a["status"], b["status"], time.Since(killedAt).Round(time.Millisecond))

	if a["status"] != "SUCCESS" || a["succeeded"] != float64(1) || a["failed"] != float64(0) || a["exitCode"] != float64(0) {
		t.Errorf("run A after the restart: %v, want SUCCESS with exit code 0 and no failed attempt", a)
	}
	if got := api.logs(jobA, runA); !slices.Equal(got, []string{"before", "after"}) {
		t.Errorf("logs of run A: %q, want exactly [before after]", got)
	}
	if b["status"] != "FAILED" || b["exitCode"] != float64(5) || b["reason"] != "Error" || b["failed"] != float64(1) {
		t.Errorf("run B after the restart: %v, want FAILED (reason Error) with exit code 5 after one attempt", b)
	}
	waitNoProcesses(t, "sleep "+sleepA, 5*time.Second)
	waitNoProcesses(t, "sleep "+sleepB, 5*time.Second)
	if errs := second.out.logsAt("ERROR"); len(errs) > 0 {
		t.Errorf("the restarted Slipway logged errors:\n%s", strings.Join(errs, "\n"))
	}
}

// TestJobsDeleteProject deletes a project that holds a job with an active
// run: refused (409) unless child objects are deleted too; then the job,
// its run and the run's processes go away.
func TestJobsDeleteProject(t *testing.T) {
	inst := startSlipway(t)
	api := newJobsProject(t, inst.URL, "Doomed Project")
	marker := "sleep " + uniqueSeconds(t, 60)
	job := api.createManual(commandJob("Long Job", marker))
	run, _ := api.start(job)
	api.waitRun(job, run, 5*time.Second, "active", active)

	// The projects service learns of the job through its event.
	projectURL := inst.URL + "/v1/projects/" + api.project
	deadline := time.Now().Add(10 * time.Second)
	for {
		p := callJSON(t, "GET", projectURL, "").data(t)
		jobs, _ := p["jobs"].([]any)
		if slices.ContainsFunc(jobs, func(v any) bool { m, _ := v.(map[string]any); return m["id"] == job }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s does not list job %s within 10s: %v", projectURL, job, p)
		}
		time.Sleep(pollEvery)
	}
	if e := callJSON(t, "DELETE", projectURL, "").apiErr(t, http.StatusConflict); e.ID != "PROJECT_NOT_EMPTY" {
		t.Errorf("DELETE of a project with a job: error id %q, want PROJECT_NOT_EMPTY", e.ID)
	}
	if r := api.run(job, run); r["status"] != "RUNNING" {
		t.Errorf("the refused delete changed the run: %v", r)
	}

	callJSON(t, "DELETE", projectURL+"?delete_child_objects=true", "").data(t)
	callJSON(t, "GET", projectURL, "").apiErr(t, http.StatusNotFound)
	deleted := time.Now()
	deadline = deleted.Add(10 * time.Second)
	for {
		r := callJSON(t, "GET", api.jobURL(job), "")
		if r.Status == http.StatusNotFound {
			break
		}
		if r.Status != http.StatusOK || time.Now().After(deadline) {
			t.Fatalf("GET the job of a deleted project: HTTP %d (want 404 within 10s): %s", r.Status, r.Raw)
		}
		time.Sleep(pollEvery)
	}
	t.Logf("the job was gone %s after the project", time.Since(deleted).Round(time.Millisecond))
	callJSON(t, "GET", api.jobURL(job)+"/runs/"+run, "").apiErr(t, http.StatusNotFound)
	waitNoProcesses(t, marker, 15*time.Second)
}

// TestJobsDockerDriver runs jobs as containers of an image, on Podman's
// Docker-compatible API (it fails, never skips, without podman).
func TestJobsDockerDriver(t *testing.T) {
	host := testenv.Podman(t)
	image := testenv.BuildTestImage(t, host)
	inst := startSlipway(t, "SLIPWAY_RUNTIME_DRIVER=docker", "SLIPWAY_DOCKER_HOST="+host)
	api := newJobsProject(t, inst.URL, "Container Jobs")

	imageJob := func(name, command string) string {
		return fmt.Sprintf(`{"name":%q,"deployment":{"external":{"imagePath":%q},"docker":{"configType":"customCommand","customCommand":%q}},"runtimeEnvironment":{"WHO":"in podman"}}`,
			name, image, command)
	}
	// The command is split into words, not run through a shell.
	job := api.createManual(imageJob("Container Hello", `sh -c 'echo from container $WHO'`))
	if got := callJSON(t, "GET", api.jobURL(job), "").data(t); fmt.Sprint(got["cluster"]) != "map[id:docker name:docker]" {
		t.Errorf("job cluster %v, want the docker driver", got["cluster"])
	}
	run, _ := api.start(job)
	r := api.waitRun(job, run, time.Minute, "concluded", concluded)
	if r["status"] != "SUCCESS" || r["exitCode"] != float64(0) {
		t.Fatalf("container run: %v, want SUCCESS with exit code 0", r)
	}
	if got := api.logs(job, run); !slices.Equal(got, []string{"from container in podman"}) {
		t.Errorf("logs of the container run: %q, want [from container in podman]", got)
	}
	// The finished container is removed once its logs are stored.
	waitContainers(t, host, run, 10*time.Second, func(cs []podmanContainer) bool { return len(cs) == 0 })

	// The docker driver runs images only.
	e := callJSON(t, "POST", api.base+"/v1/projects/"+api.project+"/jobs/manual", commandJob("No Image", "echo hi")).apiErr(t, http.StatusBadRequest)
	if _, ok := e.Details["deployment.external.imagePath"]; !ok {
		t.Errorf("400 for a job without an image: details %v do not name deployment.external.imagePath", e.Details)
	}

	// An aborted run's container is stopped (sleep, as PID 1, ignores
	// SIGTERM: the driver kills it after its grace period) and removed.
	sleeper := api.createManual(imageJob("Container Sleeper", "sleep 60"))
	run, _ = api.start(sleeper)
	api.waitRun(sleeper, run, time.Minute, "active", active)
	running := waitContainers(t, host, run, 10*time.Second, func(cs []podmanContainer) bool { return len(cs) == 1 })
	if running[0].State != "running" {
		t.Errorf("the active run's container is %q, want running", running[0].State)
	}
	callJSON(t, "DELETE", api.jobURL(sleeper)+"/runs/"+run, "").data(t)
	aborted := time.Now()
	if r := api.run(sleeper, run); r["status"] != "FAILED" || r["reason"] != "Aborted" {
		t.Errorf("aborted run: %v, want FAILED (Aborted)", r)
	}
	waitContainers(t, host, run, 30*time.Second, func(cs []podmanContainer) bool {
		return len(cs) == 0 || cs[0].State == "exited"
	})
	t.Logf("the aborted run's container was stopped %s after the abort", time.Since(aborted).Round(time.Millisecond))
	waitContainers(t, host, run, 10*time.Second, func(cs []podmanContainer) bool { return len(cs) == 0 })
}

// podmanContainer is what GET /containers/json tells of a container.
type podmanContainer struct {
	ID     string            `json:"Id"`
	State  string            `json:"State"`
	Labels map[string]string `json:"Labels"`
}

// runContainers lists, through the engine's API at host (unix://...), the
// containers of a run, whatever their state.
func runContainers(t *testing.T, host, run string) []podmanContainer {
	t.Helper()
	sock := strings.TrimPrefix(host, "unix://")
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
	defer client.CloseIdleConnections()
	filters, _ := json.Marshal(map[string][]string{"label": {"dev.slipway.run=" + run}})
	res, err := client.Get("http://engine/containers/json?all=true&filters=" + url.QueryEscape(string(filters)))
	if err != nil {
		t.Fatalf("list containers: %v", err)
	}
	defer res.Body.Close()
	var cs []podmanContainer
	if res.StatusCode != http.StatusOK {
		t.Fatalf("list containers: HTTP %d", res.StatusCode)
	}
	if err := json.NewDecoder(res.Body).Decode(&cs); err != nil {
		t.Fatalf("list containers: %v", err)
	}
	return cs
}

// waitContainers polls the run's containers until ok accepts them, and
// returns them; it fails the test after timeout.
func waitContainers(t *testing.T, host, run string, timeout time.Duration, ok func([]podmanContainer) bool) []podmanContainer {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		cs := runContainers(t, host, run)
		if ok(cs) {
			return cs
		}
		if time.Now().After(deadline) {
			t.Fatalf("containers of run %s after %s: %+v", run, timeout, cs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestJobsBadInputHTTP sends what the strict decoder must refuse to the
// jobs routes whose body is one field of the request (body: "spec",
// "overrides"), and checks nothing was created.
func TestJobsBadInputHTTP(t *testing.T) {
	inst := startSlipway(t)
	a := newJobsProject(t, inst.URL, "Bad Input Jobs")
	manual := inst.URL + "/v1/projects/" + a.project + "/jobs/manual"
	job := a.createManual(commandJob("good job", "true"))
	cases := []struct {
		name, method, url, body string
		status                  int
		field                   string
	}{
		{"malformed JSON", "POST", manual, `{"name":"x",`, http.StatusBadRequest, ""},
		{"unknown field", "POST", manual, `{"name":"bad job","nope":1}`, http.StatusBadRequest, "nope"},
		{"wrong type", "POST", manual, `{"name":"bad job","backoffLimit":"two"}`, http.StatusBadRequest, "backoffLimit"},
		{"nested unknown field", "POST", manual, `{"name":"bad job","deployment":{"nope":{}}}`, http.StatusBadRequest, "deployment.nope"},
		{"Northflank field Slipway cannot honour", "POST", manual, `{"name":"bad job","deployment":{"buildpack":{"configType":"customCommand"}}}`, http.StatusBadRequest, "deployment.buildpack"},
		{"env value not a string", "POST", manual, `{"name":"bad job","runtimeEnvironment":{"A":1}}`, http.StatusBadRequest, `runtimeEnvironment["A"]`},
		{"oversize body", "POST", manual, `{"name":"bad job","description":"` + strings.Repeat("x", 2<<20) + `"}`, http.StatusRequestEntityTooLarge, ""},
		{"run override unknown field", "POST", a.jobURL(job) + "/runs", `{"env":{}}`, http.StatusBadRequest, "env"},
		{"patch wrong type", "PATCH", manual + "/" + job, `{"schedule":5}`, http.StatusBadRequest, "schedule"},
		{"cron every second", "POST", inst.URL + "/v1/projects/" + a.project + "/jobs/cron", `{"name":"bad cron","schedule":"@every 1s","deployment":{"docker":{"configType":"customCommand","customCommand":"true"}}}`, http.StatusBadRequest, "schedule"},
		{"cron every 100ms", "POST", inst.URL + "/v1/projects/" + a.project + "/jobs/cron", `{"name":"bad cron","schedule":"@every 100ms","deployment":{"docker":{"configType":"customCommand","customCommand":"true"}}}`, http.StatusBadRequest, "schedule"},
		{"cron seconds field", "POST", inst.URL + "/v1/projects/" + a.project + "/jobs/cron", `{"name":"bad cron","schedule":"*/1 * * * * *","deployment":{"docker":{"configType":"customCommand","customCommand":"true"}}}`, http.StatusBadRequest, "schedule"},
		{"logs bad lineLimit", "GET", a.jobURL(job) + "/logs?lineLimit=lots", "", http.StatusBadRequest, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := requestAs(t, "Bearer "+adminToken, c.method, c.url, c.body).apiErr(t, c.status)
			if c.field != "" {
				if _, ok := e.Details[c.field]; !ok {
					t.Errorf("details %v do not name %q", e.Details, c.field)
				}
			}
		})
	}
	list := callJSON(t, "GET", inst.URL+"/v1/projects/"+a.project+"/jobs", "").data(t)
	if n := len(list["jobs"].([]any)); n != 1 {
		t.Errorf("%d jobs after the refused requests, want the 1 good one", n)
	}
}
