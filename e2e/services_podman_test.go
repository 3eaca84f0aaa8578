package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pkg/testenv"
)

// podmanServiceBody is a deployment service of the test image that
// serves version on its port with busybox httpd and writes "tick N" every
// half second (the log lines the restart check counts). The command is
// split into words, not run through a shell, hence sh -c; sh is PID 1 and
// ends on SIGTERM (httpd as PID 1 would ignore it and be killed only
// after the grace period).
func podmanServiceBody(image, version string) string {
	cmd := fmt.Sprintf(`sh -c 'trap "exit 0" TERM; mkdir -p /tmp/www; echo %s > /tmp/www/index.html; (i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.5; done) & httpd -f -p $PORT -h /tmp/www & wait'`, version)
	return fmt.Sprintf(`{"name":"Web","deployment":{"instances":1,"external":{"imagePath":%q},
		"docker":{"configType":"customCommand","customCommand":%q}},
		"ports":[{"name":"p01","internalPort":8080,"public":true,"protocol":"HTTP"}],
		"healthChecks":[{"protocol":"HTTP","type":"readinessProbe","path":"/","port":8080,
			"initialDelaySeconds":0,"periodSeconds":2,"timeoutSeconds":1,"failureThreshold":3}]}`, image, cmd)
}

// ingressClient sends requests to an ingress with a service's host name,
// over kept-alive connections.
type ingressClient struct {
	addr, host string
	client     *http.Client
}

func newIngressClient(addr, host string) *ingressClient {
	return &ingressClient{addr: addr, host: host, client: &http.Client{Timeout: 5 * time.Second}}
}

// get returns the status and trimmed body of GET / through the ingress.
func (c *ingressClient) get() (int, string, error) {
	req, _ := http.NewRequest("GET", "http://"+c.addr+"/", nil)
	req.Host = c.host
	res, err := c.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, strings.TrimSpace(string(b)), err
}

// waitBody polls until the ingress answers 200 with want.
func (c *ingressClient) waitBody(t *testing.T, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		status, body, err := c.get()
		if err == nil && status == http.StatusOK && body == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the ingress did not answer 200 %q within %s: HTTP %d %q %v", want, timeout, status, body, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// load sends requests one after the other until stop is closed (or max
// requests or maxTime have passed) and returns the answers in order, a
// failed request as "error: …" or "HTTP n".
func (c *ingressClient) load(stop <-chan struct{}, maxRequests int, maxTime time.Duration) []string {
	var answers []string
	deadline := time.Now().Add(maxTime)
	for len(answers) < maxRequests && time.Now().Before(deadline) {
		select {
		case <-stop:
			return answers
		default:
		}
		status, body, err := c.get()
		switch {
		case err != nil:
			answers = append(answers, "error: "+err.Error())
		case status != http.StatusOK:
			answers = append(answers, fmt.Sprintf("HTTP %d: %s", status, body))
		default:
			answers = append(answers, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return answers
}

// startLoad runs load in a goroutine; the returned function stops it and
// returns its answers.
func (c *ingressClient) startLoad(maxRequests int, maxTime time.Duration) func() []string {
	stop := make(chan struct{})
	var answers []string
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		answers = c.load(stop, maxRequests, maxTime)
	}()
	return func() []string {
		close(stop)
		wg.Wait()
		return answers
	}
}

// checkSwitch fails the test unless every answer is from or to (no
// failed request) and they switch from from to to once.
func checkSwitch(t *testing.T, what string, answers []string, from, to string) {
	t.Helper()
	switches := 0
	for i, a := range answers {
		if a != from && a != to {
			t.Errorf("%s: request %d of %d answered %q", what, i+1, len(answers), a)
			continue
		}
		if i > 0 && a != answers[i-1] {
			switches++
		}
	}
	if len(answers) == 0 || answers[0] != from || answers[len(answers)-1] != to {
		t.Errorf("%s: %d answers, want from %q to %q: first %q, last %q", what, len(answers), from, to, first(answers), last(answers))
	}
	if switches > 1 {
		t.Logf("%s: the answers switched %d times between %q and %q (both versions served during the move)", what, switches, from, to)
	}
	t.Logf("%s: %d requests, none failed", what, len(answers))
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func last(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[len(s)-1]
}

// waitDeployment polls GET …/deployment until its status is COMPLETED.
func waitDeployment(t *testing.T, svcURL string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		d := callJSON(t, "GET", svcURL+"/deployment", "").data(t)
		st, _ := d["status"].(map[string]any)
		if st["status"] == "COMPLETED" {
			return
		}
		if st["status"] == "FAILED" || time.Now().After(deadline) {
			t.Fatalf("the deployment did not complete within %s: %v", timeout, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// serviceContainers returns the names of GET …/containers with status
// TASK_RUNNING.
func serviceContainers(t *testing.T, svcURL string) []map[string]any {
	t.Helper()
	d := callJSON(t, "GET", svcURL+"/containers", "").data(t)
	var out []map[string]any
	for _, c := range d["containers"].([]any) {
		out = append(out, c.(map[string]any))
	}
	return out
}

// engineContainer is what the engine's inspection tells of a container.
type engineContainer struct {
	ID    string `json:"Id"`
	State struct {
		Status    string `json:"Status"`
		StartedAt string `json:"StartedAt"`
	} `json:"State"`
	RestartCount int `json:"RestartCount"`
}

// engineGet decodes GET path of the engine at host (unix://…) into v.
func engineGet(t *testing.T, host, path string, v any) {
	t.Helper()
	if err := engineTryGet(host, path, v); err != nil {
		t.Fatal(err)
	}
}

// engineTryGet is engineGet returning its error: a listing that races
// an image's removal fails on Podman ("image not known"), and a poll
// tries again.
func engineTryGet(host, path string, v any) error {
	sock := strings.TrimPrefix(host, "unix://")
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
	defer client.CloseIdleConnections()
	res, err := client.Get("http://engine" + path)
	if err != nil {
		return fmt.Errorf("engine GET %s: %w", path, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		return fmt.Errorf("engine GET %s: HTTP %d: %s", path, res.StatusCode, b)
	}
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		return fmt.Errorf("engine GET %s: %w", path, err)
	}
	return nil
}

// managedContainers inspects the running containers Slipway manages.
func managedContainers(t *testing.T, host string) []engineContainer {
	t.Helper()
	filters, _ := json.Marshal(map[string][]string{"label": {"dev.slipway.managed=true"}})
	var list []podmanContainer
	engineGet(t, host, "/containers/json?filters="+url.QueryEscape(string(filters)), &list)
	var out []engineContainer
	for _, c := range list {
		var ci engineContainer
		engineGet(t, host, "/containers/"+c.ID+"/json", &ci)
		out = append(out, ci)
	}
	return out
}

// serviceLogs returns the text of a service's stored lines of instance
// (containerId), oldest first.
func serviceLogs(t *testing.T, svcURL, instance string) []string {
	t.Helper()
	r := callJSON(t, "GET", svcURL+"/logs?direction=forward&lineLimit=10000", "")
	lines, ok := r.Body["data"].([]any)
	if r.Status != http.StatusOK || !ok {
		t.Fatalf("service logs: HTTP %d: %s", r.Status, r.Raw)
	}
	var texts []string
	for _, l := range lines {
		if m := l.(map[string]any); m["containerId"] == instance {
			texts = append(texts, m["log"].(string))
		}
	}
	return texts
}

// ticks returns the numbers of the "tick N" lines of logs, in order.
func ticks(logs []string) []int {
	var n []int
	for _, l := range logs {
		if v, ok := strings.CutPrefix(l, "tick "); ok {
			i, err := strconv.Atoi(v)
			if err == nil {
				n = append(n, i)
			}
		}
	}
	return n
}

// TestServicesOnPodman runs a service on the docker driver against
// Podman end to end: a container of the local test image serves busybox
// httpd through the ingress by its host name; a rollout to a new version
// under continuous requests fails none and switches the answers; scaling
// to 2 and back to 1 fails none; exec runs a command in the container
// (the JS client); and after a SIGKILL of Slipway the restarted one adopts
// the same container (same id and start time, no restart), which keeps
// serving, and its logs continue with no line stored twice.
func TestServicesOnPodman(t *testing.T) {
	host := testenv.Podman(t)
	image := testenv.BuildTestImage(t, host)
	dataDir := t.TempDir()
	ingressAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	env := []string{"SLIPWAY_RUNTIME_DRIVER=docker", "SLIPWAY_DOCKER_HOST=" + host,
		"SLIPWAY_DATA_DIR=" + dataDir, "SLIPWAY_INGRESS_ADDR=" + ingressAddr}
	first := startSlipway(t, env...)
	callJSON(t, "POST", first.URL+"/v1/projects", `{"name":"Pod Demo"}`).data(t)
	svcURL := first.URL + "/v1/projects/pod-demo/services/web"
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		// What the instances printed, other than ticks, says why one failed.
		r := callJSON(t, "GET", svcURL+"/logs?direction=forward&lineLimit=10000", "")
		lines, _ := r.Body["data"].([]any)
		for _, l := range lines {
			if m, _ := l.(map[string]any); !strings.HasPrefix(fmt.Sprint(m["log"]), "tick ") {
				t.Logf("service log: %v %v", m["containerId"], m["log"])
			}
		}
	})

	created := time.Now()
	callJSON(t, "POST", first.URL+"/v1/projects/pod-demo/services/deployment", podmanServiceBody(image, "v1")).data(t)
	ing := newIngressClient(ingressAddr, "p01--web--pod-demo.localhost")
	ing.waitBody(t, "v1", 60*time.Second)
	t.Logf("created → first answer through the ingress: %s", time.Since(created).Round(time.Millisecond))
	waitDeployment(t, svcURL, 30*time.Second)

	// Roll out v2 under load.
	stopLoad := ing.startLoad(3000, 90*time.Second)
	time.Sleep(300 * time.Millisecond)
	body := podmanServiceBody(image, "v2")
	var req map[string]any
	if err := json.Unmarshal([]byte(body), &req); err != nil {
		t.Fatal(err)
	}
	dep, _ := json.Marshal(map[string]any{"external": req["deployment"].(map[string]any)["external"], "docker": req["deployment"].(map[string]any)["docker"]})
	rolled := time.Now()
	callJSON(t, "POST", svcURL+"/deployment", string(dep)).data(t)
	ing.waitBody(t, "v2", 60*time.Second)
	waitDeployment(t, svcURL, 60*time.Second)
	t.Logf("rollout v1 → v2 took %s", time.Since(rolled).Round(time.Millisecond))
	time.Sleep(300 * time.Millisecond)
	checkSwitch(t, "rollout under load", stopLoad(), "v1", "v2")
	if cs := managedContainers(t, host); len(cs) != 1 {
		t.Errorf("after the rollout %d containers run, want 1: %+v", len(cs), cs)
	}

	// Scale to 2 and back to 1 under load.
	stopLoad = ing.startLoad(3000, 90*time.Second)
	callJSON(t, "POST", svcURL+"/scale", `{"instances":2}`).data(t)
	deadline := time.Now().Add(60 * time.Second)
	for {
		cs := serviceContainers(t, svcURL)
		running := 0
		for _, c := range cs {
			if c["status"] == "TASK_RUNNING" {
				running++
			}
		}
		if running == 2 && len(managedContainers(t, host)) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not 2 running containers within 60s: %v", cs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	waitDeployment(t, svcURL, 30*time.Second)
	callJSON(t, "POST", svcURL+"/scale", `{"instances":1}`).data(t)
	deadline = time.Now().Add(60 * time.Second)
	for len(managedContainers(t, host)) != 1 || len(serviceContainers(t, svcURL)) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("not back to 1 container within 60s: %v", serviceContainers(t, svcURL))
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	checkSwitch(t, "scale 1 → 2 → 1 under load", stopLoad(), "v2", "v2")

	// Exec through the JS client.
	dir := requireNodeSuite(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	node := exec.CommandContext(ctx, "node", "-e", `
const m = require('@northflank/js-client');
(async () => {
  const ctx = new m.ApiClientInMemoryContextProvider();
  await ctx.addContext({ name: 'e2e', token: process.env.EXEC_TOKEN, host: process.env.EXEC_URL });
  const api = new m.ApiClient(ctx);
  const r = await api.exec.execServiceCommand({ projectId: 'pod-demo', serviceId: 'web' },
    { command: 'sh -c "cat /tmp/www/index.html; echo port $PORT; exit 4"' });
  console.log(JSON.stringify(r));
})().catch((e) => { console.error(e); process.exit(1); });`)
	node.Dir = dir
	node.Env = append(baseEnv(), "EXEC_URL="+first.URL, "EXEC_TOKEN="+adminToken)
	var stderr strings.Builder
	node.Stderr = &stderr
	raw, err := node.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, stderr.String())
	}
	var ex struct {
		StdOut        string `json:"stdOut"`
		CommandResult struct {
			ExitCode int    `json:"exitCode"`
			Status   string `json:"status"`
		} `json:"commandResult"`
	}
	if err := json.Unmarshal(raw, &ex); err != nil {
		t.Fatalf("node printed %q: %v", raw, err)
	}
	if ex.StdOut != "v2\nport 8080\n" || ex.CommandResult.ExitCode != 4 || ex.CommandResult.Status != "Failure" {
		t.Errorf("exec in the container: %s", raw)
	}

	// SIGKILL Slipway; the container keeps running and is adopted.
	before := managedContainers(t, host)
	beforeNames := serviceContainers(t, svcURL)
	if len(before) != 1 || len(beforeNames) != 1 {
		t.Fatalf("before the kill: containers %+v, service containers %v", before, beforeNames)
	}
	// Let a few ticks be stored, so that the restart must not store them again.
	time.Sleep(1500 * time.Millisecond)
	name, _ := beforeNames[0]["name"].(string)
	stored := ticks(serviceLogs(t, svcURL, name))
	first.kill()
	killedAt := time.Now()
	if status, body, err := ing.get(); err == nil {
		t.Errorf("the ingress answered HTTP %d %q while Slipway was down", status, body)
	}
	second := startSlipway(t, env...)
	t.Logf("restarted %s after the kill", time.Since(killedAt).Round(time.Millisecond))
	svcURL = second.URL + "/v1/projects/pod-demo/services/web" // the clean-up reads it too
	ing = newIngressClient(ingressAddr, "p01--web--pod-demo.localhost")
	ing.waitBody(t, "v2", 30*time.Second)
	answers := ing.load(nil, 50, 10*time.Second)
	checkSwitch(t, "after the restart", answers, "v2", "v2")
	after := managedContainers(t, host)
	if len(after) != 1 || after[0].ID != before[0].ID || after[0].State.StartedAt != before[0].State.StartedAt || after[0].RestartCount != 0 {
		t.Errorf("after the restart: containers %+v, want the same one as before %+v", after, before)
	}
	afterNames := serviceContainers(t, svcURL)
	if len(afterNames) != 1 || afterNames[0]["name"] != beforeNames[0]["name"] || afterNames[0]["createdAt"] != beforeNames[0]["createdAt"] {
		t.Errorf("GET …/containers after the restart: %v, before: %v", afterNames, beforeNames)
	}
	// The logs go on from where they were, every tick once: 1, 2, 3, …
	deadline = time.Now().Add(10 * time.Second)
	for {
		got := ticks(serviceLogs(t, svcURL, name))
		if len(got) > len(stored)+4 {
			for i, n := range got {
				if n != i+1 {
					t.Errorf("ticks of the adopted container %s: %v, want 1, 2, 3, … with none twice or missing", name, got)
					break
				}
			}
			t.Logf("%d ticks stored before the kill, %d after the restart", len(stored), len(got))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the logs do not continue after the restart: %d ticks before, %v now", len(stored), got)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if errs := second.out.logsAt("ERROR"); len(errs) > 0 {
		t.Errorf("the restarted Slipway logged errors:\n%s", strings.Join(errs, "\n"))
	}
}
