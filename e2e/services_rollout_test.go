package e2e

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// loadResult is one request of a loadClient.
type loadResult struct {
	started time.Time
	code    int
	body    string
	err     error
}

// loadClient sends GET / to a service through the ingress, from two
// workers, continuously until it is stopped, at most maxRequests or for
// at most maxDuration, and keeps every result.
type loadClient struct {
	stopOnce sync.Once
	stopCh   chan struct{}
	wg       sync.WaitGroup

	mu      sync.Mutex
	results []loadResult
}

const (
	loadMaxRequests = 50_000
	loadMaxDuration = 6 * time.Minute
	loadPause       = 10 * time.Millisecond
)

func startLoad(t *testing.T, addr, host string) *loadClient {
	l := &loadClient{stopCh: make(chan struct{})}
	client := &http.Client{Timeout: 10 * time.Second}
	end := time.Now().Add(loadMaxDuration)
	for range 2 {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for time.Now().Before(end) {
				select {
				case <-l.stopCh:
					return
				default:
				}
				r := loadResult{started: time.Now()}
				r.code, r.body, r.err = ingressGet(client, addr, host, "/")
				l.mu.Lock()
				l.results = append(l.results, r)
				full := len(l.results) >= loadMaxRequests
				l.mu.Unlock()
				if full {
					return
				}
				time.Sleep(loadPause)
			}
		}()
	}
	t.Cleanup(l.stop)
	return l
}

func (l *loadClient) stop() {
	l.stopOnce.Do(func() { close(l.stopCh) })
	l.wg.Wait()
}

// snapshot returns the results so far.
func (l *loadClient) snapshot() []loadResult {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]loadResult(nil), l.results...)
}

// awaitMore waits until n more requests have been answered since now.
func (l *loadClient) awaitMore(t *testing.T, n int) {
	t.Helper()
	from := len(l.snapshot())
	for deadline := time.Now().Add(30 * time.Second); len(l.snapshot()) < from+n; {
		if time.Now().After(deadline) {
			t.Fatalf("the load client answered %d requests in 30s, want %d", len(l.snapshot())-from, n)
		}
		time.Sleep(pollEvery)
	}
}

// check fails the test for every result in rs that is not a 200 with one
// of the bodies want, and returns how many of each body there were.
func checkLoad(t *testing.T, phase string, rs []loadResult, want ...string) map[string]int {
	t.Helper()
	counts := map[string]int{}
	bad := 0
	for _, r := range rs {
		body := strings.TrimSpace(r.body)
		if r.err != nil || r.code != http.StatusOK || !contains(want, body) {
			if bad++; bad <= 5 {
				t.Errorf("%s: a request at %s failed: HTTP %d %q, %v (want 200 with one of %q)",
					phase, r.started.Format(time.RFC3339Nano), r.code, body, r.err, want)
			}
			continue
		}
		counts[body]++
	}
	if bad > 5 {
		t.Errorf("%s: %d requests failed in all", phase, bad)
	}
	t.Logf("%s: %d requests, answers %v", phase, len(rs), counts)
	return counts
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestServiceZeroDowntime: through the binary and its ingress on the
// process driver, a client sends requests continuously while a service
// of three instances rolls out a new version and then scales down to one:
// no request fails, and the answers switch from the old version to the
// new. A release whose readiness check never passes fails its rollout
// (GET …/deployment FAILED with the reason, the release list too) and is
// rolled back, the running version answering every request meanwhile;
// then a rollback to the first release rolls it out again, still with no
// failed request.
func TestServiceZeroDowntime(t *testing.T) {
	// version(v) serves body v from a directory named with a nonce, so
	// that the test finds its processes on this host; version("") has no
	// index page and answers 404 at "/", its readiness path.
	nonce := strconv.FormatInt(time.Now().UnixNano(), 36)
	version := func(v string) string {
		if v == "" {
			return "mkdir -p empty-" + nonce + " && busybox httpd -f -p $PORT -h empty-" + nonce
		}
		return "mkdir -p " + v + "-" + nonce + " && echo " + v + " > " + v + "-" + nonce + "/index.html && busybox httpd -f -p $PORT -h " + v + "-" + nonce
	}
	procs := func() int {
		n := 0
		for _, v := range []string{"v1", "v2", "empty"} {
			n += len(workloadProcs(t, "busybox httpd -f -p 8080 -h "+v+"-"+nonce))
		}
		return n
	}
	// The test polls the API for minutes: more than the default quota.
	inst := startSlipway(t, "SLIPWAY_RATE_LIMIT_PER_HOUR=100000")
	callJSON(t, "POST", inst.URL+"/v1/projects", `{"name":"Zero Downtime"}`).data(t)
	svc := inst.URL + "/v1/projects/zero-downtime/services/web"
	created := callJSON(t, "POST", inst.URL+"/v1/projects/zero-downtime/services/deployment", fmt.Sprintf(`{"name":"web",
		"deployment":{"instances":3,"gracePeriodSeconds":5,"docker":{"configType":"customCommand","customCommand":%q}},
		"ports":[{"name":"p01","internalPort":8080,"public":true,"protocol":"HTTP"}],
		"healthChecks":[{"protocol":"HTTP","type":"readinessProbe","path":"/","port":8080,
			"initialDelaySeconds":0,"periodSeconds":2,"timeoutSeconds":1,"failureThreshold":3}]}`, version("v1"))).data(t)
	addr, host := ingressAddr(t, created["ports"].([]any)[0].(map[string]any)["dns"].(string))

	// deployment waits until GET …/deployment shows the rollout of the
	// newest release ended (status other than PENDING and IN_PROGRESS),
	// and returns it with that release.
	type release struct {
		ID, Cause, Status, Reason, RolledBackFrom string
	}
	releases := func() []release {
		t.Helper()
		var out []release
		for _, v := range callJSON(t, "GET", svc+"/releases", "").data(t)["releases"].([]any) {
			m := v.(map[string]any)
			str := func(k string) string { s, _ := m[k].(string); return s }
			out = append(out, release{str("id"), str("cause"), str("status"), str("reason"), str("rolledBackFrom")})
		}
		return out
	}
	awaitRollout := func(timeout time.Duration) (status, message string, newest release) {
		t.Helper()
		for deadline := time.Now().Add(timeout); ; {
			d := callJSON(t, "GET", svc+"/deployment", "").data(t)
			st, _ := d["status"].(map[string]any)
			rs := releases()
			status, _ = st["status"].(string)
			message, _ = st["message"].(string)
			if len(rs) > 0 && (rs[0].Status == "COMPLETED" || rs[0].Status == "FAILED") && status != "PENDING" && status != "IN_PROGRESS" {
				return status, message, rs[0]
			}
			if time.Now().After(deadline) {
				t.Fatalf("rollout not over within %s: deployment %v, releases %+v", timeout, d, rs)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	awaitContainers := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); ; {
			list := callJSON(t, "GET", svc+"/containers", "").data(t)["containers"].([]any)
			if len(list) == n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("containers %v, want %d", list, n)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	if st, msg, r := awaitRollout(60 * time.Second); st != "COMPLETED" || r.Cause != "create" {
		t.Fatalf("first rollout: %s %q, release %+v", st, msg, r)
	}
	awaitContainers(3)
	awaitIngress(t, addr, host, "/", 30*time.Second, func(b string) bool { return b == "v1\n" })
	load := startLoad(t, addr, host)
	load.awaitMore(t, 20)

	// A rollout to v2: no request fails, the answers switch to v2, and
	// once it completed only v2 answers.
	callJSON(t, "POST", svc+"/deployment", fmt.Sprintf(`{"docker":{"configType":"customCommand","customCommand":%q}}`, version("v2"))).data(t)
	st, msg, v2 := awaitRollout(90 * time.Second)
	if st != "COMPLETED" || v2.Cause != "deployment" {
		t.Fatalf("rollout of v2: %s %q, release %+v", st, msg, v2)
	}
	completed := time.Now()
	load.awaitMore(t, 20)
	rs := load.snapshot()
	counts := checkLoad(t, "rollout to v2", rs, "v1", "v2")
	if strings.TrimSpace(rs[0].body) != "v1" || counts["v2"] == 0 {
		t.Errorf("rollout to v2: the answers did not switch from v1 to v2: %v", counts)
	}
	var afterRollout []loadResult
	for _, r := range rs {
		if r.started.After(completed) {
			afterRollout = append(afterRollout, r)
		}
	}
	checkLoad(t, "after the rollout to v2", afterRollout, "v2")
	awaitContainers(3)

	// Scale down 3 → 1 under load.
	mark := len(load.snapshot())
	callJSON(t, "POST", svc+"/scale", `{"instances":1}`).data(t)
	awaitContainers(1)
	load.awaitMore(t, 20)
	checkLoad(t, "scale down to 1", load.snapshot()[mark:], "v2")

	// A release that never becomes ready: its rollout fails after the
	// ready timeout and is rolled back; v2 answers every request.
	mark = len(load.snapshot())
	callJSON(t, "POST", svc+"/deployment", fmt.Sprintf(`{"docker":{"configType":"customCommand","customCommand":%q}}`, version(""))).data(t)
	st, msg, bad := awaitRollout(4 * time.Minute)
	if st != "FAILED" || bad.Status != "FAILED" || bad.ID == v2.ID || !strings.Contains(msg, "not ready") || !strings.Contains(bad.Reason, "not ready") {
		t.Errorf("a release never ready: deployment %s %q, release %+v; want FAILED saying it was not ready", st, msg, bad)
	}
	t.Logf("failed release: %+v; deployment message %q", bad, msg)
	awaitContainers(1)
	load.awaitMore(t, 20)
	checkLoad(t, "failed rollout", load.snapshot()[mark:], "v2")
	all := releases()
	if len(all) != 3 || all[0] != bad || all[1].ID != v2.ID || all[1].Status != "COMPLETED" || all[2].Cause != "create" {
		t.Errorf("releases %+v, want the failed one, v2 completed and the first", all)
	}

	// Roll back to the first release (v1): a new release copying it.
	mark = len(load.snapshot())
	first := all[2]
	callJSON(t, "POST", svc+"/releases/"+first.ID+"/rollback", "").data(t)
	st, msg, back := awaitRollout(90 * time.Second)
	if st != "COMPLETED" || back.Cause != "rollback" || back.RolledBackFrom != first.ID {
		t.Fatalf("rollback to %s: deployment %s %q, release %+v", first.ID, st, msg, back)
	}
	completed = time.Now()
	load.awaitMore(t, 20)
	load.stop()
	rs = load.snapshot()[mark:]
	counts = checkLoad(t, "rollback to v1", rs, "v1", "v2")
	if strings.TrimSpace(rs[0].body) != "v2" || counts["v1"] == 0 {
		t.Errorf("rollback: the answers did not switch from v2 to v1: %v", counts)
	}
	afterRollout = afterRollout[:0]
	for _, r := range rs {
		if r.started.After(completed) {
			afterRollout = append(afterRollout, r)
		}
	}
	checkLoad(t, "after the rollback", afterRollout, "v1")
	if n := procs(); n != 1 {
		t.Errorf("%d instance processes run on the host, want 1", n)
	}

	// The instances outlive Slipway: the project goes with its service,
	// whose instances stop.
	callJSON(t, "DELETE", inst.URL+"/v1/projects/zero-downtime?delete_child_objects=true", "").data(t)
	for deadline := time.Now().Add(30 * time.Second); procs() > 0; {
		if time.Now().After(deadline) {
			t.Fatalf("%d instances still run 30s after their project was deleted", procs())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
