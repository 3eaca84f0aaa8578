package rollout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pkg/ingress"
	"github.com/slipwayhq/slipway/pkg/probe"
	"github.com/slipwayhq/slipway/pkg/runtime"
)

// webApp is a release of a small HTTP app: busybox httpd on 8080 (its
// PORT) answering its version at /, after half a second at
// /cgi-bin/slow (a request still in flight when an instance is drained),
// and, when healthy, "ok" at /healthz.
// sh stays PID 1 of the sandbox (no exec) so that SIGTERM reaches httpd.
func webApp(id string, healthy bool) Release {
	health := ""
	if healthy {
		health = " && echo ok > www/healthz"
	}
	return Release{
		ID: id,
		Workload: runtime.Spec{Command: []string{"/bin/sh", "-c",
			`mkdir -p www/cgi-bin && echo "` + id + `" > www/index.html` + health + ` && ` +
				`printf '#!/bin/sh\nsleep 0.5\nprintf "Content-Type: text/plain\\r\\n\\r\\n` + id + `\\n"\n' > www/cgi-bin/slow && chmod +x www/cgi-bin/slow && ` +
				`echo "serving ` + id + `" && busybox httpd -f -p "$PORT" -h www`}},
		Ports: []Port{{Name: "p01", Port: 8080, Protocol: "HTTP", Public: true}},
	}
}

// withReadiness adds an HTTP readiness check of /healthz.
func withReadiness(r Release) Release {
	r.HealthChecks = []probe.HealthCheck{{Protocol: probe.HTTP, Type: probe.Readiness, Path: "/healthz", Port: 8080,
		PeriodSeconds: 1, TimeoutSeconds: 1, FailureThreshold: 1}}
	return r
}

// client sends GETs through the ingress one after another (bounded in
// count and time) and records every answer.
type client struct {
	mu      sync.Mutex
	bodies  []string
	fails   []string
	stop    chan struct{}
	done    chan struct{}
	started chan struct{}
}

func startClient(t *testing.T, in *ingress.Ingress, host string) *client {
	return startClients(t, in, host, "/", 1)
}

// startClients runs n clients of path at once.
func startClients(t *testing.T, in *ingress.Ingress, host, path string, n int) *client {
	t.Helper()
	srv := httptest.NewServer(in)
	t.Cleanup(srv.Close)
	c := &client{stop: make(chan struct{}), done: make(chan struct{}), started: make(chan struct{})}
	hc := &http.Client{Timeout: 10 * time.Second}
	var wg sync.WaitGroup
	var once sync.Once
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.run(hc, srv.URL+path, host, &once)
		}()
	}
	go func() {
		wg.Wait()
		close(c.done)
	}()
	return c
}

func (c *client) run(hc *http.Client, url, host string, once *sync.Once) {
	{
		deadline := time.Now().Add(90 * time.Second)
		for i := 0; i < 200000 && time.Now().Before(deadline); i++ {
			select {
			case <-c.stop:
				return
			default:
			}
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			req.Host = host
			resp, err := hc.Do(req)
			var body string
			if err == nil {
				b, rerr := io.ReadAll(resp.Body)
				resp.Body.Close()
				body = strings.TrimSpace(string(b))
				if rerr != nil || resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("status %d %q %v", resp.StatusCode, body, rerr)
				}
			}
			c.mu.Lock()
			if err != nil {
				c.fails = append(c.fails, err.Error())
			} else {
				c.bodies = append(c.bodies, body)
			}
			c.mu.Unlock()
			once.Do(func() { close(c.started) })
			time.Sleep(2 * time.Millisecond)
		}
	}
}

// finish stops the client and returns what it got.
func (c *client) finish() (bodies, fails []string) {
	close(c.stop)
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.bodies), slices.Clone(c.fails)
}

func (c *client) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.bodies) + len(c.fails)
}

// waitServing waits until the ingress answers the host with body.
func waitServing(t *testing.T, in *ingress.Ingress, host, body string) {
	t.Helper()
	eventually(t, 30*time.Second, host+" answering "+body, func() bool {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Host = host
		in.ServeHTTP(rec, req)
		return rec.Code == http.StatusOK && strings.TrimSpace(rec.Body.String()) == body
	})
}

// TestZeroDowntime: a client requesting continuously through the
// ingress during a rollout to a new version and during a scale-down sees
// no failed request, and the answers switch from the old version to the
// new one.
func TestZeroDowntime(t *testing.T) {
	e := newEnv(t)
	host := e.in.Host("demo", "web", "p01")
	e.c.Apply(svc("web", webApp("v1", true), 2))
	e.waitSettled("web", "v1", 2)
	waitServing(t, e.in, host, "v1")

	c := startClients(t, e.in, host, "/", 4)
	slow := startClients(t, e.in, host, "/cgi-bin/slow", 2)
	<-c.started
	<-slow.started
	e.c.Apply(svc("web", webApp("v2", true), 2))
	e.waitSettled("web", "v2", 2)
	eventually(t, 10*time.Second, "v2 COMPLETED", func() bool {
		o, ok := e.hooks.last("v2")
		return ok && o.Status == RolloutCompleted
	})
	mid := c.count()
	e.c.Apply(svc("web", webApp("v2", true), 1))
	e.waitSettled("web", "v2", 1)
	eventually(t, 10*time.Second, "the surplus instance removed", func() bool { return len(e.workloads("web")) == 1 })
	eventually(t, 10*time.Second, "requests after the scale-down", func() bool { return c.count() > mid+50 })
	bodies, fails := c.finish()
	slowBodies, slowFails := slow.finish()

	if len(fails) > 0 {
		t.Fatalf("%d of %d requests failed, first: %s", len(fails), len(fails)+len(bodies), fails[0])
	}
	// Requests in flight while their instance was drained ran to their
	// end: the instance was stopped only once they were answered.
	if len(slowFails) > 0 || len(slowBodies) < 4 || slices.ContainsFunc(slowBodies, func(b string) bool { return b != "v1" && b != "v2" }) {
		t.Fatalf("slow requests: %d answered (%v), %d failed (%v)", len(slowBodies), slowBodies, len(slowFails), slowFails)
	}
	if len(bodies) < 100 {
		t.Fatalf("only %d requests: the test proves nothing", len(bodies))
	}
	// Old, then (maybe mixed while both serve) new, then new only.
	last := slices.Index(bodies, "v2")
	if bodies[0] != "v1" || last < 0 || slices.Contains(bodies[mid:], "v1") {
		t.Fatalf("answers do not switch from v1 to v2: first %q, first v2 at %d, v1 after the rollout: %v",
			bodies[0], last, slices.Contains(bodies[mid:], "v1"))
	}
	for _, b := range bodies {
		if b != "v1" && b != "v2" {
			t.Fatalf("answer %q", b)
		}
	}
	t.Logf("%d requests and %d slow ones, none failed; v2 from request %d", len(bodies), len(slowBodies), last)
}

// TestUnhealthyReleaseRolledBack: a release whose readiness check never
// passes is rolled back after its ReadyTimeout, saying which instance and
// check; the old version served every request meanwhile.
func TestUnhealthyReleaseRolledBack(t *testing.T) {
	e := newEnv(t)
	host := e.in.Host("demo", "web", "p01")
	e.c.Apply(svc("web", withReadiness(webApp("v1", true)), 2))
	old := e.waitSettled("web", "v1", 2)
	waitServing(t, e.in, host, "v1")

	c := startClient(t, e.in, host)
	<-c.started
	bad := withReadiness(webApp("v2", false))
	bad.ReadyTimeout = 3 * time.Second
	e.c.Apply(svc("web", bad, 2))
	eventually(t, 30*time.Second, "v2 FAILED", func() bool {
		o, ok := e.hooks.last("v2")
		return ok && o.Status == RolloutFailed
	})
	eventually(t, 10*time.Second, "v2's instances removed", func() bool { return len(e.workloads("web")) == 2 })
	bodies, fails := c.finish()

	o, _ := e.hooks.last("v2")
	if o.RestoredID != "v1" || !strings.Contains(o.Reason, "instance web-") ||
		!strings.Contains(o.Reason, "not ready within 3s: readinessProbe: HTTP health check on port 8080 answered 404") {
		t.Fatalf("outcome %+v", o)
	}
	if len(fails) > 0 || len(bodies) < 50 || slices.ContainsFunc(bodies, func(b string) bool { return b != "v1" }) {
		t.Fatalf("%d answers, %d failures (%v): the old version must answer every request", len(bodies), len(fails), fails)
	}
	if now := e.waitSettled("web", "v1", 2); !slices.Equal(ids(now), ids(old)) {
		t.Fatalf("instances %v, want the old %v", ids(now), ids(old))
	}
}

// TestAdoptedInstancesServe: after a restart of Slipway (new driver, new
// ingress, new controller) the same workloads, started at the same time,
// serve again through the ingress once probed ready; nothing restarts.
func TestAdoptedInstancesServe(t *testing.T) {
	e := newEnv(t)
	s := svc("web", withReadiness(webApp("v1", true)), 2)
	e.c.Apply(s)
	before := e.waitSettled("web", "v1", 2)
	starts := map[string]time.Time{}
	for _, w := range e.workloads("web") {
		starts[w.ID] = w.StartedAt
	}

	e.stop()
	in, err := ingress.New(ingress.Config{})
	if err != nil {
		t.Fatal(err)
	}
	e.in = in
	e.restart(testOptions())
	host := in.Host("demo", "web", "p01")
	e.c.Apply(s)
	after := e.waitSettled("web", "v1", 2)
	if !slices.Equal(ids(after), ids(before)) {
		t.Fatalf("instances %v after the restart, want %v", ids(after), ids(before))
	}
	waitServing(t, in, host, "v1")
	ws := e.workloads("web")
	if len(ws) != 2 {
		t.Fatalf("%d workloads", len(ws))
	}
	for _, w := range ws {
		if !w.StartedAt.Equal(starts[w.ID]) || w.State != runtime.StateRunning {
			t.Fatalf("workload %s started %v, was %v", w.ID, w.StartedAt, starts[w.ID])
		}
	}
	if got := e.hooks.Outcomes(); len(got) != 0 {
		t.Fatalf("adopting reported %v", got)
	}
	// The new controller pumps the adopted instances' logs, from their
	// first line.
	eventually(t, 5*time.Second, "logs of the adopted instances", func() bool {
		e.hooks.mu.Lock()
		defer e.hooks.mu.Unlock()
		for _, in := range after {
			if e.hooks.pumps[in.WorkloadID] != 1 || len(e.hooks.logs[in.WorkloadID]) == 0 {
				return false
			}
		}
		return true
	})
	// Both serve: the ingress has both as backends.
	eventually(t, 5*time.Second, "both routed", func() bool {
		n := 0
		for _, in := range e.c.Instances("web") {
			if in.Ready && in.Ports["p01"] != "" {
				n++
			}
		}
		return n == 2
	})
}

// TestPausedAnswers503: a paused service keeps its host, with no
// instance behind it: the ingress answers 503, not 404; a deleted one is
// gone (404).
func TestPausedAnswers503(t *testing.T) {
	e := newEnv(t)
	host := e.in.Host("demo", "web", "p01")
	s := svc("web", webApp("v1", true), 1)
	e.c.Apply(s)
	waitServing(t, e.in, host, "v1")
	code := func() int {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Host = host
		e.in.ServeHTTP(rec, req)
		return rec.Code
	}
	s.Paused = true
	e.c.Apply(s)
	eventually(t, 10*time.Second, "503 while paused", func() bool { return code() == http.StatusServiceUnavailable })
	e.c.Delete("web")
	eventually(t, 10*time.Second, "404 once deleted", func() bool { return code() == http.StatusNotFound })
}

// TestExecAndUsage: Exec runs a command in the instance it names (or
// the first ready one) and returns its output and exit code; an unknown
// name is runtime.ErrNotFound. Usage samples every running instance, by
// name.
func TestExecAndUsage(t *testing.T) {
	e := newEnv(t)
	e.c.Apply(svc("web", sleeper("r1"), 2))
	insts := e.waitSettled("web", "r1", 2)
	// Without ports an instance is ready once its workload runs, which
	// on the process driver may be before its sandbox runs the command
	// (the network is set up first); exec needs the latter.
	for _, in := range insts {
		eventually(t, 10*time.Second, "started", func() bool { return slices.Contains(e.hooks.lines(in.WorkloadID), "started r1") })
	}
	ctx := context.Background()
	for _, name := range []string{"", insts[1].Name} {
		var out strings.Builder
		code, err := e.c.Exec(ctx, "web", name, runtime.ExecSpec{Command: []string{"/bin/sh", "-c", "echo hi from $0; exit 7"}, Stdout: &out})
		if err != nil || code != 7 || strings.TrimSpace(out.String()) != "hi from /bin/sh" {
			t.Fatalf("exec into %q: code %d, %v, output %q", name, code, err, out.String())
		}
	}
	if _, err := e.c.Exec(ctx, "web", "nope", runtime.ExecSpec{Command: []string{"true"}}); !errors.Is(err, runtime.ErrNotFound) ||
		!strings.Contains(err.Error(), "no instance") {
		t.Fatalf("exec into an unknown instance: %v", err)
	}
	usage, err := e.c.Usage(ctx, "web")
	if err != nil || len(usage) != 2 {
		t.Fatalf("usage %v, %v", usage, err)
	}
	for _, in := range insts {
		if u, ok := usage[in.Name]; !ok || u.MemoryBytes <= 0 || u.At.IsZero() {
			t.Fatalf("usage of %s: %+v", in.Name, u)
		}
	}
}

// TestCmdReadiness: a CMD readiness check runs inside the instance: the
// instance is ready once the file it tests for exists.
func TestCmdReadiness(t *testing.T) {
	e := newEnv(t)
	rel := Release{ID: "r1", Workload: runtime.Spec{Command: []string{"/bin/sh", "-c", "sleep 1.5; touch ready; sleep 600"}},
		HealthChecks: []probe.HealthCheck{{Protocol: probe.CMD, Type: probe.Readiness, Cmd: "test -e ready",
			PeriodSeconds: 1, TimeoutSeconds: 1, FailureThreshold: 1}}}
	t0 := time.Now()
	e.c.Apply(svc("web", rel, 1))
	eventually(t, 10*time.Second, "not ready at first", func() bool {
		insts := e.c.Instances("web")
		return len(insts) == 1 && insts[0].Status == TaskRunning && !insts[0].Ready
	})
	e.waitSettled("web", "r1", 1)
	if d := time.Since(t0); d < 1500*time.Millisecond {
		t.Fatalf("ready after %v, before the file existed", d)
	}
}

// TestLivenessFailureRestarts: an instance whose liveness check fails is
// replaced under its name with back-off, its restarts counted, and the
// replacement serves again once ready.
func TestLivenessFailureRestarts(t *testing.T) {
	e := newEnv(t)
	opts := testOptions()
	opts.Backoff = probe.BackoffPolicy{Initial: 100 * time.Millisecond, Max: 200 * time.Millisecond}
	e.stop()
	e.start(opts)
	host := e.in.Host("demo", "web", "p01")
	healthy := withReadiness(webApp("v1", true))
	e.c.Apply(svc("web", healthy, 1))
	e.waitSettled("web", "v1", 1)

	// v2's instances lose their /healthz two seconds after they start.
	sick := webApp("v2", true)
	sick.Workload.Command[2] = "(sleep 2; rm www/healthz) & " + sick.Workload.Command[2]
	sick.HealthChecks = []probe.HealthCheck{
		{Protocol: probe.HTTP, Type: probe.Readiness, Path: "/", Port: 8080, PeriodSeconds: 1, TimeoutSeconds: 1, FailureThreshold: 1},
		{Protocol: probe.HTTP, Type: probe.Liveness, Path: "/healthz", Port: 8080, InitialDelaySeconds: 1, PeriodSeconds: 1, TimeoutSeconds: 1, FailureThreshold: 1},
	}
	e.c.Apply(svc("web", sick, 1))
	first := e.waitSettled("web", "v2", 1)[0]
	eventually(t, 10*time.Second, "v2 COMPLETED", func() bool {
		o, ok := e.hooks.last("v2")
		return ok && o.Status == RolloutCompleted
	})
	eventually(t, 20*time.Second, "a restart", func() bool {
		insts := e.c.Instances("web")
		return len(insts) == 1 && insts[0].Restarts >= 1 && insts[0].Ready
	})
	in := e.c.Instances("web")[0]
	if in.Name != first.Name || in.WorkloadID == first.WorkloadID {
		t.Fatalf("after the restart %+v, before %+v", in, first)
	}
	waitServing(t, e.in, host, "v2")
	if ws := e.workloads("web"); len(ws) != 1 || ws[0].Labels[LabelRestarts] == "0" {
		t.Fatalf("workloads %+v", ws)
	}
}
