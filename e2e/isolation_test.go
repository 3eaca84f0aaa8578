package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestJobsSandboxed replays issue 9's attack through the API on the
// default install (process driver): a job of one project reads every
// /proc/*/environ, the encryption key and the jobs database through
// ../../../, and asks who it is, while a job of another project holds
// secrets in its environment. It gets none of them, and runs as neither
// root nor the server's user.
func TestJobsSandboxed(t *testing.T) {
	t.Parallel()
	inst := startSlipway(t)
	if d := callJSON(t, "GET", inst.URL+"/health", "").data(t); d["notices"] != nil {
		t.Errorf("/health notices %v on a host with cgroups and bubblewrap", d["notices"])
	}
	a, b := newJobsProject(t, inst.URL, "team-a-app"), newJobsProject(t, inst.URL, "team-b-app")
	secret := "pw-" + uniqueSeconds(t, 1)
	victim := a.createManual(fmt.Sprintf(`{"name":"holder","deployment":{"docker":{"configType":"customCommand","customCommand":"echo ready; sleep 60"}},"runtimeEnvironment":{"API_KEY":%q,"DB_PASSWORD":%q}}`, secret, secret))
	victimRun, _ := a.start(victim)
	a.waitRun(victim, victimRun, 30*time.Second, "logging", func(map[string]any) bool { return len(a.logs(victim, victimRun)) > 0 })

	key, err := os.ReadFile(filepath.Join(inst.DataDir, "encryption.key"))
	if err != nil {
		t.Fatal(err)
	}
	hostile := b.createManual(commandJob("hostile", `echo "uid $(id -u)"
cat ../../../encryption.key ../../../jobs.db 2>&1 | head -c 300; echo
for f in /proc/[0-9]*/environ; do tr '\0' '\n' < "$f" | grep -e API_KEY -e DB_PASSWORD; done 2>/dev/null
echo end`))
	run, _ := b.start(hostile)
	b.waitRun(hostile, run, 60*time.Second, "concluded", concluded)
	out := strings.Join(b.logs(hostile, run), "\n")
	if strings.Contains(out, secret) || (len(key) > 8 && strings.Contains(out, string(key[:8]))) || strings.Contains(out, "SQLite format") {
		t.Errorf("the hostile job read another's secrets or the server's data:\n%s", out)
	}
	uid := -1
	for _, l := range strings.Split(out, "\n") {
		if s, ok := strings.CutPrefix(l, "uid "); ok {
			uid, _ = strconv.Atoi(s)
		}
	}
	if uid <= 0 || uid == os.Getuid() {
		t.Errorf("the job ran as uid %d (the server's is %d):\n%s", uid, os.Getuid(), out)
	}
	callJSON(t, "DELETE", a.jobURL(victim)+"/runs/"+victimRun, "").data(t)
}

// TestJobsLimitsUnenforcedSaid: where cgroups cannot be used, Slipway says
// so at start-up and on /health, and jobs still run sandboxed.
func TestJobsLimitsUnenforcedSaid(t *testing.T) {
	t.Parallel()
	// A parent cgroup below a control file: no hierarchy can hold it.
	inst := startSlipway(t, "SLIPWAY_PROCESS_CGROUP=cgroup.procs/slipway")
	d := callJSON(t, "GET", inst.URL+"/health", "").data(t)
	notices, _ := d["notices"].(map[string]any)
	if n, _ := notices["workload-isolation"].(string); !strings.Contains(n, "limits are not enforced") || d["status"] != "ok" {
		t.Fatalf("/health %v: want ok with a workload-isolation notice", d)
	}
	warned := false
	for _, l := range inst.out.logsAt("WARN") {
		warned = warned || strings.Contains(l, "limits are not enforced")
	}
	if !warned {
		t.Errorf("no start-up warning; output:\n%s", inst.out)
	}
	api := newJobsProject(t, inst.URL, "unlimited")
	job := api.createManual(commandJob("pwd", "pwd"))
	run, _ := api.start(job)
	if r := api.waitRun(job, run, 60*time.Second, "concluded", concluded); r["status"] != "SUCCESS" {
		t.Fatalf("run %v", r)
	}
	if got := api.logs(job, run); len(got) != 1 || got[0] != "/work" {
		t.Errorf("pwd %q, want the sandbox's /work", got)
	}
}

// TestJobsNetworkNoHostLoopback: by default a job has a network of its
// own, and the server's ports on the host's loopback (here its HTTP API)
// are unreachable from it; SLIPWAY_PROCESS_NETWORK=host gives the host's
// network back, with a notice on /health.
func TestJobsNetworkNoHostLoopback(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		setting, want string
	}{{"", "refused"}, {"SLIPWAY_PROCESS_NETWORK=host", "reached"}} {
		var env []string
		if c.setting != "" {
			env = append(env, c.setting)
		}
		inst := startSlipway(t, env...)
		hostPort := strings.TrimPrefix(inst.URL, "http://")
		host, port, _ := strings.Cut(hostPort, ":")
		d := callJSON(t, "GET", inst.URL+"/health", "").data(t)
		notices, _ := d["notices"].(map[string]any)
		n, _ := notices["workload-isolation"].(string)
		if shared := strings.Contains(n, "share the host's network"); shared != (c.setting != "") {
			t.Errorf("%q: /health notices %v", c.setting, d["notices"])
		}
		api := newJobsProject(t, inst.URL, "net-app")
		job := api.createManual(commandJob("probe", fmt.Sprintf(`if timeout 5 bash -c 'exec 3<>/dev/tcp/%s/%s' 2>/dev/null; then echo reached; else echo refused; fi`, host, port)))
		run, _ := api.start(job)
		api.waitRun(job, run, 60*time.Second, "concluded", concluded)
		if got := api.logs(job, run); len(got) != 1 || got[0] != c.want {
			t.Errorf("%q: the job connecting to the server's %s: %q, want %s", c.setting, hostPort, got, c.want)
		}
	}
}
