//go:build linux

// Package bench load-tests the real slipway binary over HTTP, once with the
// projects database on SQLite and once on PostgreSQL.
//
// Run it with
//
//	go test ./bench -run '^$' -bench . -benchtime 1x -count 1 -timeout 20m
//
// (`make bench`). Each benchmark sends a fixed number of requests
// (-bench.requests) from a fixed number of concurrent workers
// (-bench.workers), stopping early at a hard time cap (-bench.maxtime); the
// amount of load never depends on b.N, so -benchtime 1x runs it exactly
// once. Results are reported as custom metrics: req/s, p50-ms, p99-ms,
// requests (completed) and errors (must be 0). ns/op is the wall time of
// the whole measured load. docs/benchmarks.md records a run.
//
// BenchmarkJobRuns (jobs_test.go) measures instead how long one job run
// takes to start and to finish, per runtime driver (process, and docker on
// a private Podman service, which needs podman, runc and busybox-static).
//
// BenchmarkAddonCreate and BenchmarkAddonDump (addons_test.go) measure an
// addon's start per type and driver, and a PostgreSQL dump backup and
// restore against pg_dump and pg_restore run by hand.
//
// The package is Linux-only because the server is started with a
// parent-death signal, so that a killed benchmark cannot leak it.
//
// Traffic only ever goes to 127.0.0.1.
package bench

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pkg/runtime/process"
	"github.com/slipwayhq/slipway/pkg/testenv"
)

var (
	workers  = flag.Int("bench.workers", 8, "concurrent workers sending requests")
	requests = flag.Int("bench.requests", 3000, "measured requests per benchmark")
	warmup   = flag.Int("bench.warmup", 200, "unmeasured warm-up requests before each benchmark")
	maxTime  = flag.Duration("bench.maxtime", 30*time.Second, "hard cap on one measured load; it stops there and reports what it did")
)

// seedProjects is how many projects exist before anything is measured.
const seedProjects = 200

// requestTimeout bounds a single request, so that the time cap plus this is
// the longest a load can take.
const requestTimeout = 10 * time.Second

// binary is the slipway binary built by TestMain.
var binary string

// benchToken is the preset admin token of the benchmarked instances.
const benchToken = "bench-bootstrap-admin-token-0123456789abcdef"

// TestMain builds the slipway binary once (only when benchmarks were asked
// for, so that `go test ./...` stays fast) and hands over to testenv.Main,
// which stops the shared PostgreSQL server at the end.
//
// The binary goes next to the test binary, i.e. into the go command's
// temporary work directory, which `go test` removes when it finishes:
// testenv.Main exits the process, so TestMain gets no chance to clean up a
// directory of its own.
func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.bench"); f != nil && f.Value.String() != "" {
		exe, err := os.Executable()
		if err == nil {
			binary = filepath.Join(filepath.Dir(exe), "slipway")
			out, buildErr := exec.Command("go", "build", "-o", binary, "github.com/slipwayhq/slipway/cmd/slipway").CombinedOutput()
			if buildErr != nil {
				err = fmt.Errorf("%v\n%s", buildErr, out)
			}
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench: build slipway:", err)
			os.Exit(1)
		}
	}
	testenv.Main(m)
}

// BenchmarkAPI measures the REST API per database engine: get one project,
// list the default page, and create projects.
func BenchmarkAPI(b *testing.B) {
	engines := []struct {
		name        string
		databaseURL func(b *testing.B) string // "" selects SQLite
	}{
		{"sqlite", func(*testing.B) string { return "" }},
		{"postgres", func(b *testing.B) string { return testenv.Postgres(b) }},
	}
	for _, engine := range engines {
		b.Run(engine.name, func(b *testing.B) {
			srv := startServer(b, engine.databaseURL(b))
			ids := seed(b, srv)
			var created atomic.Int64 // unique names across warm-up and measured creates
			b.Run("get", func(b *testing.B) {
				measure(b, func() error {
					return srv.call("GET", "/v1/projects/"+ids[rand.IntN(len(ids))], "", nil)
				})
			})
			b.Run("list", func(b *testing.B) {
				measure(b, func() error { return srv.call("GET", "/v1/projects", "", nil) })
			})
			b.Run("create", func(b *testing.B) {
				measure(b, func() error {
					return srv.call("POST", "/v1/projects", fmt.Sprintf(`{"name":"Load %d"}`, created.Add(1)), nil)
				})
			})
		})
	}
}

// seed creates seedProjects projects and returns their ids.
func seed(b *testing.B, srv *server) []string {
	ids := make([]string, 0, seedProjects)
	for i := range seedProjects {
		var resp struct{ Data struct{ ID string } }
		if err := srv.call("POST", "/v1/projects", fmt.Sprintf(`{"name":"Seed %03d"}`, i), &resp); err != nil {
			b.Fatalf("seed project %d: %v", i, err)
		}
		if resp.Data.ID == "" {
			b.Fatalf("seed project %d: no id in the response", i)
		}
		ids = append(ids, resp.Data.ID)
	}
	return ids
}

// measure runs an unmeasured warm-up and then the measured load of send,
// and reports its metrics. Any failed request fails the benchmark.
func measure(b *testing.B, send func() error) {
	if r := runLoad(*warmup, send); r.errors > 0 {
		b.Fatalf("warm-up: %d of %d requests failed; first: %v", r.errors, len(r.latencies), r.firstErr)
	}
	b.ResetTimer()
	r := runLoad(*requests, send)
	b.StopTimer()

	n := len(r.latencies)
	b.ReportMetric(float64(n), "requests")
	b.ReportMetric(float64(n)/r.elapsed.Seconds(), "req/s")
	b.ReportMetric(ms(percentile(r.latencies, 50)), "p50-ms")
	b.ReportMetric(ms(percentile(r.latencies, 99)), "p99-ms")
	b.ReportMetric(float64(r.errors), "errors")
	if n < *requests {
		b.Logf("stopped at the %v cap after %d of %d requests", *maxTime, n, *requests)
	}
	if r.errors > 0 {
		b.Fatalf("%d of %d requests failed; first: %v", r.errors, n, r.firstErr)
	}
}

// loadResult is what one load did.
type loadResult struct {
	latencies []time.Duration // one per completed request, failed ones included
	errors    int
	firstErr  error
	elapsed   time.Duration // from the first request sent to the last one answered
}

// runLoad has *workers goroutines send up to n requests between them, one
// at a time each. It stops issuing requests once *maxTime has passed;
// requests already in flight then finish (within requestTimeout) and count.
func runLoad(n int, send func() error) loadResult {
	var (
		mu     sync.Mutex
		result loadResult
		next   atomic.Int64
		wg     sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(*maxTime)
	for range *workers {
		wg.Go(func() {
			var lat []time.Duration
			var errs []error
			for next.Add(1) <= int64(n) && time.Now().Before(deadline) {
				t0 := time.Now()
				err := send()
				lat = append(lat, time.Since(t0))
				if err != nil {
					errs = append(errs, err)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			result.latencies = append(result.latencies, lat...)
			result.errors += len(errs)
			if result.firstErr == nil && len(errs) > 0 {
				result.firstErr = errs[0]
			}
		})
	}
	wg.Wait()
	result.elapsed = time.Since(start)
	return result
}

// percentile returns the nearest-rank p-th percentile of d (sorting d).
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	rank := int(math.Ceil(p / 100 * float64(len(d))))
	return d[max(rank, 1)-1]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// server is a running `slipway serve` with its own data directory and
// database, reached through one keep-alive HTTP client.
type server struct {
	url     string
	client  *http.Client
	logPath string
	dataDir string // SLIPWAY_DATA_DIR
	ingress string // SLIPWAY_INGRESS_ADDR, host:port
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited
}

// startServer starts slipway on free loopback ports and waits until
// /health answers 200; env (KEY=value) is added to its configuration. A
// free port can be taken by someone else before slipway binds it, so a
// start that fails that way is retried.
func startServer(b *testing.B, databaseURL string, env ...string) *server {
	for attempt := 1; ; attempt++ {
		srv, err := tryStartServer(b, databaseURL, env)
		if err == nil {
			return srv
		}
		if attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			b.Fatalf("start slipway: %v", err)
		}
	}
}

func tryStartServer(b *testing.B, databaseURL string, env []string) (*server, error) {
	httpAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(b))
	grpcAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(b))
	ingressAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(b))
	logPath := filepath.Join(b.TempDir(), "slipway.log")
	dataDir := b.TempDir()
	// Registered before the server's own cleanup, so it runs once the
	// server has stopped: services' instances and addons' servers outlive
	// it by design.
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, sub := range []string{"services", "runtime"} {
			_ = process.RemoveAll(ctx, filepath.Join(dataDir, sub))
		}
	})
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child has its own descriptor

	cmd := exec.Command(binary, "serve")
	cmd.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "SLIPWAY_") }),
		"SLIPWAY_HTTP_ADDR="+httpAddr,
		"SLIPWAY_GRPC_ADDR="+grpcAddr,
		// The services' ingress listens apart; not on the default port,
		// which another server (or a developer's Slipway) may hold.
		"SLIPWAY_INGRESS_ADDR="+ingressAddr,
		"SLIPWAY_DATA_DIR="+dataDir,
		"SLIPWAY_PROJECTS_DATABASE_URL="+databaseURL,
		"SLIPWAY_LOG_LEVEL=warn", // a log line per request would distort the numbers
		"SLIPWAY_BOOTSTRAP_TOKEN="+benchToken,
		"SLIPWAY_RATE_LIMIT_PER_HOUR=100000000", // measure the API, not the quota's refusals
	)
	cmd.Env = append(cmd.Env, env...) // later entries win
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}

	srv := &server{
		url:     "http://" + httpAddr,
		logPath: logPath,
		dataDir: dataDir,
		ingress: ingressAddr,
		cmd:     cmd,
		done:    make(chan struct{}),
		client: &http.Client{
			Timeout: requestTimeout,
			Transport: &http.Transport{
				MaxIdleConns:        *workers + 1,
				MaxIdleConnsPerHost: *workers + 1, // keep every worker's connection alive
			},
		},
	}
	// The parent-death signal fires when the thread that forked the child
	// exits, so fork from a locked thread that lives as long as the child.
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = cmd.Wait()
		close(srv.done)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	b.Cleanup(func() { srv.stop(b) })

	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := srv.client.Get(srv.url + "/health")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return srv, nil
			}
		}
		select {
		case <-srv.done:
			return nil, fmt.Errorf("slipway exited during start-up:\n%s", srv.logTail())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("slipway not ready after 60s:\n%s", srv.logTail())
		}
	}
}

// stopGrace is how long slipway gets to exit after SIGTERM before it is
// killed.
const stopGrace = 5 * time.Second

// stop shuts slipway down with SIGTERM, and kills it if it has not exited
// within stopGrace (which is noted in the benchmark log).
func (s *server) stop(b *testing.B) {
	s.client.CloseIdleConnections()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(stopGrace):
		b.Logf("slipway did not exit within %v of SIGTERM; killed it", stopGrace)
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// call sends one request and fails unless the answer is 200. If out is not
// nil, the response body is decoded into it; otherwise it is discarded
// (read to the end so the connection is reused).
func (s *server) call(method, path, body string, out any) error {
	req, err := http.NewRequest(method, s.url+path, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+benchToken)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, msg)
	}
	if out != nil {
		return json.NewDecoder(resp.Body).Decode(out)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

// logTail returns the end of slipway's output, for start-up failures.
func (s *server) logTail() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return err.Error()
	}
	if len(b) > 4096 {
		b = b[len(b)-4096:]
	}
	return string(b)
}
