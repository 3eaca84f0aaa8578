package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipwayhq/slipway/pkg/runtime/process"
	"github.com/slipwayhq/slipway/pkg/testenv"
)

const (
	// readyTimeout bounds how long a started Slipway may take to answer
	// GET /health with 200.
	readyTimeout = 30 * time.Second
	// stopGrace is how long Slipway gets to exit after SIGTERM before it is
	// killed, when a test stops it explicitly and checks the exit.
	stopGrace = 15 * time.Second
	// cleanupGrace is the same at the end of a test, where a slow or
	// unclean exit is only logged (TestGracefulShutdown checks it).
	cleanupGrace = 5 * time.Second
	// jsSuiteTimeout bounds one run of the JS client suite.
	jsSuiteTimeout = 5 * time.Minute
)

// slipwayBin is the binary built once by TestMain; buildErr is why it could
// not be built, reported by every test that needs it.
var (
	slipwayBin string
	buildErr   error
)

// adminToken is the preset first admin token (SLIPWAY_BOOTSTRAP_TOKEN) of
// every instance the tests start.
const adminToken = "e2e-bootstrap-admin-token-0123456789abcdef"

// internalKey is the shared internal key of components run apart.
const internalKey = "e2e-internal-key-0123456789abcdef0123"

func TestMain(m *testing.M) {
	dir, err := binDir()
	if err == nil {
		slipwayBin = filepath.Join(dir, "slipway")
		buildErr = buildSlipway(slipwayBin)
	} else {
		buildErr = err
	}
	// Main runs the tests and stops the shared PostgreSQL server. It calls
	// os.Exit, so the binary's dir is removed by the next run's sweep (see
	// binDir), not here.
	testenv.Main(m)
}

// binDirPattern names the temp dirs the binary is built into.
const binDirPattern = "slipway-e2e-bin-*"

// binDir creates a temp dir for the binary and keeps it flock'ed for the life
// of this test process. testenv.Main exits the process, so the dir cannot be
// removed at the end; instead each run first removes the dirs of earlier runs,
// recognised by their lock being free (the kernel drops it when its owner
// exits, however it exits), and never touches those of concurrent runs.
func binDir() (string, error) {
	stale, _ := filepath.Glob(filepath.Join(os.TempDir(), binDirPattern))
	for _, d := range stale {
		f, err := os.OpenFile(filepath.Join(d, "owner.lock"), os.O_RDWR, 0)
		if err != nil {
			continue // being set up right now, or not ours
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			_ = os.RemoveAll(d)
		}
		f.Close()
	}
	dir, err := os.MkdirTemp("", binDirPattern)
	if err != nil {
		return "", err
	}
	lock, err := os.OpenFile(filepath.Join(dir, "owner.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", err
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return "", err
	}
	binDirLock = lock // must stay reachable: its finalizer would unlock it
	return dir, nil
}

// binDirLock is binDir's lock, held open until the process exits.
var binDirLock *os.File

// buildSlipway builds ./cmd/slipway of this module into bin.
func buildSlipway(bin string) error {
	// go test puts its own GOROOT/bin first on the test binary's PATH.
	goCmd, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("build the slipway binary: %w", err)
	}
	start := time.Now()
	cmd := exec.Command(goCmd, "build", "-o", bin, "./cmd/slipway")
	cmd.Dir = ".." // the module root; go test runs in the package dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build ./cmd/slipway: %v\n%s", err, out)
	}
	fmt.Fprintf(os.Stderr, "e2e: built %s in %s\n", bin, time.Since(start).Round(time.Millisecond))
	return nil
}

// ---------------------------------------------------------------- harness

// instance is one running `slipway serve`.
type instance struct {
	t        testing.TB
	URL      string // http://127.0.0.1:PORT, the HTTP listener
	HTTPAddr string
	GRPCAddr string
	DataDir  string

	cmd  *exec.Cmd
	out  *output
	done chan struct{} // closed when the process has exited and been reaped
	err  error         // cmd.Wait's result; read only after done is closed

	stopOnce    sync.Once
	stopErr     error
	stopStarted atomic.Bool // Stop or stop has been called
}

// output collects a process's stdout and stderr, line by line, and tells
// waiters when stdout announces the URL.
type output struct {
	wg    sync.WaitGroup // the line readers of writer
	mu    sync.Mutex
	lines []string
	url   chan string // receives the URL of "Slipway is running at URL"
}

func (o *output) writer(stream string) io.Writer {
	pr, pw := io.Pipe()
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
		for sc.Scan() {
			line := sc.Text()
			o.mu.Lock()
			o.lines = append(o.lines, stream+": "+line)
			o.mu.Unlock()
			if u, ok := strings.CutPrefix(line, "Slipway is running at "); ok && stream == "stdout" {
				select {
				case o.url <- strings.TrimSpace(u):
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	return pw
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return strings.Join(o.lines, "\n")
}

// logsAt returns the JSON log lines (SLIPWAY_LOG_FORMAT=json) at level.
func (o *output) logsAt(level string) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var found []string
	for _, l := range o.lines {
		rest, ok := strings.CutPrefix(l, "stderr: ")
		if !ok {
			continue
		}
		var rec struct {
			Level string `json:"level"`
		}
		if json.Unmarshal([]byte(rest), &rec) == nil && rec.Level == level {
			found = append(found, rest)
		}
	}
	return found
}

// startSlipway starts `slipway serve` and waits until GET /health answers
// 200. It listens on a free loopback HTTP port (and a free gRPC port when
// the target is a service that other processes call, or env asks for one
// with grpcListener) and uses a fresh data dir and embedded NATS, with
// JSON logs; env entries (KEY=VALUE) override any of that and add more
// settings. SLIPWAY_* variables of the caller's environment are not
// inherited. Slipway is stopped when the test ends (SIGTERM, then SIGKILL
// after a grace period); its output is added to the test log if the test
// failed.
func startSlipway(t testing.TB, env ...string) *instance {
	t.Helper()
	if buildErr != nil {
		t.Fatalf("slipway binary not built: %v", buildErr)
	}
	pinned := func(key string) bool {
		return slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, key+"=") && kv != grpcListener })
	}
	target := lookupEnv(env, "SLIPWAY_TARGET")
	// --target=all calls its components in memory and opens no gRPC port
	// unless asked; the gateway never has one.
	wantGRPC := slices.Contains(env, grpcListener) || (target != "" && target != "all" && target != "gateway")
	env = slices.DeleteFunc(slices.Clone(env), func(kv string) bool { return kv == grpcListener })
	dataDir := lookupEnv(env, "SLIPWAY_DATA_DIR")
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	// Registered before the instance's own cleanup, so it runs after the
	// server stopped.
	t.Cleanup(func() { reapWorkloads(t, dataDir) })
	const attempts = 3
	for attempt := 1; ; attempt++ {
		httpAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
		full := []string{
			"SLIPWAY_HTTP_ADDR=" + httpAddr,
			"SLIPWAY_DATA_DIR=" + dataDir,
			"SLIPWAY_LOG_FORMAT=json",
			"SLIPWAY_BOOTSTRAP_TOKEN=" + adminToken,
			// Jobs run as local processes unless a test asks for the docker
			// driver: the auto choice would depend on the machine.
			"SLIPWAY_RUNTIME_DRIVER=process",
			// The ingress of services, on a port of its own per instance.
			fmt.Sprintf("SLIPWAY_INGRESS_ADDR=127.0.0.1:%d", testenv.FreePort(t)),
		}
		if wantGRPC {
			full = append(full, fmt.Sprintf("SLIPWAY_GRPC_ADDR=127.0.0.1:%d", testenv.FreePort(t)))
		}
		full = append(full, env...)
		inst := &instance{
			t: t, HTTPAddr: lookupEnv(full, "SLIPWAY_HTTP_ADDR"), GRPCAddr: lookupEnv(full, "SLIPWAY_GRPC_ADDR"),
			DataDir: dataDir, done: make(chan struct{}),
			out: &output{url: make(chan string, 1)},
		}
		err := inst.start(full)
		if err == nil {
			return inst
		}
		// A port that was free when picked may have been taken since.
		clash := strings.Contains(inst.out.String(), "address already in use")
		if clash && attempt < attempts && !pinned("SLIPWAY_HTTP_ADDR") && !pinned("SLIPWAY_GRPC_ADDR") && !pinned("SLIPWAY_INGRESS_ADDR") {
			t.Logf("slipway: port clash, retrying on other ports")
			continue
		}
		t.Fatalf("slipway did not become ready: %v\n--- slipway output ---\n%s", err, inst.out)
	}
}

// grpcListener, among startSlipway's env, asks a --target=all process for
// a gRPC listener on a free port (its GRPCAddr), for processes started
// apart to call.
const grpcListener = "SLIPWAY_GRPC_ADDR=<free port>"

// start runs the binary with env and waits for readiness; on error the
// process has been stopped.
func (inst *instance) start(env []string) error {
	cmd := exec.Command(slipwayBin, "serve")
	cmd.Env = append(baseEnv(), env...)
	cmd.Stdout = inst.out.writer("stdout")
	cmd.Stderr = inst.out.writer("stderr")
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	setParentDeathSignal(cmd.SysProcAttr)
	inst.cmd = cmd

	// Fork from a goroutine locked to its OS thread that then lives exactly
	// as long as the child: the parent-death signal fires when the forking
	// thread exits, which then coincides with the test process dying.
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			cmd.Stdout.(io.Closer).Close()
			cmd.Stderr.(io.Closer).Close()
			started <- err
			return
		}
		started <- nil
		inst.err = cmd.Wait()
		cmd.Stdout.(io.Closer).Close()
		cmd.Stderr.(io.Closer).Close()
		inst.out.wg.Wait() // every line is in out before done is closed
		close(inst.done)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("start %s: %w", slipwayBin, err)
	}
	inst.t.Cleanup(func() {
		explicit := inst.stopStarted.Load() // the test saw the result already
		if err := inst.stop(cleanupGrace); err != nil && !explicit {
			inst.t.Logf("slipway (%s) at the end of the test: %v", inst.HTTPAddr, err)
		}
		if inst.t.Failed() {
			inst.t.Logf("--- output of slipway (%s, data dir %s) ---\n%s", inst.HTTPAddr, inst.DataDir, inst.out)
		}
	})

	deadline := time.Now().Add(readyTimeout)
	select {
	case u := <-inst.out.url:
		inst.URL = u
	case <-inst.done:
		return fmt.Errorf("exited before announcing its URL: %v", inst.err)
	case <-time.After(time.Until(deadline)):
		_ = inst.stop(cleanupGrace)
		return fmt.Errorf("no %q line on stdout within %s", "Slipway is running at", readyTimeout)
	}
	if want := "http://" + inst.HTTPAddr; inst.URL != want {
		_ = inst.stop(cleanupGrace)
		return fmt.Errorf("announced URL %q, want %q", inst.URL, want)
	}
	client := &http.Client{Timeout: 2 * time.Second}
	var last string
	for {
		res, err := client.Get(inst.URL + "/health")
		if err == nil {
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("HTTP %d: %s", res.StatusCode, body)
		} else {
			last = err.Error()
		}
		select {
		case <-inst.done:
			return fmt.Errorf("exited while waiting for /health: %v (last /health: %s)", inst.err, last)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = inst.stop(cleanupGrace)
			return fmt.Errorf("GET /health not 200 within %s; last: %s", readyTimeout, last)
		}
	}
}

// Stop sends SIGTERM and waits for the process to exit, killing it after
// stopGrace. It returns an error unless Slipway exited by itself with status
// 0 in time. It is idempotent: later calls return the first call's result.
func (inst *instance) Stop() error { return inst.stop(stopGrace) }

func (inst *instance) stop(grace time.Duration) error {
	inst.stopStarted.Store(true)
	inst.stopOnce.Do(func() {
		select {
		case <-inst.done:
			inst.stopErr = fmt.Errorf("had exited before it was stopped: %v", inst.err)
			return
		default:
		}
		start := time.Now()
		_ = inst.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-inst.done:
		case <-time.After(grace):
			_ = inst.cmd.Process.Kill()
			<-inst.done
			inst.stopErr = fmt.Errorf("did not exit within %s of SIGTERM, so it was killed", grace)
			return
		}
		if inst.err != nil {
			inst.stopErr = fmt.Errorf("exited uncleanly %s after SIGTERM: %v", time.Since(start).Round(time.Millisecond), inst.err)
		}
	})
	return inst.stopErr
}

// baseEnv is the environment of this process without SLIPWAY_* settings,
// so a developer's own configuration cannot leak into the tests.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SLIPWAY_") {
			env = append(env, kv)
		}
	}
	return env
}

// lookupEnv returns the last value of key in env (exec.Cmd uses the last).
func lookupEnv(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], key+"="); ok {
			return v
		}
	}
	return ""
}

// runSlipway runs a one-shot subcommand (e.g. migrate) to completion.
func runSlipway(t testing.TB, args []string, env ...string) string {
	t.Helper()
	if buildErr != nil {
		t.Fatalf("slipway binary not built: %v", buildErr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, slipwayBin, args...)
	cmd.Env = append(append(baseEnv(), "SLIPWAY_LOG_FORMAT=json"), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("slipway %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// ------------------------------------------------------------ HTTP helpers

// response is a decoded API response.
type response struct {
	Status int
	Header http.Header
	Raw    []byte
	Body   map[string]any // nil if the body is not a JSON object
}

// apiError is the error envelope's content.
type apiError struct {
	Status  float64        `json:"status"`
	Message string         `json:"message"`
	ID      string         `json:"id"`
	Details map[string]any `json:"details"`
}

var httpClient = &http.Client{Timeout: 30 * time.Second}

// call sends one request; headers are name, value pairs.
func call(t testing.TB, method, url string, body io.Reader, headers ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	r := response{Status: res.StatusCode, Header: res.Header, Raw: raw}
	_ = json.Unmarshal(raw, &r.Body)
	return r
}

func callJSON(t testing.TB, method, url, body string, headers ...string) response {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	return call(t, method, url, r, headers...)
}

// data returns the success envelope's data object, failing unless the
// response is a 200 with {"data": {...}}.
func (r response) data(t testing.TB) map[string]any {
	t.Helper()
	if r.Status != http.StatusOK {
		t.Fatalf("HTTP %d, want 200: %s", r.Status, r.Raw)
	}
	d, ok := r.Body["data"].(map[string]any)
	if !ok {
		t.Fatalf("no \"data\" object in %s", r.Raw)
	}
	return d
}

// apiErr checks that r is an error envelope with status and returns it.
func (r response) apiErr(t testing.TB, status int) apiError {
	t.Helper()
	if r.Status != status {
		t.Errorf("HTTP %d, want %d: %s", r.Status, status, r.Raw)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want application/json (body %q)", ct, r.Raw)
	}
	var env struct {
		Error *apiError `json:"error"`
		Data  any       `json:"data"`
	}
	if err := json.Unmarshal(r.Raw, &env); err != nil || env.Error == nil {
		t.Fatalf("not an error envelope {\"error\": {...}}: %q (%v)", r.Raw, err)
	}
	e := *env.Error
	if int(e.Status) != status {
		t.Errorf("error.status %v, want %d: %s", e.Status, status, r.Raw)
	}
	if e.Message == "" || e.ID == "" {
		t.Errorf("error.message and error.id must be non-empty: %s", r.Raw)
	}
	if env.Data != nil {
		t.Errorf("an error response carries no data: %s", r.Raw)
	}
	return e
}

// --------------------------------------------------------- JS client tests

// TestJSClient runs the @northflank/js-client suite (e2e/js) against
// Slipway on SQLite and the embedded NATS server, except the addons'
// files (TestAddonsJSClient).
func TestJSClient(t *testing.T) {
	jsDir := requireNodeSuite(t)
	inst := startSlipway(t)
	runNodeSuite(t, jsDir, inst.URL, nodeSuiteFiles(t, jsDir, false)...)
}

// TestJSClientPostgres runs the same suite against Slipway on PostgreSQL.
func TestJSClientPostgres(t *testing.T) {
	jsDir := requireNodeSuite(t)
	inst := startSlipway(t, "SLIPWAY_PROJECTS_DATABASE_URL="+testenv.Postgres(t), "SLIPWAY_JOBS_DATABASE_URL="+testenv.Postgres(t),
		"SLIPWAY_DEPLOYMENTS_DATABASE_URL="+testenv.Postgres(t))
	runNodeSuite(t, jsDir, inst.URL, nodeSuiteFiles(t, jsDir, false)...)
}

// TestAddonsJSClient runs the addons' files of the suite (e2e/js/addons*.test.mjs:
// databases written by jobs through secret groups, backed up, verified
// and restored) against a Slipway of their own: they take a minute and
// many requests, so they run once, not with each database of the other
// files, and within an hourly request budget of their own.
func TestAddonsJSClient(t *testing.T) {
	jsDir := requireNodeSuite(t)
	inst := startSlipway(t)
	runNodeSuite(t, jsDir, inst.URL, nodeSuiteFiles(t, jsDir, true)...)
}

// nodeSuiteFiles lists the test files of the suite in dir: the addons'
// (addons*.test.mjs) or all the others.
func nodeSuiteFiles(t *testing.T, dir string, addons bool) []string {
	t.Helper()
	all, err := filepath.Glob(filepath.Join(dir, "*.test.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, f := range all {
		name := filepath.Base(f)
		if strings.HasPrefix(name, "addons") == addons {
			files = append(files, name)
		}
	}
	if len(files) == 0 {
		t.Fatalf("no test files in %s (addons: %v)", dir, addons)
	}
	return files
}

// requireNodeSuite fails (never skips: a CI machine without node must not
// report green) unless node and the suite's installed dependencies are
// present, and returns the suite's directory.
func requireNodeSuite(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("node not found on PATH (%v): the JS client suite needs Node.js 20 or newer; "+
			"install it, then run `make test` (or `make deps`), which runs npm ci in e2e/js", err)
	}
	dir, err := filepath.Abs("js")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@northflank", "js-client", "package.json")); err != nil {
		t.Fatalf("%s/node_modules is missing or incomplete (%v): run `make test` (or `make deps`), which runs npm ci "+
			"(or run `npm ci` in e2e/js yourself)", dir, err)
	}
	return dir
}

// runNodeSuite runs `node --test` over files in dir against url, streaming its output
// into the test log line by line. Every Node process of the run (node
// --test starts one per file) preloads loopback-only.cjs, and the test
// fails if any of them tried to reach a host other than loopback.
func runNodeSuite(t *testing.T, dir, url string, files ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), jsSuiteTimeout)
	defer cancel()
	offHost := filepath.Join(t.TempDir(), "offhost.log")
	t.Cleanup(func() {
		if hosts, err := os.ReadFile(offHost); err == nil {
			t.Errorf("the JS suite tried to reach hosts other than loopback (refused): %q", hosts)
		}
	})
	cmd := exec.CommandContext(ctx, "node", append([]string{"--test", "--test-reporter=spec"}, files...)...)
	cmd.Dir = dir
	cmd.Env = append(baseEnv(), "SLIPWAY_URL="+url, "SLIPWAY_TOKEN="+adminToken, "NO_COLOR=1", "FORCE_COLOR=0",
		"NODE_OPTIONS=--require \""+filepath.Join(dir, "loopback-only.cjs")+"\"", "SLIPWAY_E2E_OFFHOST_LOG="+offHost)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	// node --test runs each test file in a child process: on timeout kill
	// the whole process group, or an orphaned child would keep the output
	// pipe open.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		t.Fatalf("start node: %v", err)
	}
	pw.Close()
	sc := bufio.NewScanner(pr)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		t.Log("node: " + sc.Text())
	}
	pr.Close()
	err = cmd.Wait()
	switch {
	case ctx.Err() != nil:
		t.Fatalf("node --test did not finish within %s", jsSuiteTimeout)
	case err != nil:
		t.Fatalf("node --test failed after %s (%v); see the node: lines above", time.Since(start).Round(time.Millisecond), err)
	}
	t.Logf("node --test passed in %s", time.Since(start).Round(time.Millisecond))
}

// ------------------------------------------------------- persistence tests

// TestDataSurvivesRestart stops Slipway and starts it again on the same data
// dir: the projects (SQLite) and the events (embedded NATS JetStream store)
// are still there, and the restart logs no error.
func TestDataSurvivesRestart(t *testing.T) {
	dataDir := t.TempDir()

	first := startSlipway(t, "SLIPWAY_DATA_DIR="+dataDir)
	created := callJSON(t, "POST", first.URL+"/v1/projects",
		`{"name":"Survivor One","description":"made before the restart","color":"#123456"}`).data(t)
	// Give the outbox relay a moment to publish the event to the embedded
	// NATS server, so that the check below sees it come from this run.
	time.Sleep(time.Second)
	if err := first.Stop(); err != nil {
		t.Errorf("stop the first run: %v", err)
	}
	if errs := first.out.logsAt("ERROR"); len(errs) > 0 {
		t.Errorf("first run logged errors:\n%s", strings.Join(errs, "\n"))
	}
	if _, err := os.Stat(filepath.Join(dataDir, "nats", "jetstream")); err != nil {
		t.Errorf("no embedded NATS store in the data dir: %v", err)
	}

	second := startSlipway(t, "SLIPWAY_DATA_DIR="+dataDir)
	got := callJSON(t, "GET", second.URL+"/v1/projects/survivor-one", "").data(t)
	for _, k := range []string{"id", "name", "description", "color", "createdAt", "updatedAt"} {
		if fmt.Sprint(got[k]) != fmt.Sprint(created[k]) {
			t.Errorf("after restart %s = %v, want %v", k, got[k], created[k])
		}
	}
	list := callJSON(t, "GET", second.URL+"/v1/projects", "").data(t)
	if n := len(list["projects"].([]any)); n != 1 {
		t.Errorf("after restart the list has %d projects, want 1: %v", n, list)
	}
	callJSON(t, "POST", second.URL+"/v1/projects", `{"name":"Survivor One"}`).apiErr(t, http.StatusConflict)
	callJSON(t, "POST", second.URL+"/v1/projects", `{"name":"Survivor Two"}`).data(t)
	time.Sleep(time.Second) // as above, for the second run's event
	if err := second.Stop(); err != nil {
		t.Errorf("stop the second run: %v", err)
	}
	for _, level := range []string{"ERROR", "WARN"} {
		if logs := second.out.logsAt(level); len(logs) > 0 {
			t.Errorf("the restarted Slipway logged at %s:\n%s", level, strings.Join(logs, "\n"))
		}
	}

	// Open the embedded NATS store the two runs shared and read the stream.
	subjects := eventSubjects(t, filepath.Join(dataDir, "nats"))
	t.Logf("events in the store after two runs: %v", subjects)
	for _, want := range []string{"survivor-one", "survivor-two"} {
		// Project events' subjects are "<team>/<project>".
		if !slices.ContainsFunc(subjects, func(s string) bool { return strings.HasSuffix(s, "/"+want) }) {
			t.Errorf("no event about project %q in the embedded NATS store after the restart: %v", want, subjects)
		}
	}
}

// eventSubjects starts a NATS server on storeDir (Slipway must be stopped)
// and returns "type subject" of every message in the events stream.
func eventSubjects(t *testing.T, storeDir string) []string {
	t.Helper()
	srv, err := server.NewServer(&server.Options{
		ServerName: "e2e-inspect", JetStream: true, StoreDir: storeDir,
		DontListen: true, NoSigs: true, NoLog: true,
	})
	if err != nil {
		t.Fatalf("inspect NATS store: %v", err)
	}
	srv.Start()
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("inspect NATS store: server not ready")
	}
	nc, err := nats.Connect("", nats.InProcessServer(srv))
	if err != nil {
		t.Fatalf("inspect NATS store: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := js.Stream(ctx, "SLIPWAY_EVENTS")
	if err != nil {
		t.Fatalf("the events stream is gone from the embedded NATS store: %v", err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var subjects []string
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && seq > 0; seq++ {
		msg, err := stream.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatalf("read event %d: %v", seq, err)
		}
		var ev struct {
			Type    string `json:"type"`
			Subject string `json:"subject"`
		}
		if err := json.Unmarshal(msg.Data, &ev); err != nil {
			t.Errorf("event %d is not JSON: %q", seq, msg.Data)
		}
		subjects = append(subjects, ev.Type+" "+ev.Subject)
	}
	return subjects
}

// ------------------------------------------------------- wire-rule tests

// TestPlainHTTPContract checks, with plain net/http, the wire rules that the
// JS client does not exercise.
func TestPlainHTTPContract(t *testing.T) {
	inst := startSlipway(t)
	base := inst.URL

	t.Run("request id echoed", func(t *testing.T) {
		r := callJSON(t, "GET", base+"/v1/regions", "", "X-Request-Id", "e2e-req-0123456789")
		if got := r.Header.Get("X-Request-Id"); got != "e2e-req-0123456789" {
			t.Errorf("X-Request-Id %q, want the one sent", got)
		}
		// Also on errors.
		r = callJSON(t, "GET", base+"/v1/projects/no-such-project", "", "X-Request-Id", "e2e-req-404")
		if got := r.Header.Get("X-Request-Id"); got != "e2e-req-404" {
			t.Errorf("X-Request-Id on a 404: %q, want the one sent", got)
		}
	})

	t.Run("request id generated", func(t *testing.T) {
		a := callJSON(t, "GET", base+"/v1/regions", "").Header.Get("X-Request-Id")
		b := callJSON(t, "GET", base+"/v1/regions", "").Header.Get("X-Request-Id")
		if a == "" || b == "" || a == b {
			t.Errorf("generated X-Request-Ids %q and %q: want two different non-empty ids", a, b)
		}
	})

	t.Run("unknown route is a JSON 404", func(t *testing.T) {
		callJSON(t, "GET", base+"/v1/no-such-route", "").apiErr(t, http.StatusNotFound)
		callJSON(t, "GET", base+"/nope", "").apiErr(t, http.StatusNotFound)
	})

	t.Run("wrong method is a JSON 405", func(t *testing.T) {
		r := callJSON(t, "POST", base+"/v1/regions", "{}")
		r.apiErr(t, http.StatusMethodNotAllowed)
		// RFC 9110 §15.5.6: a 405 carries Allow listing the methods served.
		if allow := r.Header.Get("Allow"); !strings.Contains(allow, "GET") {
			t.Errorf("405 response has Allow %q, want it to list GET", allow)
		}
		callJSON(t, "PUT", base+"/v1/projects/some-project", "{}").apiErr(t, http.StatusMethodNotAllowed)
	})

	t.Run("2 MiB body is a JSON 413", func(t *testing.T) {
		big := `{"name":"` + strings.Repeat("a", 2<<20) + `"}`
		callJSON(t, "POST", base+"/v1/projects", big).apiErr(t, http.StatusRequestEntityTooLarge)
	})

	t.Run("malformed JSON is a 400", func(t *testing.T) {
		callJSON(t, "POST", base+"/v1/projects", `{"name":`).apiErr(t, http.StatusBadRequest)
		callJSON(t, "POST", base+"/v1/projects", `{"name":"abc"} trailing`).apiErr(t, http.StatusBadRequest)
	})

	t.Run("unknown field is a 400 naming it", func(t *testing.T) {
		e := callJSON(t, "POST", base+"/v1/projects", `{"name":"Unknown Field","bogusField":1}`).apiErr(t, http.StatusBadRequest)
		if _, ok := e.Details["bogusField"]; !ok {
			t.Errorf("details %v do not name bogusField", e.Details)
		}
		e = callJSON(t, "PATCH", base+"/v1/projects/whatever", `{"nope":"x"}`).apiErr(t, http.StatusBadRequest)
		if _, ok := e.Details["nope"]; !ok {
			t.Errorf("PATCH details %v do not name nope", e.Details)
		}
	})

	t.Run("wrong type is a 400 naming the field", func(t *testing.T) {
		e := callJSON(t, "POST", base+"/v1/projects", `{"name":123}`).apiErr(t, http.StatusBadRequest)
		if _, ok := e.Details["name"]; !ok {
			t.Errorf("details %v do not name name", e.Details)
		}
		e = callJSON(t, "POST", base+"/v1/projects", `{"name":"Wrong Type","description":["x"]}`).apiErr(t, http.StatusBadRequest)
		if _, ok := e.Details["description"]; !ok {
			t.Errorf("details %v do not name description", e.Details)
		}
	})

	t.Run("unsupported api_version is a 422", func(t *testing.T) {
		callJSON(t, "GET", base+"/v1/regions", "", "Accept", "application/json; api_version=2").apiErr(t, http.StatusUnprocessableEntity)
		// The supported version is accepted.
		callJSON(t, "GET", base+"/v1/regions", "", "Accept", "application/json; api_version=1").data(t)
	})

	t.Run("version", func(t *testing.T) {
		r := callJSON(t, "GET", base+"/version", "")
		d := r.data(t)
		if v, _ := d["version"].(string); v == "" {
			t.Errorf("/version has no version: %v", d)
		}
		// ComputeStacks' shape, alongside.
		if r.Body["version"] != d["version"] || r.Body["api_latest_version"] != float64(1) || fmt.Sprint(r.Body["api_available_versions"]) != "[1]" {
			t.Errorf("/version lacks ComputeStacks' fields: %s", r.Raw)
		}
	})

	t.Run("openapi document", func(t *testing.T) {
		r := callJSON(t, "GET", base+"/v1/openapi.json", "")
		if r.Status != http.StatusOK {
			t.Fatalf("HTTP %d: %.300s", r.Status, r.Raw)
		}
		if r.Body == nil {
			t.Fatalf("not a JSON object: %.300s", r.Raw)
		}
		_, swagger := r.Body["swagger"]
		_, openapi := r.Body["openapi"]
		if !swagger && !openapi {
			t.Errorf("neither \"swagger\" nor \"openapi\" at the top level")
		}
		paths, _ := r.Body["paths"].(map[string]any)
		if _, ok := paths["/v1/projects"]; !ok {
			t.Errorf("paths lack /v1/projects; have %v", slices.Sorted(mapKeys(paths)))
		}
	})

	t.Run("metrics", func(t *testing.T) {
		callJSON(t, "GET", base+"/v1/plans", "").data(t)
		r := callJSON(t, "GET", base+"/metrics", "")
		if r.Status != http.StatusOK || !bytes.Contains(r.Raw, []byte("slipway_http_requests_total")) {
			t.Errorf("GET /metrics: HTTP %d without slipway_http_requests_total", r.Status)
		}
	})

	t.Run("health", func(t *testing.T) {
		d := callJSON(t, "GET", base+"/health", "").data(t)
		checks, _ := d["checks"].(map[string]any)
		if d["status"] != "ok" || checks["projects"] != "ok" {
			t.Errorf("/health data %v: want status ok and checks.projects ok", d)
		}
	})
}

func mapKeys(m map[string]any) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// ------------------------------------------------------ split deployment

// component is a row of the component table, as `slipway components
// --json` prints it.
type component struct {
	Name        string   `json:"name"`
	Deps        []string `json:"deps"`
	DatabaseEnv string   `json:"databaseEnv"`
	AddrEnv     string   `json:"addrEnv"`
}

// componentTable reads the binary's component table.
func componentTable(t testing.TB) []component {
	t.Helper()
	var table []component
	if err := json.Unmarshal([]byte(runSlipway(t, []string{"components", "--json"})), &table); err != nil {
		t.Fatalf("slipway components --json: %v", err)
	}
	return table
}

// TestServeTargetsApart runs every component of the component table as a
// process of its own, sharing an external NATS server, each service on a
// PostgreSQL database of its own and reached by the others over gRPC at
// its address, and drives the API through the gateway.
func TestServeTargetsApart(t *testing.T) {
	natsURL := testenv.StartNATS(t).URL()
	table := componentTable(t)
	databases := []string{}
	for _, c := range table {
		if c.DatabaseEnv != "" {
			databases = append(databases, c.DatabaseEnv+"="+testenv.Postgres(t))
		}
	}
	runSlipway(t, []string{"migrate"}, databases...)

	common := append([]string{
		"SLIPWAY_NATS_URL=" + natsURL,
		"SLIPWAY_INTERNAL_KEY=" + internalKey,
		// Shared by every replica of a component that seals secrets.
		"SLIPWAY_ENCRYPTION_KEY=split-deploy-encryption-key-0123456789",
	}, databases...)
	procs := map[string]*instance{}
	var addrs []string // SLIPWAY_<NAME>_ADDR of every service started
	var gatewayRow *component
	for len(procs) < len(table) {
		started := len(procs)
		for i, c := range table {
			ready := procs[c.Name] == nil && !slices.ContainsFunc(c.Deps, func(d string) bool { return procs[d] == nil })
			if !ready {
				continue
			}
			if c.AddrEnv == "" { // the gateway, last: it needs every address
				gatewayRow = &table[i]
				procs[c.Name] = &instance{}
				continue
			}
			procs[c.Name] = startSlipway(t, append(append([]string{"SLIPWAY_TARGET=" + c.Name}, common...), addrs...)...)
			addrs = append(addrs, c.AddrEnv+"="+procs[c.Name].GRPCAddr)
		}
		if len(procs) == started {
			t.Fatalf("components with unmet dependencies: %v", table)
		}
	}
	if gatewayRow == nil {
		t.Fatal("the component table has no gateway")
	}
	gateway := startSlipway(t, append(append([]string{"SLIPWAY_TARGET=" + gatewayRow.Name}, common...), addrs...)...)
	procs[gatewayRow.Name] = gateway
	projects := procs["projects"]

	created := callJSON(t, "POST", gateway.URL+"/v1/projects", `{"name":"Split Deploy","description":"via the gateway"}`).data(t)
	if created["id"] != "split-deploy" {
		t.Errorf("created id %v, want split-deploy", created["id"])
	}
	got := callJSON(t, "GET", gateway.URL+"/v1/projects/split-deploy", "").data(t)
	if got["description"] != "via the gateway" || got["createdAt"] != created["createdAt"] {
		t.Errorf("get through the gateway = %v, want what was created: %v", got, created)
	}
	callJSON(t, "GET", gateway.URL+"/v1/projects/not-there", "").apiErr(t, http.StatusNotFound)
	list := callJSON(t, "GET", gateway.URL+"/v1/projects", "").data(t)
	if n := len(list["projects"].([]any)); n != 1 {
		t.Errorf("list through the gateway has %d projects, want 1", n)
	}

	// A job runs in the jobs process: it checks the project with the
	// projects process (an internal call) and its run ends SUCCESS.
	callJSON(t, "POST", gateway.URL+"/v1/projects/split-deploy/jobs/manual",
		`{"name":"split job","deployment":{"docker":{"configType":"customCommand","customCommand":"echo split"}}}`).data(t)
	callJSON(t, "POST", gateway.URL+"/v1/projects/not-there/jobs/manual",
		`{"name":"lost job","deployment":{"docker":{"configType":"customCommand","customCommand":"true"}}}`).apiErr(t, http.StatusNotFound)
	run := callJSON(t, "POST", gateway.URL+"/v1/projects/split-deploy/jobs/split-job/runs", `{}`).data(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := callJSON(t, "GET", gateway.URL+"/v1/projects/split-deploy/jobs/split-job/runs/"+run["id"].(string), "").data(t)
		if r["status"] == "SUCCESS" {
			break
		}
		if r["concluded"] == true || time.Now().After(deadline) {
			t.Fatalf("run through the split deployment: %v", r)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// A service runs in the deployments process: created through the
	// gateway (the project checked with the projects process), its first
	// release rolls out.
	callJSON(t, "POST", gateway.URL+"/v1/projects/split-deploy/services/deployment",
		`{"name":"split svc","deployment":{"instances":1,"docker":{"configType":"customCommand","customCommand":"sleep 600"}}}`).data(t)
	deadline = time.Now().Add(30 * time.Second)
	for {
		d := callJSON(t, "GET", gateway.URL+"/v1/projects/split-deploy/services/split-svc/deployment", "").data(t)
		st, _ := d["status"].(map[string]any)
		if st["status"] == "COMPLETED" {
			break
		}
		if st["status"] == "FAILED" || time.Now().After(deadline) {
			t.Fatalf("service through the split deployment: %v", d)
		}
		time.Sleep(50 * time.Millisecond)
	}

	for name, inst := range procs {
		r := callJSON(t, "GET", inst.URL+"/health", "")
		d := r.data(t)
		if d["status"] != "ok" {
			t.Errorf("%s /health: %s", name, r.Raw)
		}
		t.Logf("%s /health: %s", name, bytes.TrimSpace(r.Raw))
	}
	m := callJSON(t, "GET", projects.URL+"/metrics", "")
	if m.Status != http.StatusOK || !bytes.Contains(m.Raw, []byte("slipway_grpc_server_handled_total")) {
		t.Errorf("projects /metrics: HTTP %d without slipway_grpc_server_handled_total", m.Status)
	}

	// All stop cleanly on SIGTERM, the gateway first as in a rollout, then
	// each component before what it depends on.
	if err := gateway.Stop(); err != nil {
		t.Errorf("stop the gateway: %v", err)
	}
	for i := len(table) - 1; i >= 0; i-- {
		if c := table[i]; c.AddrEnv != "" {
			if err := procs[c.Name].Stop(); err != nil {
				t.Errorf("stop %s: %v", c.Name, err)
			}
		}
	}
}

// TestTwoInstancesOnOneMachine: two `slipway serve` with only their HTTP
// address, ingress address and data directory apart both start, since the
// components of one process call each other in memory and open no other
// port.
func TestTwoInstancesOnOneMachine(t *testing.T) {
	a := startSlipway(t)
	b := startSlipway(t)
	for _, inst := range []*instance{a, b} {
		if inst.GRPCAddr != "" {
			t.Fatalf("an instance was given a gRPC address: %s", inst.GRPCAddr)
		}
		callJSON(t, "POST", inst.URL+"/v1/projects", `{"name":"Side by Side"}`).data(t)
		if got := callJSON(t, "GET", inst.URL+"/v1/projects/side-by-side", "").data(t); got["id"] != "side-by-side" {
			t.Errorf("%s: %v", inst.URL, got)
		}
	}
}

// TestGracefulShutdown checks that `slipway serve` exits with status 0 soon
// after SIGTERM, as orchestrators (systemd, Kubernetes, docker stop) expect.
// (A regression test: serve once waited for the gRPC server, which only its
// deferred closers stopped, so every target running gRPC hung until SIGKILL.
// TestServeTargetsApart checks the projects and gateway targets alike.)
func TestGracefulShutdown(t *testing.T) {
	inst := startSlipway(t)
	callJSON(t, "POST", inst.URL+"/v1/projects", `{"name":"Before Shutdown"}`).data(t)
	start := time.Now()
	if err := inst.Stop(); err != nil {
		t.Errorf("SIGTERM: %v", err)
	} else {
		t.Logf("exited %s after SIGTERM", time.Since(start).Round(time.Millisecond))
	}
	if !strings.Contains(inst.out.String(), `"msg":"shutting down"`) {
		t.Errorf("no \"shutting down\" log line after SIGTERM")
	}
	if errs := inst.out.logsAt("ERROR"); len(errs) > 0 {
		t.Errorf("errors logged while shutting down:\n%s", strings.Join(errs, "\n"))
	}
}

// reapWorkloads stops and removes the process-driver workloads a test's
// Slipway left in its data directory (services' instances, jobs' runs):
// they outlive the server by design, so that a restarted server adopts
// them, but a test's must not outlive the test.
func reapWorkloads(t testing.TB, dataDir string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, sub := range []string{"services", "runtime"} {
		if err := process.RemoveAll(ctx, filepath.Join(dataDir, sub)); err != nil {
			t.Logf("remove the workloads in %s: %v", sub, err)
		}
	}
}
