package runtimetest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pkg/procfs"
	"github.com/slipwayhq/slipway/pkg/runtime"
)

// The isolation cases: a workload is a hostile tenant. It must not read
// another workload's environment or files, nor the server's data directory
// (its encryption key, its databases); it must not see or signal another
// workload's processes; its process count and memory are capped without
// the host suffering; and nothing it started outlives its run.
//
// Every script is bounded, so that a driver that isolates nothing (as the
// process driver once did) fails the cases without harming the host: the
// fork bomb stops at forkBombSize processes, the memory hog at
// memoryHogBytes, and the hostile workload only signals the processes
// that carry the victim's marker.

const (
	forkBombSize   = 2000
	memoryHogBytes = 200_000_000
	hogLimitMB     = 32
)

// dataDir makes a server data directory as Slipway lays it out, with files
// anyone could read were they reachable: the encryption key, a database,
// and the driver's state below it. It returns the directory, its state
// directory and the secret each file holds.
func dataDir(t *testing.T, tag string) (dir, state string, secrets []string) {
	t.Helper()
	dir = t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	key, db := "key-"+tag+"-0123456789abcdef0123456789abcdef", "team-a-job-"+tag
	for name, content := range map[string]string{
		"encryption.key": key,
		"jobs.db":        "SQLite format 3\x00" + db,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir, filepath.Join(dir, "runtime"), []string{key, db}
}

// victim starts a workload holding secrets in its environment and its
// working directory, whose command line carries marker; it returns once
// the workload runs.
func (s *suite) victim(t *testing.T, d runtime.Driver, marker string) (id string, secrets []string) {
	t.Helper()
	envSecret, fileSecret := "api-key-"+s.tag+"-victim", "file-"+s.tag+"-victim"
	spec := s.h.Spec("/bin/sh", "-c", `echo "$FILE_SECRET" > victim-file; unset FILE_SECRET; echo ready; sleep 60; :`, marker)
	spec.Env = map[string]string{"API_KEY": envSecret, "DB_PASSWORD": envSecret, "FILE_SECRET": fileSecret}
	id = Start(t, d, spec)
	waitFor(t, d, id, "ready")
	return id, []string{envSecret, fileSecret}
}

// hostileScript prints every environment it can read, signals every
// process whose command line holds the marker made of its two arguments
// (so that its own command line does not hold it), and tries the paths
// in $PATHS.
const hostileScript = `m="$1-$2"
for p in /proc/[0-9]*; do
  cat "$p/environ" 2>/dev/null | tr '\0' '\n'
  if cat "$p/cmdline" 2>/dev/null | tr '\0' ' ' | grep -q -e "$m"; then
    echo "SEEN ${p#/proc/}"
    kill -9 "${p#/proc/}" 2>/dev/null && echo "KILLED ${p#/proc/}"
  fi
done
for f in $PATHS; do
  if [ -e "$f" ]; then echo "EXISTS $f"; fi
  cat "$f" 2>/dev/null
  ls "$f" 2>/dev/null
done
echo end`

func testHostile(t *testing.T, s *suite) {
	data, state, secrets := dataDir(t, s.tag)
	d, _ := s.open(t, state)
	victim, victimSecrets := s.victim(t, d, "rt-"+s.tag+"-victim")
	secrets = append(secrets, victimSecrets...)

	paths := []string{
		data, filepath.Join(data, "encryption.key"), filepath.Join(data, "jobs.db"), state,
		// From a working directory at <state>/<id>/work, as on the process
		// driver before the sandbox.
		"../../../encryption.key", "../../../jobs.db", "../" + victim + "/work/victim-file",
	}
	if s.h.WorkDir != nil {
		paths = append(paths, filepath.Join(s.h.WorkDir(state, victim), "victim-file"))
	}
	spec := s.h.Spec("/bin/sh", "-c", hostileScript, "hostile", "rt-"+s.tag, "victim")
	own := "own-" + s.tag
	spec.Env = map[string]string{"PATHS": strings.Join(paths, " "), "OWN": own}
	id := Start(t, d, spec)
	if st := Wait(t, d, id); st.ExitCode != 0 {
		t.Errorf("hostile workload: %+v", st)
	}
	out := strings.Join(Texts(t, Logs(t, d, id, false), "stdout"), "\n")
	// It ran, and could read its own environment.
	if !strings.Contains(out, "OWN="+own) || !strings.HasSuffix(out, "end") {
		t.Fatalf("the hostile workload did not run its script:\n%s", out)
	}
	for _, secret := range secrets {
		if strings.Contains(out, secret) {
			t.Errorf("the hostile workload read %q", secret)
		}
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "SEEN ") || strings.HasPrefix(l, "KILLED ") || strings.HasPrefix(l, "EXISTS ") {
			t.Errorf("the hostile workload says %q", l)
		}
	}
	if st, err := d.Status(Context(t), victim); err != nil || st.State != runtime.StateRunning {
		t.Fatalf("victim after the attack: %+v, %v", st, err)
	}
	if err := d.Stop(Context(t), victim, 0); err != nil {
		t.Fatal(err)
	}
	if st := Wait(t, d, victim); st.Reason != runtime.ReasonStopped {
		t.Errorf("victim %+v, want stopped (by the test, not the hostile workload)", st)
	}
}

// hostResponsive checks that the host still forks and serves.
func hostResponsive(t *testing.T) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("up")) }))
	defer srv.Close()
	for i := 0; i < 5; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			cancel()
			t.Fatalf("the host does not serve: %v", err)
		}
		resp.Body.Close()
		if err := exec.CommandContext(ctx, "true").Run(); err != nil {
			cancel()
			t.Fatalf("the host cannot fork: %v", err)
		}
		cancel()
	}
}

func testForkBomb(t *testing.T, s *suite) {
	if s.h.MaxProcs <= 0 || s.h.MaxProcs >= forkBombSize/2 {
		t.Fatalf("Harness.MaxProcs %d: open the driver with a cap well below %d", s.h.MaxProcs, forkBombSize)
	}
	d := s.driver(t)
	// A subshell forks sleeps until it cannot; the workload then holds
	// what it got, and counts what it sees.
	script := `( i=0; last=
while [ $i -lt ` + strconv.Itoa(forkBombSize) + ` ]; do
  sleep 1000 & p=$!
  [ "$p" != "$last" ] && echo started
  last=$p; i=$((i+1))
done ) 2>/dev/null
set -- /proc/[0-9]*
echo "saturated $#"
exec sleep 1000`
	id := Start(t, d, s.sh(script))
	var started, visible int
	for l, err := range d.Logs(Context(t), id, true) {
		if err != nil {
			t.Fatal(err)
		}
		if l.Text == "started" {
			started++
		}
		if n, ok := strings.CutPrefix(l.Text, "saturated "); ok {
			visible, _ = strconv.Atoi(n)
			break
		}
	}
	if started == 0 || started > s.h.MaxProcs {
		t.Errorf("the fork bomb started %d processes; the cap is %d", started, s.h.MaxProcs)
	}
	if visible == 0 || visible > s.h.MaxProcs {
		t.Errorf("the fork bomb sees %d processes; the cap is %d", visible, s.h.MaxProcs)
	}
	hostResponsive(t)
	if err := d.Stop(Context(t), id, 0); err != nil {
		t.Fatal(err)
	}
	Wait(t, d, id)
	// The driver runs the next workload as usual.
	next := Start(t, d, s.sh("echo next"))
	if st := Wait(t, d, next); st.ExitCode != 0 {
		t.Errorf("the next workload: %+v", st)
	}
}

func testMemoryHog(t *testing.T, s *suite) {
	d := s.driver(t)
	// The shell keeps the whole output of the pipe in memory.
	spec := s.sh(`x=$(head -c ` + strconv.Itoa(memoryHogBytes) + ` /dev/zero | tr '\0' a); echo "survived ${#x}"`)
	spec.Resources = runtime.Resources{MemoryMB: hogLimitMB}
	id := Start(t, d, spec)
	st := Wait(t, d, id)
	out := Texts(t, Logs(t, d, id, false), "stdout")
	if st.ExitCode == 0 || len(out) != 0 {
		t.Errorf("a %d MB hog under a %d MB limit: %+v, stdout %q", memoryHogBytes>>20, hogLimitMB, st, out)
	}
	hostResponsive(t)
	// Within its limit, it runs.
	spec = s.sh(`x=$(head -c 1000000 /dev/zero | tr '\0' a); echo "survived ${#x}"`)
	spec.Resources = runtime.Resources{MemoryMB: hogLimitMB}
	id = Start(t, d, spec)
	if st := Wait(t, d, id); st.ExitCode != 0 {
		t.Errorf("1 MB under a %d MB limit: %+v", hogLimitMB, st)
	}
}

// testSetsidChild: a child that leaves the process group and the session
// still ends with its run.
func testSetsidChild(t *testing.T, s *suite) {
	d := s.driver(t)
	marker := "rt-" + s.tag + "-orphan"
	id := Start(t, d, s.sh(`setsid sh -c 'sleep 1000; :' `+marker+` & sleep 1; echo started`))
	if st := Wait(t, d, id); st.ExitCode != 0 {
		t.Fatalf("status %+v", st)
	}
	if got := Texts(t, Logs(t, d, id, false), "stdout"); len(got) != 1 || got[0] != "started" {
		t.Fatalf("stdout %q", got)
	}
	// The engine's or the kernel's kill may take a moment; it never comes
	// back.
	deadline := time.Now().Add(30 * time.Second)
	for {
		pids := hostProcesses(marker)
		if len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, pid := range pids {
				_ = exec.Command("kill", "-9", strconv.Itoa(pid)).Run() // the test's own leftovers
			}
			t.Fatalf("processes %v of the finished run still run", pids)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// hostProcesses lists the host's live processes whose command line holds
// marker (a workload's processes, for drivers whose engine runs here).
func hostProcesses(marker string) []int {
	pids, _ := procfs.PIDs()
	var out []int
	for _, pid := range pids {
		if cmd, err := procfs.Cmdline(pid); err != nil || !strings.Contains(cmd, marker) {
			continue
		}
		if st, err := procfs.ReadStat(pid); err == nil && !st.Live() {
			continue
		}
		out = append(out, pid)
	}
	return out
}

// testMountIsolation: a directory of the data directory mounted into a
// workload (a build's artifact, say) shows that directory, and nothing
// else of the data directory: not its files, not the driver's state.
func testMountIsolation(t *testing.T, s *suite) {
	data, state, secrets := dataDir(t, s.tag)
	d, _ := s.open(t, state)
	app := filepath.Join(data, "builds", "artifacts", "b1", "app")
	if err := os.MkdirAll(app, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(app, "server.js"), []byte("app-"+s.tag), 0o644); err != nil {
		t.Fatal(err)
	}
	paths := []string{
		"/app/../encryption.key", "/app/../../../../encryption.key", "/app/../../../../jobs.db",
		data, filepath.Join(data, "encryption.key"), filepath.Join(data, "jobs.db"), state,
	}
	spec := s.h.Spec("/bin/sh", "-c", `cat /app/server.js; echo
for f in $PATHS; do
  if [ -e "$f" ]; then echo "EXISTS $f"; fi
  cat "$f" 2>/dev/null
  ls "$f" 2>/dev/null
done
ls -a /app/.. /app/../..
echo end`)
	spec.Env = map[string]string{"PATHS": strings.Join(paths, " ")}
	spec.Mounts = []runtime.Mount{{Source: app, Target: "/app", ReadOnly: true}}
	id := Start(t, d, spec)
	if st := Wait(t, d, id); st.ExitCode != 0 {
		t.Errorf("status %+v", st)
	}
	out := Texts(t, Logs(t, d, id, false), "stdout")
	if len(out) == 0 || out[0] != "app-"+s.tag || out[len(out)-1] != "end" {
		t.Fatalf("the workload did not see its mount:\n%s", strings.Join(out, "\n"))
	}
	for _, l := range out {
		for _, secret := range secrets {
			if strings.Contains(l, secret) {
				t.Errorf("the workload read %q", secret)
			}
		}
		if strings.HasPrefix(l, "EXISTS ") || l == "encryption.key" || l == "jobs.db" || l == "artifacts" || l == "runtime" {
			t.Errorf("the workload says %q", l)
		}
	}
}
