package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// procStart is a process's start time, in clock ticks since boot (field
// 22 of /proc/PID/stat): with the pid it names a process for good, since
// a pid can be reused but not with the same start time.
func procStart(pid int) (uint64, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:])) // from field 3
	if len(f) < 20 {
		return 0, false
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	return start, err == nil
}

// procParent is a process's parent pid (field 4 of /proc/PID/stat).
func procParent(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// procCmdline is a process's argv joined by spaces.
func procCmdline(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
}

// workloadProcs returns, pid → start time, the processes of the host
// whose command line is cmdline, leaving out those whose parent has it
// too (busybox httpd forks a child of the same command line per
// connection): the long-lived server process of each instance.
func workloadProcs(t *testing.T, cmdline string) map[int]uint64 {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]uint64{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || procCmdline(pid) != cmdline || procCmdline(procParent(pid)) == cmdline {
			continue
		}
		if start, ok := procStart(pid); ok {
			out[pid] = start
		}
	}
	return out
}

// TestServicesSurviveSIGKILL: Slipway is SIGKILLed while two services
// (one with two instances) serve through the ingress. Their instances run
// on meanwhile (the process driver's workloads outlive the server; the
// ingress is down with it). Started again on the same data dir, Slipway
// adopts them: the same instances (names and start times in GET
// …/containers, the same host processes) serve again through the
// ingress, none was restarted, and the services' logs hold each request
// line exactly once, from before the kill and after the restart.
func TestServicesSurviveSIGKILL(t *testing.T) {
	dataDir := t.TempDir()
	first := startSlipway(t, "SLIPWAY_DATA_DIR="+dataDir)
	callJSON(t, "POST", first.URL+"/v1/projects", `{"name":"Crash Demo"}`).data(t)
	nonce := strconv.FormatInt(time.Now().UnixNano(), 36)
	services := map[string]int{"alpha": 2, "beta": 1}
	// Each service serves from a directory named with the test's nonce,
	// so its processes' command line is its own on this host.
	cmdline := func(name string) string { return "busybox httpd -f -vv -p 8080 -h www-" + name + "-" + nonce }
	for name, n := range services {
		callJSON(t, "POST", first.URL+"/v1/projects/crash-demo/services/deployment", fmt.Sprintf(`{"name":%q,
			"deployment":{"instances":%d,"docker":{"configType":"customCommand",
				"customCommand":"mkdir -p www-%s-%s && echo %s > www-%[3]s-%[4]s/index.html && busybox httpd -f -vv -p $PORT -h www-%[3]s-%[4]s"}},
			"ports":[{"name":"p01","internalPort":8080,"public":true,"protocol":"HTTP"}],
			"healthChecks":[{"protocol":"HTTP","type":"readinessProbe","path":"/","port":8080,
				"initialDelaySeconds":0,"periodSeconds":2,"timeoutSeconds":1,"failureThreshold":3}]}`, name, n, name, nonce, name)).data(t)
	}
	svcURL := func(base, name string) string { return base + "/v1/projects/crash-demo/services/" + name }
	var addr string
	hosts := map[string]string{}
	for name := range services {
		ports := callJSON(t, "GET", svcURL(first.URL, name)+"/ports", "").data(t)["ports"].([]any)
		addr, hosts[name] = ingressAddr(t, ports[0].(map[string]any)["dns"].(string))
	}

	type container struct {
		name      string
		createdAt float64
	}
	// awaitContainers waits until all of a service's instances are ready
	// and returns them.
	awaitContainers := func(base, name string) []container {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); ; {
			list := callJSON(t, "GET", svcURL(base, name)+"/containers", "").data(t)["containers"].([]any)
			var out []container
			for _, v := range list {
				c := v.(map[string]any)
				if c["ready"] == true && c["status"] == "TASK_RUNNING" {
					out = append(out, container{c["name"].(string), c["createdAt"].(float64)})
				}
				if r, _ := c["restarts"].(float64); r != 0 {
					t.Errorf("%s: instance %v was restarted", name, c)
				}
			}
			if len(out) == services[name] && len(list) == len(out) {
				return out
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: instances not all ready within 60s: %v", name, list)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	client := &http.Client{Timeout: 5 * time.Second}
	// send requests a unique path per request (httpd answers 404 for it,
	// and logs it), and GET / for the service's own page.
	var sent []string
	send := func(phase string) {
		t.Helper()
		for name := range services {
			awaitIngress(t, addr, hosts[name], "/", 30*time.Second, func(b string) bool { return b == name+"\n" })
			for i := range 3 {
				path := fmt.Sprintf("/%s-%s-%d-%s", phase, name, i, nonce)
				code, _, err := ingressGet(client, addr, hosts[name], path)
				if err != nil || code != http.StatusNotFound {
					t.Fatalf("GET %s through the ingress: HTTP %d, %v (want httpd's 404)", path, code, err)
				}
				sent = append(sent, name+" "+path)
			}
		}
	}

	before := map[string][]container{}
	procs := map[string]map[int]uint64{}
	for name, n := range services {
		before[name] = awaitContainers(first.URL, name)
		procs[name] = workloadProcs(t, cmdline(name))
		if len(procs[name]) != n {
			t.Fatalf("%s: %d host processes %q, want %d: %v", name, len(procs[name]), cmdline(name), n, procs[name])
		}
	}
	// Whatever happens, no instance outlives the test.
	t.Cleanup(func() {
		for name := range services {
			for pid := range workloadProcs(t, cmdline(name)) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	send("before")

	first.kill()
	// The instances run on while Slipway is down; the ingress is down
	// with it.
	for name := range services {
		if now := workloadProcs(t, cmdline(name)); fmt.Sprint(now) != fmt.Sprint(procs[name]) {
			t.Errorf("%s: processes %v after the SIGKILL, want %v", name, now, procs[name])
		}
	}
	if _, _, err := ingressGet(client, addr, hosts["alpha"], "/"); err == nil {
		t.Errorf("the ingress answers while Slipway is down")
	}

	// Again on the same data dir and ingress address.
	second := startSlipway(t, "SLIPWAY_DATA_DIR="+dataDir, "SLIPWAY_INGRESS_ADDR="+addr)
	send("after")
	for name := range services {
		if after := awaitContainers(second.URL, name); fmt.Sprint(after) != fmt.Sprint(before[name]) {
			t.Errorf("%s: containers %v after the restart, want the same as before, %v", name, after, before[name])
		}
		if now := workloadProcs(t, cmdline(name)); fmt.Sprint(now) != fmt.Sprint(procs[name]) {
			t.Errorf("%s: processes %v after the restart, want the same as before, %v", name, now, procs[name])
		}
	}

	// Each request's line, once: the lines of the adopted instances are
	// read on from where the first run stopped.
	for deadline := time.Now().Add(30 * time.Second); ; {
		counts := map[string]int{}
		for name := range services {
			q := url.Values{"lineLimit": {"10000"}, "textIncludes": {nonce}}
			lines, _ := callJSON(t, "GET", svcURL(second.URL, name)+"/logs?"+q.Encode(), "").Body["data"].([]any)
			for _, l := range lines {
				text := l.(map[string]any)["log"].(string)
				if _, path, ok := strings.Cut(text, "url:"); ok {
					counts[name+" "+path]++
				}
			}
		}
		missing, twice := 0, 0
		for _, key := range sent {
			switch counts[key] {
			case 0:
				missing++
			case 1:
			default:
				twice++
				t.Errorf("request %s logged %d times", key, counts[key])
			}
		}
		if len(counts) != len(sent) && missing == 0 {
			t.Errorf("log lines of requests never sent: %v", counts)
		}
		if missing == 0 || twice > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d request lines not in the logs within 30s: %v", missing, len(sent), counts)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if logs := second.out.logsAt("ERROR"); len(logs) > 0 {
		t.Errorf("the restarted Slipway logged errors:\n%s", strings.Join(logs, "\n"))
	}

	// The instances outlive Slipway: the project goes with its services,
	// whose instances stop.
	callJSON(t, "DELETE", second.URL+"/v1/projects/crash-demo?delete_child_objects=true", "").data(t)
	for deadline := time.Now().Add(30 * time.Second); ; {
		left := 0
		for name := range services {
			left += len(workloadProcs(t, cmdline(name)))
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d instances still run 30s after their project was deleted", left)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
