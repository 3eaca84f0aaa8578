//go:build linux

package bench

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pkg/testenv"
)

var (
	jobRuns    = flag.Int("bench.runs", 0, "measured job runs per runtime driver, one at a time (0: 100 on the process driver, 30 on the docker driver)")
	jobPoll    = flag.Duration("bench.poll", 2*time.Millisecond, "interval between the GETs that watch a job run (bounds the resolution)")
	jobPlan    = flag.String("bench.plan", "", "deployment plan of the benchmarked job (empty: each driver's choice, see BenchmarkJobRuns)")
	jobSettle  = flag.Bool("bench.settle", true, "start each job run only once the runtime holds no workload (false: back to back, overlapping the removal of the last run's workload)")
	jobMaxTime = flag.Duration("bench.runsmaxtime", 3*time.Minute, "hard cap on one driver's measured job runs; it stops there and reports what it did")
)

// jobWarmup is how many unmeasured runs go before the measured ones (the
// first container or process of a fresh server pays for cold caches).
const jobWarmup = 3

// runTimeout bounds one run, from its POST to its conclusion, and the
// wait for its workload to be removed.
const runTimeout = 60 * time.Second

// BenchmarkJobRuns measures how long a job run of a trivial command
// (`true`) takes to start and to finish, per runtime driver: from just
// before POST /v1/projects/{project}/jobs/{job}/runs until a GET of the run
// shows its attempt running (active == 1, or the run already concluded:
// `true` can finish between two polls), and until it shows status SUCCESS.
// Runs go one at a time, so the figures are latencies, not queueing: after
// a run concluded, the next one starts only once the runtime holds no
// workload any more (the supervisor removes a finished attempt's workload
// after recording it, which takes ~150 ms on Podman and would otherwise
// overlap the next run's start). That wait is not measured;
// -bench.settle=false skips it.
//
// The process driver runs `/bin/sh -c true` as a local process; the docker
// driver runs `true` in testenv's busybox image on a private Podman
// service. Process runs use the default plan (the process driver applies
// no resource limits); docker runs use nf-compute-100-1 (1 CPU), because
// the default plan's 0.1 CPU quota throttles container start-up
// (docs/benchmarks.md has both).
func BenchmarkJobRuns(b *testing.B) {
	trueCommand := `"docker":{"configType":"customCommand","customCommand":"true"}`
	drivers := []struct {
		name string
		runs int
		plan string
		// setup returns the server's extra environment, the job's
		// deployment and how to count the runtime's workloads.
		setup func(b *testing.B) (env []string, deployment string, workloads func(*server) (int, error))
	}{
		{"process", 100, "", func(*testing.B) ([]string, string, func(*server) (int, error)) {
			return []string{"SLIPWAY_RUNTIME_DRIVER=process"}, "{" + trueCommand + "}", processWorkloads
		}},
		{"docker", 30, "nf-compute-100-1", func(b *testing.B) ([]string, string, func(*server) (int, error)) {
			host := testenv.Podman(b)
			image := testenv.BuildTestImage(b, host)
			return []string{"SLIPWAY_RUNTIME_DRIVER=docker", "SLIPWAY_DOCKER_HOST=" + host},
				fmt.Sprintf(`{"external":{"imagePath":%q},%s}`, image, trueCommand),
				podmanWorkloads(host)
		}},
	}
	for _, d := range drivers {
		b.Run(d.name, func(b *testing.B) {
			env, deployment, workloads := d.setup(b)
			srv := startServer(b, "", env...)
			plan := d.plan
			if *jobPlan != "" {
				plan = *jobPlan
			}
			runs := srv.createJob(b, deployment, plan)
			n := d.runs
			if *jobRuns > 0 {
				n = *jobRuns
			}
			settle := func() error { return waitIdle(srv, workloads) }
			for i := range jobWarmup {
				if _, err := srv.timeRun(runs); err != nil {
					b.Fatalf("warm-up run %d: %v", i+1, err)
				}
				if err := settle(); err != nil {
					b.Fatalf("warm-up run %d: %v", i+1, err)
				}
			}

			b.ResetTimer()
			var (
				posted, running, success []time.Duration
				sawActive                int
				errs                     []error
			)
			start := time.Now()
			for range n {
				if time.Since(start) > *jobMaxTime {
					b.Logf("stopped at the %v cap after %d of %d runs", *jobMaxTime, len(success)+len(errs), n)
					break
				}
				t, err := srv.timeRun(runs)
				b.StopTimer()
				if err == nil {
					err = settle()
				}
				b.StartTimer()
				if err != nil {
					errs = append(errs, err)
					continue
				}
				posted = append(posted, t.posted)
				running, success = append(running, t.running), append(success, t.success)
				if t.sawActive {
					sawActive++
				}
			}
			b.StopTimer()

			b.ReportMetric(float64(len(success)), "runs")
			b.ReportMetric(ms(percentile(posted, 50)), "post-p50-ms")
			b.ReportMetric(ms(percentile(running, 50)), "running-p50-ms")
			b.ReportMetric(ms(percentile(running, 99)), "running-p99-ms")
			b.ReportMetric(ms(percentile(success, 50)), "success-p50-ms")
			b.ReportMetric(ms(percentile(success, 99)), "success-p99-ms")
			b.ReportMetric(float64(sawActive), "seen-active")
			b.ReportMetric(float64(len(errs)), "errors")
			if len(errs) > 0 {
				b.Fatalf("%d of %d runs failed; first: %v", len(errs), len(errs)+len(success), errs[0])
			}
		})
	}
}

// createJob creates a project and in it a manual job with deployment (and
// plan, unless empty), and returns the path of the job's runs.
func (s *server) createJob(b *testing.B, deployment, plan string) string {
	var project struct{ Data struct{ ID string } }
	if err := s.call("POST", "/v1/projects", `{"name":"Job bench"}`, &project); err != nil {
		b.Fatalf("create project: %v", err)
	}
	billing := ""
	if plan != "" {
		billing = fmt.Sprintf(`"billing":{"deploymentPlan":%q},`, plan)
	}
	var job struct{ Data struct{ ID string } }
	body := fmt.Sprintf(`{"name":"Bench true",%s"deployment":%s}`, billing, deployment)
	if err := s.call("POST", "/v1/projects/"+project.Data.ID+"/jobs/manual", body, &job); err != nil {
		b.Fatalf("create job: %v", err)
	}
	if project.Data.ID == "" || job.Data.ID == "" {
		b.Fatalf("no id in the responses: project %q, job %q", project.Data.ID, job.Data.ID)
	}
	return "/v1/projects/" + project.Data.ID + "/jobs/" + job.Data.ID + "/runs"
}

// jobRun is what the benchmark reads of a run.
type jobRun struct {
	ID        string `json:"id"`
	Status    string `json:"status"`
	Active    int32  `json:"active"`
	Concluded bool   `json:"concluded"`
	Reason    string `json:"reason"`
	ExitCode  *int32 `json:"exitCode"`
}

// runTiming is one run's latencies, all from just before its POST: to its
// answer, and to the answer of the first GET that showed the state.
type runTiming struct {
	posted    time.Duration // the POST answered
	running   time.Duration // active == 1, or already concluded
	success   time.Duration // status SUCCESS
	sawActive bool          // a GET showed active == 1 (not only the conclusion)
}

// timeRun starts a run at runs (the path of a job's runs) and polls it
// every *jobPoll (back to back when a GET takes longer) until it
// concludes; anything but SUCCESS within runTimeout is an error.
func (s *server) timeRun(runs string) (runTiming, error) {
	var t runTiming
	t0 := time.Now()
	var created struct{ Data jobRun }
	if err := s.call("POST", runs, "{}", &created); err != nil {
		return t, err
	}
	t.posted = time.Since(t0)
	if created.Data.ID == "" {
		return t, fmt.Errorf("POST %s: no run id in the response", runs)
	}
	tick := time.NewTicker(*jobPoll)
	defer tick.Stop()
	for {
		var got struct{ Data jobRun }
		if err := s.call("GET", runs+"/"+created.Data.ID, "", &got); err != nil {
			return t, err
		}
		elapsed := time.Since(t0)
		r := got.Data
		if t.running == 0 && (r.Active == 1 || r.Concluded) {
			t.running, t.sawActive = elapsed, r.Active == 1
		}
		if r.Concluded {
			if r.Status != "SUCCESS" {
				out, _ := json.Marshal(r)
				return t, fmt.Errorf("run ended %s: %s", r.Status, out)
			}
			t.success = elapsed
			return t, nil
		}
		if elapsed > runTimeout {
			return t, fmt.Errorf("run %s not concluded after %v", created.Data.ID, runTimeout)
		}
		<-tick.C
	}
}

// waitIdle waits until the runtime holds no workload (the last run's was
// removed), polling every millisecond; with -bench.settle=false it returns
// at once.
func waitIdle(srv *server, workloads func(*server) (int, error)) error {
	if !*jobSettle {
		return nil
	}
	deadline := time.Now().Add(runTimeout)
	for {
		n, err := workloads(srv)
		if err != nil {
			return fmt.Errorf("counting workloads: %w", err)
		}
		if n == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d workloads still there %v after the run", n, runTimeout)
		}
		time.Sleep(time.Millisecond)
	}
}

// processWorkloads counts the process driver's workloads: the directories
// in the runtime state directory (SLIPWAY_DATA_DIR/runtime) whose names
// are not hidden (workloads being made are).
func processWorkloads(srv *server) (int, error) {
	ents, err := os.ReadDir(filepath.Join(srv.dataDir, "runtime"))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range ents {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			n++
		}
	}
	return n, nil
}

// podmanWorkloads counts the containers of the Podman service at host
// (unix://...), stopped ones included, through its Docker API.
func podmanWorkloads(host string) func(*server) (int, error) {
	sock := strings.TrimPrefix(host, "unix://")
	client := &http.Client{Timeout: requestTimeout, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
	return func(*server) (int, error) {
		resp, err := client.Get("http://podman/containers/json?all=true")
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return 0, fmt.Errorf("GET /containers/json: %s", resp.Status)
		}
		var list []json.RawMessage
		if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
			return 0, err
		}
		return len(list), nil
	}
}
