package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ingressGet sends GET path to a service's public port through the
// ingress at addr (127.0.0.1:PORT) with the service's host name: the
// names resolve to loopback in browsers, and here the request goes to
// 127.0.0.1 with the Host header.
func ingressGet(client *http.Client, addr, host, path string) (int, string, error) {
	req, err := http.NewRequest("GET", "http://"+addr+path, nil)
	if err != nil {
		return 0, "", err
	}
	req.Host = host
	res, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, string(b), err
}

// ingressAddr returns the ingress address and host name of a port's URL
// as GET …/ports shows it ("http://p01--web--demo.localhost:8000").
func ingressAddr(t *testing.T, dns string) (addr, host string) {
	t.Helper()
	hostPort, ok := strings.CutPrefix(dns, "http://")
	if !ok {
		t.Fatalf("port URL %q is not http://", dns)
	}
	host, port, ok := strings.Cut(hostPort, ":")
	if !ok {
		t.Fatalf("port URL %q has no port", dns)
	}
	return "127.0.0.1:" + port, host
}

// awaitIngress waits (at most timeout) until GET path through the
// ingress answers 200 with a body that want accepts.
func awaitIngress(t *testing.T, addr, host, path string, timeout time.Duration, want func(string) bool) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(timeout)
	for {
		code, body, err := ingressGet(client, addr, host, path)
		if err == nil && code == http.StatusOK && want(body) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s on %s through the ingress: no expected answer within %s (last: HTTP %d %q, %v)", path, host, timeout, code, body, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// cliStream is a command of the CLI that runs until it is stopped (a
// live log tail), its stdout read line by line.
type cliStream struct {
	cmd   *exec.Cmd
	lines chan string // closed when stdout ends
	done  chan struct{}
	mu    sync.Mutex
	err   strings.Builder
}

// stream starts `northflank args...` in a process group of its own, with
// stdin closed, and returns as soon as it runs. It is stopped (the whole
// group, SIGKILL) at the latest when the test ends.
func (c *northflankCLI) stream(args ...string) *cliStream {
	c.t.Helper()
	cmd := exec.Command("node", append([]string{"--require", c.guard, c.script}, args...)...)
	cmd.Dir = c.home
	cmd.Env = append(baseEnv(), "HOME="+c.home, "NO_COLOR=1", "FORCE_COLOR=0",
		"SLIPWAY_E2E_OFFHOST_LOG="+c.offHostLog())
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	s := &cliStream{cmd: cmd, lines: make(chan string, 1024), done: make(chan struct{})}
	cmd.Stderr = writerFunc(func(p []byte) (int, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.err.Write(p)
	})
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("northflank %s: %v", strings.Join(args, " "), err)
	}
	go func() {
		defer close(s.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
	}()
	go func() {
		_ = cmd.Wait()
		close(s.done)
	}()
	c.t.Cleanup(s.stop)
	return s
}

// stop kills the command's process group and waits for it to exit.
func (s *cliStream) stop() {
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.done
}

// stderr is what the command wrote on stderr so far.
func (s *cliStream) stderr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err.String()
}

// writerFunc is an io.Writer of a function.
type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestNorthflankCLIServices drives the official Northflank CLI through a
// service's life on the process driver, as a user types it: create a
// deployment service (busybox httpd with a public HTTP port and an HTTP
// readiness check) that answers through the ingress by its host name,
// list it, get it, its ports, health checks, deployment and containers,
// scale it, exec into it, tail its logs live until a request sent through
// the ingress shows up, find that line in a filtered range of its logs,
// and delete it.
func TestNorthflankCLIServices(t *testing.T) {
	// The service serves a directory named with a nonce, so that the test
	// finds its processes (startSlipway's cleanup removes them).
	www := "www-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	inst := startSlipway(t)
	cli := newNorthflankCLI(t)
	cli.ok("login", "--token-login", "--token", adminToken, "--host", inst.URL, "--name", "slipway")
	var project struct{ ID string }
	cli.json(&project, "create", "project", "--input", `{"name":"CLI Services"}`)
	if project.ID != "cli-services" {
		t.Fatalf("create project: %+v", project)
	}
	p, s := []string{"--projectId", "cli-services"}, []string{"--projectId", "cli-services", "--serviceId", "web"}
	args := func(a []string, more ...string) []string { return append(append([]string{}, more...), a...) }

	type port struct {
		Name, Protocol, DNS string
		InternalPort        int
		Public              bool
	}
	var created struct {
		ID, ServiceType string
		Deployment      struct{ Instances int }
		Ports           []port
	}
	// httpd -vv logs each request's URL on stderr.
	cli.json(&created, args(p, "create", "service", "deployment", "--input", `{
		"name": "Web", "billing": {"deploymentPlan": "nf-compute-20"},
		"deployment": {"instances": 1, "docker": {"configType": "customCommand",
			"customCommand": "mkdir -p `+www+` && echo hello from the cli > `+www+`/index.html && busybox httpd -f -vv -p $PORT -h `+www+`"}},
		"ports": [{"name": "p01", "internalPort": 8080, "public": true, "protocol": "HTTP"}],
		"healthChecks": [{"protocol": "HTTP", "type": "readinessProbe", "path": "/", "port": 8080,
			"initialDelaySeconds": 0, "periodSeconds": 2, "timeoutSeconds": 1, "failureThreshold": 3}]}`)...)
	if created.ID != "web" || created.ServiceType != "deployment" || created.Deployment.Instances != 1 ||
		len(created.Ports) != 1 || !strings.HasPrefix(created.Ports[0].DNS, "http://p01--web--cli-services.localhost:") {
		t.Fatalf("create service deployment: %+v", created)
	}
	addr, host := ingressAddr(t, created.Ports[0].DNS)
	awaitIngress(t, addr, host, "/", 60*time.Second, func(b string) bool { return b == "hello from the cli\n" })

	// get service: the rollout completes.
	var got struct {
		ID, Name string
		Status   struct {
			Deployment struct{ Status, Reason, Message string }
		}
		Deployment struct {
			Instances int
			Docker    struct{ ConfigType, CustomCommand string }
		}
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		cli.json(&got, args(s, "get", "service")...)
		if got.Status.Deployment.Status == "COMPLETED" {
			break
		}
		if time.Now().After(deadline) || got.Status.Deployment.Status == "FAILED" {
			t.Fatalf("get service: the rollout did not complete: %+v", got)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got.ID != "web" || got.Name != "Web" || got.Deployment.Instances != 1 || got.Deployment.Docker.ConfigType != "customCommand" {
		t.Errorf("get service: %+v", got)
	}
	var ports struct{ Ports []port }
	cli.json(&ports, args(s, "get", "service", "ports")...)
	if len(ports.Ports) != 1 || ports.Ports[0] != created.Ports[0] || ports.Ports[0].InternalPort != 8080 || !ports.Ports[0].Public {
		t.Errorf("get service ports: %+v, want %+v", ports, created.Ports)
	}
	var list struct {
		Services []struct{ ID, ServiceType string }
	}
	cli.json(&list, args(p, "list", "services")...)
	if len(list.Services) != 1 || list.Services[0].ID != "web" || list.Services[0].ServiceType != "deployment" {
		t.Errorf("list services: %+v", list)
	}
	var checks struct {
		HealthChecks []struct {
			Protocol, Type, Path string
			HTTPPort             int `json:"httpPort"`
		}
	}
	cli.json(&checks, args(s, "get", "service", "health-checks")...)
	if len(checks.HealthChecks) != 1 || checks.HealthChecks[0].Type != "readinessProbe" || checks.HealthChecks[0].HTTPPort != 8080 {
		t.Errorf("get service health-checks: %+v", checks)
	}
	var deployment struct {
		Instances int
		Status    struct{ Status string }
		Docker    struct{ CustomCommand string }
	}
	cli.json(&deployment, args(s, "get", "service", "deployment")...)
	if deployment.Instances != 1 || deployment.Status.Status != "COMPLETED" || !strings.Contains(deployment.Docker.CustomCommand, "busybox httpd") {
		t.Errorf("get service deployment: %+v", deployment)
	}
	type container struct {
		Name, Status string
		CreatedAt    float64
		Ready        bool
	}
	var containers struct{ Containers []container }
	cli.json(&containers, args(s, "get", "service", "containers")...)
	if len(containers.Containers) != 1 || containers.Containers[0].Status != "TASK_RUNNING" ||
		!strings.HasPrefix(containers.Containers[0].Name, "web-") || containers.Containers[0].CreatedAt < 1e9 {
		t.Errorf("get service containers: %+v", containers)
	}

	// scale service: a second instance, both ready.
	cli.json(&struct{}{}, args(s, "scale", "service", "--input", `{"instances":2}`)...)
	for deadline := time.Now().Add(60 * time.Second); ; {
		cli.json(&containers, args(s, "get", "service", "containers")...)
		ready := 0
		for _, c := range containers.Containers {
			if c.Ready && c.Status == "TASK_RUNNING" {
				ready++
			}
		}
		if ready == 2 && len(containers.Containers) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("scale service to 2: containers %+v", containers)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// exec service --cmd: the command runs in an instance, with its PORT.
	res := cli.run(args(s, "exec", "service", "--cmd", `sh -c "echo port=$PORT; cat `+www+`/index.html"`)...)
	if res.exitCode != 0 || !strings.Contains(res.stdout, "port=8080") || !strings.Contains(res.stdout, "hello from the cli") ||
		!strings.Contains(res.stdout+res.stderr, "exit code: 0") {
		t.Errorf("exec service: exit %d\nstdout: %s\nstderr: %s", res.exitCode, res.stdout, res.stderr)
	}

	// get service logs --tail: a live tail that prints the line of a
	// request sent through the ingress after it started.
	tail := cli.stream(args(s, "get", "service", "logs", "--tail")...)
	path := fmt.Sprintf("/tail-%d", time.Now().UnixNano())
	client := &http.Client{Timeout: 5 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var seen []string
	for found := false; !found; {
		select {
		case line, ok := <-tail.lines:
			if !ok {
				<-tail.done
				t.Fatalf("the log tail ended: %v\nstdout: %q\nstderr: %s", tail.cmd.ProcessState, seen, tail.stderr())
			}
			seen = append(seen, line)
			found = strings.Contains(line, "url:"+path) && strings.Contains(line, "web-")
		case <-tick.C:
			// Until the tail is connected a request's line might be
			// printed only as history; one every second until it shows.
			if code, _, err := ingressGet(client, addr, host, path); err != nil || code != http.StatusNotFound {
				t.Fatalf("GET %s through the ingress: HTTP %d, %v (want httpd's 404)", path, code, err)
			}
		case <-ctx.Done():
			t.Fatalf("get service logs --tail: no line of the request %s within 60s\nstdout: %q\nstderr: %s", path, seen, tail.stderr())
		}
	}
	tail.stop()
	if e := tail.stderr(); strings.TrimSpace(e) != "" {
		t.Errorf("get service logs --tail wrote on stderr: %s", e)
	}

	// get service logs, a range with a filter: the request's line.
	var lines []struct{ ContainerID, Log string }
	cli.json(&lines, args(s, "get", "service", "logs", "--textIncludes", "url:"+path, "--lineLimit", "1")...)
	if len(lines) != 1 || !strings.HasSuffix(lines[0].Log, "url:"+path) || !strings.HasPrefix(lines[0].ContainerID, "web-") {
		t.Errorf("get service logs --textIncludes: %+v, want the line of %s", lines, path)
	}

	// delete service: gone from the API and from the ingress.
	cli.ok(args(s, "delete", "service", "--force")...)
	if res := cli.run(args(s, "get", "service", "--output", "json")...); res.exitCode == 0 || !strings.Contains(res.stderr, "404") {
		t.Errorf("get service after delete: exit %d, want 404\nstdout: %s\nstderr: %s", res.exitCode, res.stdout, res.stderr)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		code, body, err := ingressGet(client, addr, host, "/")
		if err != nil {
			t.Fatal(err)
		}
		if code == http.StatusNotFound && strings.Contains(body, "ROUTE_NOT_FOUND") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the deleted service still answers: HTTP %d %q", code, body)
		}
		time.Sleep(pollEvery)
	}
	for deadline := time.Now().Add(30 * time.Second); len(workloadProcs(t, "busybox httpd -f -vv -p 8080 -h "+www)) > 0; {
		if time.Now().After(deadline) {
			t.Fatal("the deleted service's instances still run after 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
