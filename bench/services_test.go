//go:build linux

package bench

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pkg/testenv"
)

var (
	svcDeploys  = flag.Int("bench.svcdeploys", 3, "services created (deploy → first ready instance) per runtime driver")
	svcRollouts = flag.Int("bench.svcrollouts", 3, "rollouts measured per instance count (1 and 3) per runtime driver")
	svcRequests = flag.Int("bench.svcrequests", 2000, "requests per side (ingress, direct) of the ingress overhead measurement")
	svcProfile  = flag.String("bench.svcprofile", "", "directory to write the server's CPU profile of the ingress overhead measurement to, per driver (<driver>.pprof; empty: none)")
)

// svcTimeout bounds one deploy or rollout.
const svcTimeout = 2 * time.Minute

// svcPoll is the interval between the checks that watch a deploy or a
// rollout (it bounds the resolution).
const svcPoll = 5 * time.Millisecond

// BenchmarkServices measures services per runtime driver (process, and
// docker on a private Podman service with testenv's busybox image):
//
//   - deploy → first ready instance: from just before POST …/services/
//     deployment (1 instance of busybox httpd with an HTTP readiness check)
//     until GET / through the ingress (127.0.0.1, Host
//     p01--<service>--<project>.localhost) answers 200;
//   - rollout time with 1 and with 3 instances: from just before POST
//     …/deployment (a new command: the page says the new version) until
//     GET …/deployment shows COMPLETED and the ingress serves the new
//     version;
//   - the ingress overhead: GET / through the ingress against GET /
//     straight to the instance's port published on 127.0.0.1 (the process
//     driver's spec.json, or the engine's list of containers), each over
//     its own kept-alive connection, interleaved request by request (the
//     order alternating), -bench.svcrequests of each after 200 unmeasured
//     ones; p50, p90 and p99 of each and their ratio.
//
// The docker driver's services use nf-compute-100-1 (1 CPU), as its jobs
// do (BenchmarkJobRuns); process services use the default plan.
func BenchmarkServices(b *testing.B) {
	drivers := []struct {
		name  string
		plan  string
		setup func(b *testing.B) (env []string, image string, direct func(*server) (string, error))
	}{
		{"process", "", func(*testing.B) ([]string, string, func(*server) (string, error)) {
			return []string{"SLIPWAY_RUNTIME_DRIVER=process"}, "", processDirect
		}},
		{"docker", "nf-compute-100-1", func(b *testing.B) ([]string, string, func(*server) (string, error)) {
			host := testenv.Podman(b)
			image := testenv.BuildTestImage(b, host)
			return []string{"SLIPWAY_RUNTIME_DRIVER=docker", "SLIPWAY_DOCKER_HOST=" + host}, image, podmanDirect(host)
		}},
	}
	for _, d := range drivers {
		b.Run(d.name, func(b *testing.B) {
			env, image, direct := d.setup(b)
			debugAddr := ""
			if *svcProfile != "" {
				debugAddr = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(b))
				env = append(env, "SLIPWAY_DEBUG_ADDR="+debugAddr)
			}
			srv := startServer(b, "", env...)
			var project struct{ Data struct{ ID string } }
			if err := srv.call("POST", "/v1/projects", `{"name":"Service bench"}`, &project); err != nil {
				b.Fatalf("create project: %v", err)
			}
			p := project.Data.ID
			b.ResetTimer()

			// Deploy → first ready instance, on fresh services.
			var firstReady []time.Duration
			for i := range *svcDeploys {
				name := fmt.Sprintf("first%d", i)
				t0 := time.Now()
				if err := srv.call("POST", "/v1/projects/"+p+"/services/deployment", svcBody(name, d.plan, image, "v0"), nil); err != nil {
					b.Fatalf("create service: %v", err)
				}
				ing := ingressGetter(srv, name, p)
				if err := waitFor(func() (bool, error) { body, err := ing(); return err == nil && body == "v0", nil }); err != nil {
					b.Fatalf("service %s: %v\n%s", name, err, srv.logTail())
				}
				firstReady = append(firstReady, time.Since(t0))
				if i < *svcDeploys-1 {
					if err := srv.call("DELETE", "/v1/projects/"+p+"/services/"+name, "", nil); err != nil {
						b.Fatalf("delete service: %v", err)
					}
				}
			}
			b.ReportMetric(ms(percentile(firstReady, 50)), "first-ready-p50-ms")
			b.ReportMetric(ms(percentile(firstReady, 100)), "first-ready-max-ms")
			name := fmt.Sprintf("first%d", *svcDeploys-1)
			svc := "/v1/projects/" + p + "/services/" + name
			ing := ingressGetter(srv, name, p)
			if err := waitCompleted(srv, svc); err != nil {
				b.Fatal(err)
			}

			// The ingress overhead, on the one instance.
			b.StopTimer()
			addr, err := direct(srv)
			if err != nil {
				b.Fatalf("the instance's published port: %v", err)
			}
			profiled := make(chan error, 1)
			if debugAddr != "" {
				go func() { profiled <- cpuProfile(debugAddr, filepath.Join(*svcProfile, d.name+".pprof")) }()
			}
			via, straight, err := overhead(srv, name, p, addr, *svcRequests)
			if err != nil {
				b.Fatal(err)
			}
			if debugAddr != "" {
				if err := <-profiled; err != nil {
					b.Fatalf("CPU profile: %v", err)
				}
			}
			for _, q := range []float64{50, 90, 99} {
				b.ReportMetric(float64(percentile(via, q).Microseconds()), fmt.Sprintf("ingress-p%.0f-µs", q))
				b.ReportMetric(float64(percentile(straight, q).Microseconds()), fmt.Sprintf("direct-p%.0f-µs", q))
			}
			b.ReportMetric(float64(percentile(via, 50))/float64(percentile(straight, 50)), "ratio-p50")
			b.ReportMetric(float64(percentile(via, 99))/float64(percentile(straight, 99)), "ratio-p99")
			b.StartTimer()

			// Rollouts with 1, then 3 instances.
			version := 0
			for _, n := range []int{1, 3} {
				if n != 1 {
					if err := srv.call("POST", svc+"/scale", fmt.Sprintf(`{"instances":%d}`, n), nil); err != nil {
						b.Fatal(err)
					}
					if err := waitContainers(srv, svc, n); err != nil {
						b.Fatal(err)
					}
				}
				var rollouts []time.Duration
				for range *svcRollouts {
					version++
					v := fmt.Sprintf("v%d", version)
					t0 := time.Now()
					if err := srv.call("POST", svc+"/deployment", svcDeployment(image, v), nil); err != nil {
						b.Fatal(err)
					}
					served := false
					err := waitFor(func() (bool, error) {
						if !served {
							body, err := ing()
							served = err == nil && body == v
						}
						if !served {
							return false, nil
						}
						st, err := deploymentStatus(srv, svc)
						if st == "FAILED" {
							return false, fmt.Errorf("rollout to %s FAILED", v)
						}
						return st == "COMPLETED", err
					})
					if err != nil {
						b.Fatalf("rollout to %s with %d instances: %v\n%s", v, n, err, srv.logTail())
					}
					rollouts = append(rollouts, time.Since(t0))
				}
				b.ReportMetric(ms(percentile(rollouts, 50)), fmt.Sprintf("rollout-%d-p50-ms", n))
				b.ReportMetric(ms(percentile(rollouts, 100)), fmt.Sprintf("rollout-%d-max-ms", n))
			}
			b.StopTimer()
		})
	}
}

// svcCommand serves version with busybox httpd on $PORT. The docker
// driver splits a command into words (hence sh -c) and the process
// driver runs it with sh -c (where httpd is not on PATH, hence busybox
// httpd). sh is PID 1 and ends on SIGTERM: httpd as PID 1 would ignore it
// and every old instance would take the whole grace period to stop.
func svcCommand(version string) string {
	return fmt.Sprintf(`sh -c 'trap "exit 0" TERM; mkdir -p /tmp/www; echo %s > /tmp/www/index.html; busybox httpd -f -p $PORT -h /tmp/www & wait'`, version)
}

// svcDeployment is the deployment of version: image (unless empty) with
// svcCommand.
func svcDeployment(image, version string) string {
	ext := ""
	if image != "" {
		ext = fmt.Sprintf(`"external":{"imagePath":%q},`, image)
	}
	return fmt.Sprintf(`{%s"docker":{"configType":"customCommand","customCommand":%q}}`, ext, svcCommand(version))
}

// svcBody is a new service name with one instance of version, a public
// HTTP port and an HTTP readiness check.
func svcBody(name, plan, image, version string) string {
	billing := ""
	if plan != "" {
		billing = fmt.Sprintf(`"billing":{"deploymentPlan":%q},`, plan)
	}
	dep := svcDeployment(image, version)
	return fmt.Sprintf(`{"name":%q,%s"deployment":{"instances":1,%s},
		"ports":[{"name":"p01","internalPort":8080,"public":true,"protocol":"HTTP"}],
		"healthChecks":[{"protocol":"HTTP","type":"readinessProbe","path":"/","port":8080,
			"initialDelaySeconds":0,"periodSeconds":2,"timeoutSeconds":1,"failureThreshold":3}]}`,
		name, billing, dep[1:len(dep)-1])
}

// ingressGetter returns a GET / of the service through srv's ingress; it
// answers the trimmed body of a 200 (an error otherwise).
func ingressGetter(srv *server, service, project string) func() (string, error) {
	client := &http.Client{Timeout: requestTimeout}
	host := "p01--" + service + "--" + project + ".localhost"
	return func() (string, error) {
		req, _ := http.NewRequest("GET", "http://"+srv.ingress+"/", nil)
		req.Host = host
		res, err := client.Do(req)
		if err != nil {
			return "", err
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		if err != nil {
			return "", err
		}
		if res.StatusCode != http.StatusOK {
			return "", fmt.Errorf("HTTP %d", res.StatusCode)
		}
		return strings.TrimSpace(string(body)), nil
	}
}

// waitFor calls done every svcPoll until it answers true or an error, for
// at most svcTimeout.
func waitFor(done func() (bool, error)) error {
	deadline := time.Now().Add(svcTimeout)
	for {
		ok, err := done()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not done within %v", svcTimeout)
		}
		time.Sleep(svcPoll)
	}
}

// deploymentStatus is the status GET …/deployment shows.
func deploymentStatus(srv *server, svc string) (string, error) {
	var d struct {
		Data struct {
			Status struct{ Status string }
		}
	}
	err := srv.call("GET", svc+"/deployment", "", &d)
	return d.Data.Status.Status, err
}

func waitCompleted(srv *server, svc string) error {
	return waitFor(func() (bool, error) {
		st, err := deploymentStatus(srv, svc)
		return st == "COMPLETED", err
	})
}

// waitContainers waits until the service's deployment is COMPLETED with n
// running containers.
func waitContainers(srv *server, svc string, n int) error {
	return waitFor(func() (bool, error) {
		var c struct {
			Data struct {
				Containers []struct{ Status string }
			}
		}
		if err := srv.call("GET", svc+"/containers", "", &c); err != nil {
			return false, err
		}
		running := 0
		for _, x := range c.Data.Containers {
			if x.Status == "TASK_RUNNING" {
				running++
			}
		}
		st, err := deploymentStatus(srv, svc)
		return running == n && len(c.Data.Containers) == n && st == "COMPLETED", err
	})
}

// overhead sends n GET / through the ingress and n straight to addr,
// interleaved, each side over its own kept-alive connection, after 200
// unmeasured of each, and returns the latencies.
func overhead(srv *server, service, project, addr string, n int) (via, straight []time.Duration, err error) {
	host := "p01--" + service + "--" + project + ".localhost"
	newClient := func() *http.Client {
		return &http.Client{Timeout: requestTimeout, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	}
	ingClient, directClient := newClient(), newClient()
	defer ingClient.CloseIdleConnections()
	defer directClient.CloseIdleConnections()
	get := func(c *http.Client, target, host string) (time.Duration, error) {
		req, _ := http.NewRequest("GET", "http://"+target+"/", nil)
		if host != "" {
			req.Host = host
		}
		t0 := time.Now()
		res, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		_, err = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		d := time.Since(t0)
		if err == nil && res.StatusCode != http.StatusOK {
			err = fmt.Errorf("GET %s (Host %q): HTTP %d", target, host, res.StatusCode)
		}
		return d, err
	}
	const warmup = 200
	for i := range warmup + n {
		var dv, ds time.Duration
		if i%2 == 0 {
			if dv, err = get(ingClient, srv.ingress, host); err == nil {
				ds, err = get(directClient, addr, "")
			}
		} else {
			if ds, err = get(directClient, addr, ""); err == nil {
				dv, err = get(ingClient, srv.ingress, host)
			}
		}
		if err != nil {
			return nil, nil, err
		}
		if i >= warmup {
			via, straight = append(via, dv), append(straight, ds)
		}
	}
	return via, straight, nil
}

// cpuProfile writes the CPU profile of the next two seconds of the server
// whose profiler listens at addr to path (the measurement of the ingress
// overhead takes longer: the profile covers its start).
func cpuProfile(addr, path string) error {
	res, err := http.Get("http://" + addr + "/debug/pprof/profile?seconds=2")
	if err != nil {
		return err
	}
	defer res.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, res.Body)
	return err
}

// processDirect finds the host port of the process driver's one service
// workload with a port, in its spec.json under <data dir>/services.
func processDirect(srv *server) (string, error) {
	var found []string
	err := filepath.WalkDir(filepath.Join(srv.dataDir, "services"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "spec.json" {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var spec struct {
			Ports []struct{ Host int } `json:"ports"`
		}
		if err := json.Unmarshal(b, &spec); err != nil {
			return err
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(path), "exit")); err == nil {
			return nil // finished
		}
		for _, p := range spec.Ports {
			found = append(found, fmt.Sprintf("127.0.0.1:%d", p.Host))
		}
		return nil
	})
	if err == nil && len(found) != 1 {
		err = fmt.Errorf("%d published ports of running workloads, want 1: %v", len(found), found)
	}
	if err != nil {
		return "", err
	}
	return found[0], nil
}

// podmanDirect finds the 127.0.0.1 port of the one running container of
// the Podman service at host, in the engine's list.
func podmanDirect(host string) func(*server) (string, error) {
	sock := strings.TrimPrefix(host, "unix://")
	client := &http.Client{Timeout: requestTimeout, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
	return func(*server) (string, error) {
		filters, _ := json.Marshal(map[string][]string{"label": {"dev.slipway.managed=true"}, "status": {"running"}})
		resp, err := client.Get("http://podman/containers/json?filters=" + url.QueryEscape(string(filters)))
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		var list []struct {
			Ports []struct {
				IP         string
				PublicPort int
			}
		}
		if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
			return "", err
		}
		if len(list) != 1 || len(list[0].Ports) != 1 || list[0].Ports[0].IP != "127.0.0.1" {
			return "", fmt.Errorf("want 1 running container with 1 port on 127.0.0.1: %+v", list)
		}
		return fmt.Sprintf("127.0.0.1:%d", list[0].Ports[0].PublicPort), nil
	}
}
