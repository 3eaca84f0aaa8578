// Package process is the runtime driver that runs commands as local
// processes.
//
// Every workload gets a directory <stateDir>/<id>/ holding:
//
//	spec.json   name, labels, argv, deadline, start time, host uid,
//	            cgroups and ports of the run (never the env)
//	work/       the working directory of the run (WorkDir in its sandbox)
//	pid         pid, process group and kernel start time of the shim
//	info        bubblewrap's report of the sandbox (the host pid of its PID 1)
//	log.stdout  raw output, appended by the shim's shell
//	log.stderr
//	log         JSON lines {time, stream, text, off}, written by the driver
//	exit.code   the real exit status, written by the shim
//	reason      why the driver ended it (deadline, stop), if it did
//	exit        the final status (JSON), written by the driver last
//	lock        flock held by the one driver instance watching the run
//	net.*       with a private network: the FIFOs block and exit, the
//	            files ready, failed, done, slirp4netns' log (net.log),
//	            and resolv.conf, the sandbox's (see netScript); with
//	            ports, slirp4netns' API socket net.api (see ports.go)
//
// The command runs under a tiny /bin/sh shim in its own process group; the
// shim redirects the command's output to files and writes its exit status,
// so a run outlives the driver that started it and a later driver on the
// same state directory reconciles it: finished runs get their real
// outcome, running ones are watched (and still killed on deadline), and
// runs that vanished without an exit status become EXITED with
// runtime.ReasonLost.
//
// Every workload runs sandboxed (see sandbox.go): its own user id and
// namespaces (network included: slirp4netns gives it outbound network
// without the host's loopback), a root file system without the server's
// files, limits from
// its Spec's Resources and a process cap through cgroups. The shim stays
// outside the sandbox, so that it can record the exit status.
package process

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/slipwayhq/slipway/pkg/procfs"
	"github.com/slipwayhq/slipway/pkg/runtime"
)

const (
	// DefaultPath is the PATH a workload gets when its Env sets none.
	DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	// MaxLineBytes caps one log line; longer lines are split.
	MaxLineBytes = runtime.MaxLineBytes

	defaultKillGrace = 2 * time.Second
	// envFD is the descriptor on which a sandboxed run's shim, and the
	// sandbox, get the workload's environment (see envShell).
	envFD        = 7
	tailInterval = 50 * time.Millisecond
	lockRetry    = 250 * time.Millisecond
	pollInterval = 50 * time.Millisecond
)

var idPattern = regexp.MustCompile(`^[0-9a-f]{24}$`)

// Driver runs workloads as local processes. It is safe for concurrent use.
type Driver struct {
	dir   string
	sb    *sandbox
	ports *portPool
	// protected are the state directory (first) and Options.Hide,
	// resolved: no mount's Source may hold one, nor lie in the state
	// directory (see resolveMounts).
	protected []string
	// KillGrace is how long a run killed for its deadline gets between
	// SIGTERM and SIGKILL.
	KillGrace time.Duration
	// execGrace is how long Exec goes on copying output after the
	// command exited, while something it started holds the output open.
	execGrace time.Duration

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	watching map[string]bool
	// finished is closed (and replaced) whenever a run's final status has
	// been written, so Wait returns at once instead of at its next poll.
	finished chan struct{}
	startMu  sync.Mutex // serialises the name-uniqueness check in Start
}

var _ runtime.Driver = (*Driver)(nil)

// New returns a driver with the default Options keeping its state under
// stateDir, and reconciles the workloads an earlier driver left there.
func New(stateDir string) (*Driver, error) { return NewWith(stateDir, Options{}) }

// NewWith is New with opts. A host where the sandbox cannot be set up does
// not fail it: every Start then fails with the reason, which Isolation and
// Notice tell at once.
func NewWith(stateDir string, opts Options) (*Driver, error) {
	if stateDir == "" {
		return nil, errors.New("process: empty state directory")
	}
	abs, err := filepath.Abs(stateDir)
	if err != nil {
		return nil, fmt.Errorf("process: %w", err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("process: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	opts.Hide = append(slices.Clone(opts.Hide), abs)
	d := &Driver{dir: abs, sb: newSandbox(opts), ports: newPortPool(opts), KillGrace: defaultKillGrace, execGrace: 2 * time.Second, ctx: ctx, cancel: cancel, watching: map[string]bool{}, finished: make(chan struct{})}
	for _, p := range append([]string{abs}, opts.Hide...) {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			d.protected = append(d.protected, real)
		}
	}
	d.sweep()
	ids, err := d.ids()
	if err != nil {
		cancel()
		return nil, err
	}
	for _, id := range ids {
		if !d.exited(id) {
			d.ensureWatch(id, true)
		}
	}
	return d, nil
}

// Close stops the driver's watchers without touching the workloads: they
// keep running and a later New on the same state directory reattaches.
func (d *Driver) Close() error {
	d.cancel()
	d.wg.Wait()
	return nil
}

// Name implements runtime.Driver.
func (d *Driver) Name() string { return "process" }

// Isolation says in one line how the driver isolates workloads (and where
// their ports go), for the start-up log.
func (d *Driver) Isolation() string {
	return d.sb.describe() + fmt.Sprintf("; ports on 127.0.0.1:%d-%d", d.ports.first, d.ports.last)
}

// Notice is what an operator must be told about the isolation (no cgroup
// limits, no sandbox at all), or "" when workloads are fully isolated.
func (d *Driver) Notice() string { return d.sb.notice() }

// MaxProcs is the cap on one workload's processes.
func (d *Driver) MaxProcs() int { return d.sb.procs }

type specFile struct {
	ID       string            `json:"id"`
	Name     string            `json:"name"`
	Labels   map[string]string `json:"labels,omitempty"`
	Argv     []string          `json:"argv"`
	Deadline time.Duration     `json:"deadline,omitempty"`
	Started  time.Time         `json:"started"`
	// Sandboxed runs are signalled in their sandbox's PID namespace, not
	// through the process group (which holds bubblewrap too).
	Sandboxed bool     `json:"sandboxed,omitempty"`
	UID       int      `json:"uid,omitempty"`
	Cgroups   []string `json:"cgroups,omitempty"`
	// Ports are the Spec's ports and the host ports they got, held until
	// Remove (see ports.go).
	Ports []portFile `json:"ports,omitempty"`
	// WorkDir is where the command started, and where an Exec starts
	// unless told otherwise: a path in the sandbox, or the host's path
	// unsandboxed (empty: WorkDir, for runs of earlier versions).
	WorkDir string `json:"workDir,omitempty"`
	// Mounts are the Spec's mounts, their Sources resolved, for an
	// unsandboxed Exec's WorkDir (see hostPath).
	Mounts []runtime.Mount `json:"mounts,omitempty"`
}

type pidFile struct {
	PID   int    `json:"pid"`
	PGID  int    `json:"pgid"`
	Start uint64 `json:"start"` // /proc/<pid>/stat starttime
}

type exitFile struct {
	Code     int       `json:"code"`
	Reason   string    `json:"reason,omitempty"`
	Finished time.Time `json:"finished"`
}

type logRecord struct {
	Time   time.Time `json:"time"`
	Stream string    `json:"stream"`
	Text   string    `json:"text"`
	Off    int64     `json:"off"` // end offset of the line in log.<stream>
}

func (d *Driver) path(id string, elem ...string) string {
	return filepath.Join(append([]string{d.dir, id}, elem...)...)
}

func (d *Driver) ids() ([]string, error) {
	ents, err := os.ReadDir(d.dir)
	if err != nil {
		return nil, fmt.Errorf("process: %w", err)
	}
	var ids []string
	for _, e := range ents {
		if e.IsDir() && idPattern.MatchString(e.Name()) {
			ids = append(ids, e.Name())
		}
	}
	return ids, nil
}

func (d *Driver) exited(id string) bool {
	_, err := os.Stat(d.path(id, "exit"))
	return err == nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// writeFileAtomic writes via a temporary file and a rename.
func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Protocols implements runtime.PortProtocols: TCP and UDP on the host
// network (and unsandboxed), TCP only on the private network (slirp4netns
// drops a workload's UDP answers to the host's loopback), none without a
// network.
func (d *Driver) Protocols() []string { return d.protocols(false) }

// protocols are those of a run's ports, hostNet its Spec's HostNetwork.
func (d *Driver) protocols(hostNet bool) []string {
	switch net := d.sb.netOf(hostNet); {
	case d.sb.off || net == NetworkHost:
		return []string{runtime.ProtocolTCP, runtime.ProtocolUDP}
	case net == NetworkNone:
		return []string{}
	}
	return []string{runtime.ProtocolTCP}
}

// Start implements runtime.Driver.
func (d *Driver) Start(ctx context.Context, spec runtime.Spec) (string, error) {
	if spec.Image != "" {
		return "", fmt.Errorf("%w: the process driver runs commands, not images (got image %q); use the docker driver or give a command", runtime.ErrUnsupported, spec.Image)
	}
	if spec.User != "" {
		return "", fmt.Errorf("%w: the process driver runs every workload as a user of its own; it cannot run one as %q", runtime.ErrUnsupported, spec.User)
	}
	if err := runtime.ValidatePorts(spec.Ports); err != nil {
		return "", fmt.Errorf("process: %w", err)
	}
	mounts, err := d.resolveMounts(spec.Mounts, spec.WorkDir)
	if err != nil {
		return "", fmt.Errorf("process: %w", err)
	}
	if len(spec.Ports) > 0 && !d.sb.off && d.sb.netOf(spec.HostNetwork) == NetworkNone {
		return "", errors.New("process: the workload has ports, but process-driver sandboxes have no network to reach them by (process-network is none)")
	}
	if !slices.Contains(d.protocols(spec.HostNetwork), runtime.ProtocolUDP) {
		for _, p := range spec.Ports {
			if p.Protocol == runtime.ProtocolUDP {
				return "", fmt.Errorf("%w: UDP port %q: with process-network private, slirp4netns drops a workload's UDP answers to the host's loopback (--disable-host-loopback); use TCP, or the host network for trusted workloads", runtime.ErrUnsupported, p.Name)
			}
		}
	}
	argv := append(slices.Clone(spec.Entrypoint), spec.Command...)
	if len(argv) == 0 || argv[0] == "" {
		return "", errors.New("process: the spec has no command to run")
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if !d.sb.off && d.sb.err != nil {
		return "", fmt.Errorf("process: cannot sandbox the workload: %w", d.sb.err)
	}
	d.startMu.Lock()
	defer d.startMu.Unlock()
	if spec.Name != "" {
		ids, err := d.ids()
		if err != nil {
			return "", err
		}
		for _, id := range ids {
			var sf specFile
			if readJSON(d.path(id, "spec.json"), &sf) == nil && sf.Name == spec.Name {
				return "", fmt.Errorf("process: a workload named %q exists already (%s)", spec.Name, id)
			}
		}
	}

	var rb [12]byte
	if _, err = rand.Read(rb[:]); err != nil {
		return "", fmt.Errorf("process: %w", err)
	}
	id := hex.EncodeToString(rb[:])
	// Build the directory under a hidden name, holding its lock, so that no
	// other driver instance sees (and reconciles) a half-made workload.
	tmpDir := filepath.Join(d.dir, newPrefix+id)
	dir := d.path(id)
	sf := specFile{ID: id, Name: spec.Name, Labels: spec.Labels, Argv: argv, Deadline: spec.Deadline, Started: time.Now(), Sandboxed: !d.sb.off,
		WorkDir: cmp.Or(spec.WorkDir, WorkDir), Mounts: mounts}
	if !sf.Sandboxed {
		sf.WorkDir = hostPath(sf.WorkDir, mounts, filepath.Join(dir, "work"))
	}
	var uidLock *os.File // held by the shim for the run's life
	var hostPorts []int
	fail := func(err error) (string, error) {
		killAll(sf.Cgroups)
		d.ports.release(dir, hostPorts)
		if uidLock != nil {
			uidLock.Close()
		}
		_ = os.RemoveAll(tmpDir)
		_ = os.RemoveAll(dir)
		return "", fmt.Errorf("process: starting %q: %w", spec.Name, err)
	}
	if err := os.MkdirAll(filepath.Join(tmpDir, "work"), 0o700); err != nil {
		return fail(err)
	}
	private := sf.Sandboxed && d.sb.netOf(spec.HostNetwork) == NetworkPrivate
	env := spec.Env
	if len(spec.Ports) > 0 {
		protos := make([]string, len(spec.Ports))
		for i, p := range spec.Ports {
			protos[i] = cmp.Or(p.Protocol, runtime.ProtocolTCP)
		}
		if hostPorts, err = d.ports.alloc(dir, protos, int(rb[3])<<8|int(rb[4])); err != nil {
			return fail(err)
		}
		for i, p := range spec.Ports {
			sf.Ports = append(sf.Ports, portFile{Name: p.Name, Port: p.Port, Protocol: protos[i], Host: hostPorts[i]})
		}
		// A private network honours the Spec's numbers; the host's
		// cannot (see ports.go).
		if private {
			env = portEnv(env, spec.Ports, nil)
		} else {
			env = portEnv(env, spec.Ports, hostPorts)
		}
	}
	if sf.Sandboxed {
		if d.sb.root {
			sf.UID, uidLock, err = d.sb.allocUID(int(rb[0])<<16 | int(rb[1])<<8 | int(rb[2]))
			if err != nil {
				return fail(err)
			}
			if err := d.sb.chownWork(filepath.Join(tmpDir, "work"), sf.UID); err != nil {
				return fail(err)
			}
			for _, m := range mounts {
				if !m.ReadOnly {
					if err := chownTree(m.Source, sf.UID); err != nil {
						return fail(fmt.Errorf("giving mount %s to the workload's user: %w", m.Target, err))
					}
				}
			}
		}
		if d.sb.cg != nil {
			if sf.Cgroups, err = d.sb.cg.create(id, spec.Resources.MilliCPU, spec.Resources.MemoryMB, d.sb.procs); err != nil {
				return fail(err)
			}
		}
	}
	if private {
		// The FIFOs through which the shim lets the command run once the
		// sandbox's network is up, and ends slirp4netns (see netScript),
		// and the sandbox's resolv.conf.
		for _, f := range []string{"net.block", "net.exit"} {
			if err := syscall.Mkfifo(filepath.Join(tmpDir, f), 0o600); err != nil {
				return fail(err)
			}
		}
		// The files slirp4netns writes exist from the start, like the
		// logs: the directory of a starting run gets no new entries.
		for _, f := range []string{"net.ready", "net.log"} {
			if err := os.WriteFile(filepath.Join(tmpDir, f), nil, 0o600); err != nil {
				return fail(err)
			}
		}
		host, _ := os.ReadFile("/etc/resolv.conf")
		if err := os.WriteFile(filepath.Join(tmpDir, "resolv.conf"), resolvConf(host), 0o644); err != nil {
			return fail(err)
		}
	}
	lock, ok, err := tryLock(filepath.Join(tmpDir, "lock"))
	if err != nil || !ok {
		return fail(fmt.Errorf("locking: %v", err))
	}
	b, _ := json.Marshal(sf)
	if err := os.WriteFile(filepath.Join(tmpDir, "spec.json"), b, 0o600); err != nil {
		lock.Close()
		return fail(err)
	}
	for _, f := range []string{"log", "log.stdout", "log.stderr"} {
		if err := os.WriteFile(filepath.Join(tmpDir, f), nil, 0o600); err != nil {
			lock.Close()
			return fail(err)
		}
	}
	if err := os.Rename(tmpDir, dir); err != nil {
		lock.Close()
		return fail(err)
	}

	envList := make([]string, 0, len(env)+1)
	for _, k := range slices.Sorted(maps.Keys(env)) {
		envList = append(envList, k+"="+env[k])
	}
	if _, ok := env["PATH"]; !ok {
		envList = append(envList, "PATH="+DefaultPath)
	}
	// The shim: its own process group (so a kill reaches every process of
	// the run), output to files (so it survives the driver), and the real
	// exit status to a file. It survives SIGTERM (the trap runs once the
	// command ended) so that the status of a command that handles SIGTERM
	// is still recorded; SIGKILL of the group leaves no exit.code.
	//
	// A sandboxed run's shim first joins the run's cgroups (so that all it
	// starts is limited), then runs bubblewrap with the working directory
	// open as fd 5 and the sandbox's info going to the file info (fd 4);
	// fd 3 is the lock of the run's host uid, which only the shim holds.
	stdout, stderr := shellQuote(filepath.Join(dir, "log.stdout")), shellQuote(filepath.Join(dir, "log.stderr"))
	exitCode := shellQuote(filepath.Join(dir, "exit.code"))
	script := "trap : TERM\n"
	redirs := " </dev/null"
	if sf.Sandboxed {
		if len(sf.Cgroups) > 0 {
			var join []string
			for _, cg := range sf.Cgroups {
				join = append(join, "echo $$ >"+shellQuote(filepath.Join(cg, "cgroup.procs")))
			}
			script += "{ " + strings.Join(join, " && ") + "; } 2>/dev/null || { echo 'slipway: the workload could not join its cgroup' >>" + stderr +
				"; echo 125 >" + exitCode + "; exit 125; }\n"
		}
		info := filepath.Join(dir, "info")
		redirs += " 3>&- 4>" + shellQuote(info) + " 5<" + shellQuote(filepath.Join(dir, "work"))
		blockFD, resolv := -1, ""
		if private {
			// fd 9: the write end of net.exit, held by the shim alone
			// for as long as it lives; fd 6: what the sandbox's PID 1
			// waits on until the network is up.
			script += "exec 9<>" + shellQuote(filepath.Join(dir, "net.exit")) + "\n" +
				d.sb.netScript(info, filepath.Join(dir, "net.block"), filepath.Join(dir, "net.exit"), filepath.Join(dir, "net.ready"),
					filepath.Join(dir, "net.log"), filepath.Join(dir, "net.failed"), filepath.Join(dir, "net.done"), filepath.Join(dir, "log.stderr"), len(sf.Ports) > 0)
			redirs += " 6<" + shellQuote(filepath.Join(dir, "net.block")) + " 9>&-"
			blockFD, resolv = 6, filepath.Join(dir, "resolv.conf")
		}
		// The environment goes to the command alone, through the pipe
		// on fd 7, once setpriv has made it the workload's user (see
		// envShell): the shim and everything before the command run
		// with PATH only.
		argv = append([]string{"/bin/sh", "-c", envShell(envFD), "slipway-env"}, argv...)
		argv = d.sb.argv(sandboxRun{uid: sf.UID, workFD: 5, infoFD: 4, blockFD: blockFD, resolv: resolv, env: env,
			mounts: mounts, workDir: sf.WorkDir, hostNet: spec.HostNetwork}, argv)
	}
	script += `"$@" >>` + stdout + ` 2>>` + stderr + redirs + "\n" + "c=$?\n"
	if private {
		// A run whose network could not be set up did not run at all.
		script += "[ -e " + shellQuote(filepath.Join(dir, "net.failed")) + " ] && c=125\n" +
			netEndScript(filepath.Join(dir, "net.block"), filepath.Join(dir, "net.done"))
	}
	script += "echo $c >" + exitCode + "\n"
	if len(sf.Cgroups) > 0 {
		script += d.sb.cg.leaveScript(sf.Cgroups)
	}
	cmd := exec.Command("/bin/sh", append([]string{"-c", script, "slipway-shim"}, argv...)...)
	cmd.Env = envList
	cmd.Dir = sf.WorkDir
	var envW *os.File
	if sf.Sandboxed {
		cmd.Dir = dir
		cmd.Env = []string{"PATH=" + DefaultPath}
		envR, w, err := os.Pipe()
		if err != nil {
			lock.Close()
			return fail(err)
		}
		envW = w
		defer envR.Close() // the shim has its copy
		// fd 3: the uid lock (nil: closed); fd envFD: the environment.
		cmd.ExtraFiles = make([]*os.File, envFD-2)
		cmd.ExtraFiles[0], cmd.ExtraFiles[envFD-3] = uidLock, envR
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		if envW != nil {
			envW.Close()
		}
		lock.Close()
		return fail(err)
	}
	if envW != nil {
		// A pipe holds 64 KiB: a larger environment is read while it
		// is written.
		text := envScript(envList, "")
		go func() {
			_, _ = envW.Write(text)
			envW.Close()
		}()
	}
	if uidLock != nil {
		uidLock.Close() // the shim's copy holds the lock
		uidLock = nil
	}
	pf := pidFile{PID: cmd.Process.Pid, PGID: cmd.Process.Pid}
	if st, err := procfs.ReadStat(pf.PID); err == nil {
		pf.Start = st.Start
	}
	b, _ = json.Marshal(pf)
	if err := writeFileAtomic(filepath.Join(dir, "pid"), b); err != nil {
		_ = syscall.Kill(-pf.PGID, syscall.SIGKILL)
		_ = cmd.Wait()
		lock.Close()
		return fail(err)
	}

	reaped := make(chan struct{})
	h := &holder{d: d, id: id, lock: lock, spec: sf, pid: &pf, reaped: reaped}
	go func() {
		_ = cmd.Wait()
		h.state = cmd.ProcessState
		close(reaped)
	}()
	if private && len(sf.Ports) > 0 {
		// Reachable when Start returns, or not started at all; unless
		// the run ended meanwhile (slirp4netns with it), which is its
		// outcome to report.
		ended := func() bool {
			_, err := os.Stat(filepath.Join(dir, "net.done"))
			return err == nil || h.gone()
		}
		if err := forward(dir, sf.Ports, h.gone, time.Now().Add(time.Minute)); err != nil && !ended() {
			killGroup(&pf, syscall.SIGKILL)
			<-reaped
			lock.Close()
			return fail(err)
		}
	}
	d.mu.Lock()
	d.watching[id] = true
	d.mu.Unlock()
	d.wg.Add(1)
	go d.watchLoop(id, h)
	return id, nil
}

// ensureWatch makes sure some goroutine of d watches the unfinished run
// id; with sync, a run whose process is gone is reconciled before
// returning.
func (d *Driver) ensureWatch(id string, sync bool) {
	d.mu.Lock()
	if d.watching[id] || d.ctx.Err() != nil {
		d.mu.Unlock()
		return
	}
	d.watching[id] = true
	d.mu.Unlock()
	var h *holder
	if sync {
		h = d.acquire(id)
		if h != nil && h.gone() {
			h.finish()
			d.mu.Lock()
			delete(d.watching, id)
			d.mu.Unlock()
			return
		}
	}
	d.wg.Add(1)
	go d.watchLoop(id, h)
}

func (d *Driver) watchLoop(id string, h *holder) {
	defer d.wg.Done()
	defer func() {
		d.mu.Lock()
		delete(d.watching, id)
		d.mu.Unlock()
	}()
	for {
		if h == nil {
			if d.exited(id) {
				return
			}
			if _, err := os.Stat(d.path(id)); err != nil {
				return // removed
			}
			h = d.acquire(id)
		}
		if h != nil {
			h.run(d.ctx)
			return
		}
		select {
		case <-d.ctx.Done():
			return
		case <-time.After(lockRetry):
		}
	}
}

// acquire takes the watch of an unfinished run a previous (or another)
// driver instance started; nil if someone else watches it.
func (d *Driver) acquire(id string) *holder {
	lock, ok, err := tryLock(d.path(id, "lock"))
	if err != nil || !ok {
		return nil
	}
	if d.exited(id) {
		lock.Close()
		return nil
	}
	h := &holder{d: d, id: id, lock: lock}
	_ = readJSON(d.path(id, "spec.json"), &h.spec)
	var pf pidFile
	if readJSON(d.path(id, "pid"), &pf) == nil && pf.PID > 0 {
		h.pid = &pf
	}
	h.recoverOffsets()
	return h
}

func tryLock(path string) (*os.File, bool, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, false, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, false, nil
		}
		return nil, false, err
	}
	return f, true, nil
}

// holder watches one run, holding its lock: it tails the output into the
// JSON log, enforces the deadline and writes the final status.
type holder struct {
	d      *Driver
	id     string
	lock   *os.File
	spec   specFile
	pid    *pidFile
	reaped chan struct{}    // closed when the shim was reaped (live runs only)
	state  *os.ProcessState // valid once reaped is closed
	offs   [2]int64         // consumed bytes of log.stdout, log.stderr
}

var streams = [2]string{"stdout", "stderr"}

func (h *holder) gone() bool {
	if h.reaped != nil {
		select {
		case <-h.reaped:
			return true
		default:
			return false
		}
	}
	return h.pid == nil || !alive(h.pid)
}

func (h *holder) run(ctx context.Context) {
	var deadline <-chan time.Time
	if h.spec.Deadline > 0 {
		t := time.NewTimer(time.Until(h.spec.Started.Add(h.spec.Deadline)))
		defer t.Stop()
		deadline = t.C
	}
	tick := time.NewTicker(tailInterval)
	defer tick.Stop()
	for {
		h.tail(false)
		if h.gone() {
			h.finish()
			return
		}
		select {
		case <-ctx.Done():
			h.lock.Close()
			return
		case <-h.reaped: // nil (blocks forever) for reattached runs
		case <-tick.C:
		case <-deadline:
			deadline = nil
			h.d.wg.Add(1)
			go func() {
				defer h.d.wg.Done()
				h.d.kill(context.Background(), h.id, runtime.ReasonDeadline, h.d.KillGrace)
			}()
		}
	}
}

// finish writes the final status of a run whose shim is gone.
func (h *holder) finish() {
	defer h.d.announceFinish()
	defer h.lock.Close()
	if h.pid != nil {
		killGroup(h.pid, syscall.SIGKILL) // background leftovers of the run
		// A run is reported exited only once nothing of it runs any more.
		for deadline := time.Now().Add(2 * time.Second); groupMembers(h.pid.PGID) > 0 && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
	}
	// Whatever left the process group (and, were the sandbox's PID
	// namespace not to end it, the PID namespace): the cgroups hold it.
	killAll(h.spec.Cgroups)
	h.tail(true)
	ef := exitFile{Finished: time.Now()}
	if b, err := os.ReadFile(h.d.path(h.id, "reason")); err == nil {
		ef.Reason = strings.TrimSpace(string(b))
	}
	code, err := readCode(h.d.path(h.id, "exit.code"))
	switch {
	case err == nil:
		ef.Code = code
	case h.state != nil:
		ef.Code = h.state.ExitCode()
		if ws, ok := h.state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			ef.Code = 128 + int(ws.Signal())
		}
	case ef.Reason != "":
		ef.Code = 128 + int(syscall.SIGKILL)
	default:
		ef.Code, ef.Reason = -1, runtime.ReasonLost
	}
	b, _ := json.Marshal(ef)
	_ = writeFileAtomic(h.d.path(h.id, "exit"), b)
}

func readCode(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// recoverOffsets learns from the JSON log how much output earlier holders
// consumed, and ends a line a crash may have left unterminated.
func (h *holder) recoverOffsets() {
	f, err := os.OpenFile(h.d.path(h.id, "log"), os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return
	}
	defer f.Close()
	r := bufio.NewReader(f)
	last := byte('\n')
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 {
			last = line[len(line)-1]
			var rec logRecord
			if json.Unmarshal(line, &rec) == nil {
				for i, s := range streams {
					if rec.Stream == s && rec.Off > h.offs[i] {
						h.offs[i] = rec.Off
					}
				}
			}
		}
		if err != nil {
			break
		}
	}
	if last != '\n' {
		_, _ = f.Write([]byte{'\n'})
	}
}

// tail moves new output lines into the JSON log; final flushes
// unterminated lines too.
func (h *holder) tail(final bool) {
	var out bytes.Buffer
	now := time.Now()
	for i, s := range streams {
		f, err := os.Open(h.d.path(h.id, "log."+s))
		if err != nil {
			continue
		}
		data, _ := io.ReadAll(io.NewSectionReader(f, h.offs[i], 1<<62))
		f.Close()
		for len(data) > 0 {
			n := bytes.IndexByte(data, '\n')
			var text []byte
			var used int
			switch {
			case n >= 0 && n <= MaxLineBytes:
				text, used = data[:n], n+1
			case len(data) >= MaxLineBytes:
				text, used = data[:MaxLineBytes], MaxLineBytes
			case final:
				text, used = data, len(data)
			default:
				used = 0
			}
			if used == 0 {
				break
			}
			h.offs[i] += int64(used)
			data = data[used:]
			b, _ := json.Marshal(logRecord{Time: now, Stream: s, Text: string(bytes.TrimSuffix(text, []byte{'\r'})), Off: h.offs[i]})
			out.Write(b)
			out.WriteByte('\n')
		}
	}
	if out.Len() == 0 {
		return
	}
	f, err := os.OpenFile(h.d.path(h.id, "log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return
	}
	_, _ = f.Write(out.Bytes())
	f.Close()
}

// alive reports whether the shim still runs (and is still ours, not a
// process that reused its pid).
func alive(p *pidFile) bool {
	st, err := procfs.ReadStat(p.PID)
	if err != nil || st.State == 'Z' || st.State == 'X' {
		return false
	}
	return p.Start == 0 || st.Start == p.Start
}

// groupMembers counts the live (not zombie) processes of a process group.
func groupMembers(pgid int) int {
	return len(groupPIDs(pgid))
}

// killGroup signals the run's process group unless its id was reused: a
// group id cannot be reused while the group has members, so it is ours
// unless a different process now leads a group of that id.
func killGroup(p *pidFile, sig syscall.Signal) {
	if st, err := procfs.ReadStat(p.PGID); err == nil && p.Start != 0 && st.Start != p.Start && st.State != 'Z' {
		return
	}
	_ = syscall.Kill(-p.PGID, sig)
}

// signalSandbox signals every process of a run's sandbox, as a signal to
// the process group did before there was a sandbox: bubblewrap wrote the
// host pid of the sandbox's PID 1 and its PID namespace to info. False if
// the sandbox does not run (yet, or any more).
//
// PID 1 only gets the signal if it handles it (the kernel's rule for a
// namespace's init), as in a container; its children get it either way,
// so `sh -c "sleep 600"` ends at once.
func signalSandbox(info string, p *pidFile, sig syscall.Signal) bool {
	_, ns, ok := sandboxInitNS(info, p)
	if !ok {
		return false
	}
	for _, pid := range pidsInNS(ns) {
		_ = syscall.Kill(pid, sig)
	}
	return true
}

// sandboxInit is the host pid of the PID 1 of a run's sandbox, from
// bubblewrap's info, if it still runs; false if the sandbox does not run
// (yet, or any more).
func sandboxInit(info string, p *pidFile) (int, bool) {
	pid, _, ok := sandboxInitNS(info, p)
	return pid, ok
}

// sandboxInitNS is sandboxInit with the sandbox's PID namespace, as
// /proc/<pid>/ns/pid names it.
func sandboxInitNS(info string, p *pidFile) (int, string, bool) {
	var in struct {
		ChildPID int    `json:"child-pid"`
		PIDNS    uint64 `json:"pid-namespace"`
	}
	if readJSON(info, &in) != nil || in.ChildPID <= 0 || in.PIDNS == 0 {
		return 0, "", false
	}
	// Still ours: in the run's process group, started after its shim.
	st, err := procfs.ReadStat(in.ChildPID)
	if err != nil || st.Pgrp != p.PGID || st.State == 'Z' || st.State == 'X' || st.Start < p.Start {
		return 0, "", false
	}
	ns := "pid:[" + strconv.FormatUint(in.PIDNS, 10) + "]"
	if got, err := procfs.NS(in.ChildPID, "pid"); err != nil || got != ns {
		return 0, "", false
	}
	return in.ChildPID, ns, true
}

// kill ends a run: reason recorded first, SIGTERM to the group, SIGKILL
// after grace.
func (d *Driver) kill(ctx context.Context, id, reason string, grace time.Duration) {
	if d.exited(id) {
		return
	}
	if f, err := os.OpenFile(d.path(id, "reason"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		_, _ = f.WriteString(reason)
		f.Close()
	}
	var pf pidFile
	if readJSON(d.path(id, "pid"), &pf) != nil || pf.PID <= 0 {
		return
	}
	if !alive(&pf) {
		return // the watcher of the run kills what is left
	}
	var sf specFile
	_ = readJSON(d.path(id, "spec.json"), &sf)
	// A sandbox's processes get SIGTERM, not bubblewrap's own process
	// (which would die of it and take the sandbox down with SIGKILL).
	// Before the sandbox runs, the group gets it.
	if !sf.Sandboxed || !signalSandbox(d.path(id, "info"), &pf, syscall.SIGTERM) {
		killGroup(&pf, syscall.SIGTERM)
	}
	end := time.NewTimer(grace)
	defer end.Stop()
	for alive(&pf) {
		select {
		case <-ctx.Done():
		case <-end.C:
		case <-time.After(pollInterval):
			continue
		}
		break
	}
	if alive(&pf) {
		killGroup(&pf, syscall.SIGKILL)
	}
}

func (d *Driver) status(id string) (runtime.Status, error) {
	if !idPattern.MatchString(id) {
		return runtime.Status{}, runtime.ErrNotFound
	}
	var sf specFile
	if err := readJSON(d.path(id, "spec.json"), &sf); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return runtime.Status{}, runtime.ErrNotFound
		}
		return runtime.Status{}, fmt.Errorf("process: %s: %w", id, err)
	}
	st := runtime.Status{ID: id, Name: sf.Name, Labels: sf.Labels, State: runtime.StateRunning, StartedAt: sf.Started}
	var ef exitFile
	if err := readJSON(d.path(id, "exit"), &ef); err == nil {
		st.State, st.ExitCode, st.Reason, st.FinishedAt = runtime.StateExited, ef.Code, ef.Reason, ef.Finished
	} else {
		d.ensureWatch(id, false)
		for _, p := range sf.Ports {
			if st.Ports == nil {
				st.Ports = map[string]string{}
			}
			st.Ports[p.Name] = "127.0.0.1:" + strconv.Itoa(p.Host)
		}
	}
	return st, nil
}

// Status implements runtime.Driver.
func (d *Driver) Status(ctx context.Context, id string) (runtime.Status, error) {
	return d.status(id)
}

// announceFinish wakes every Wait: some run has finished.
func (d *Driver) announceFinish() {
	d.mu.Lock()
	close(d.finished)
	d.finished = make(chan struct{})
	d.mu.Unlock()
}

// Wait implements runtime.Driver. Runs this driver watches wake it as
// they finish; the poll covers runs another process watches.
func (d *Driver) Wait(ctx context.Context, id string) (runtime.Status, error) {
	for {
		d.mu.Lock()
		finished := d.finished // taken before the check, so no finish is missed
		d.mu.Unlock()
		st, err := d.status(id)
		if err != nil || st.State == runtime.StateExited {
			return st, err
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-finished:
		case <-time.After(pollInterval):
		}
	}
}

// Logs implements runtime.Driver.
func (d *Driver) Logs(ctx context.Context, id string, follow bool) iter.Seq2[runtime.LogLine, error] {
	return func(yield func(runtime.LogLine, error) bool) {
		if _, err := d.status(id); err != nil {
			yield(runtime.LogLine{}, err)
			return
		}
		f, err := os.Open(d.path(id, "log"))
		if err != nil {
			yield(runtime.LogLine{}, fmt.Errorf("process: %w", err))
			return
		}
		defer f.Close()
		r := bufio.NewReader(f)
		var partial []byte
		for {
			d.mu.Lock()
			finished := d.finished
			d.mu.Unlock()
			done := !follow || d.exited(id)
			for {
				line, err := r.ReadBytes('\n')
				partial = append(partial, line...)
				if err != nil {
					break // EOF: an unterminated line is kept for later
				}
				var rec logRecord
				if json.Unmarshal(partial, &rec) == nil {
					if !yield(runtime.LogLine{Time: rec.Time, Stream: rec.Stream, Text: rec.Text}, nil) {
						return
					}
				}
				partial = partial[:0]
			}
			if done {
				return
			}
			if _, err := os.Stat(d.path(id)); err != nil {
				return // removed meanwhile
			}
			select {
			case <-ctx.Done():
				yield(runtime.LogLine{}, ctx.Err())
				return
			case <-finished:
			case <-time.After(pollInterval):
			}
		}
	}
}

// Stop implements runtime.Driver.
func (d *Driver) Stop(ctx context.Context, id string, grace time.Duration) error {
	st, err := d.status(id)
	if err != nil || st.State == runtime.StateExited {
		return err
	}
	d.kill(ctx, id, runtime.ReasonStopped, grace)
	return ctx.Err()
}

// Prefixes of directories that are not (or no longer) workloads: ids()
// never lists them.
const (
	newPrefix      = ".new-"      // a workload being made by Start
	removingPrefix = ".removing-" // a workload being deleted by Remove
)

// Remove implements runtime.Driver. The run's directory leaves the
// driver's view in one rename before it is deleted: deleted in place, a
// listing (or Status) could see it half deleted, its exit file gone and
// its spec not yet, take it for an unfinished run and start watching it,
// and the watcher would create files in it while it was being deleted
// ("directory not empty", and a directory no later start could identify).
// What a failed deletion leaves is swept by the next New.
func (d *Driver) Remove(ctx context.Context, id string) error {
	st, err := d.status(id)
	if err != nil {
		return err
	}
	if st.State != runtime.StateExited {
		return fmt.Errorf("process: workload %s is still running; stop it first", id)
	}
	var sf specFile
	if readJSON(d.path(id, "spec.json"), &sf) == nil {
		killAll(sf.Cgroups) // gone already, unless a finish gave up
		hostPorts := make([]int, len(sf.Ports))
		for i, p := range sf.Ports {
			hostPorts[i] = p.Host
		}
		d.ports.release(d.path(id), hostPorts)
	}
	doomed := filepath.Join(d.dir, removingPrefix+id)
	if err := os.Rename(d.path(id), doomed); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return runtime.ErrNotFound // removed meanwhile by another caller
		}
		return fmt.Errorf("process: %w", err)
	}
	// A straggler of the run that escaped its process group may still be
	// creating files in it: try again briefly before leaving it to sweep.
	for try := 0; ; try++ {
		err := os.RemoveAll(doomed)
		if err == nil {
			return nil
		}
		if try == 2 {
			return fmt.Errorf("process: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sweep deletes what earlier driver instances left half done in the state
// directory: removals that did not finish, starts that died before their
// workload was made, and run directories without a spec (a workload
// always has one from the moment its directory has its id; only an
// interrupted deletion leaves one without).
func (d *Driver) sweep() {
	ents, err := os.ReadDir(d.dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		name, path := e.Name(), filepath.Join(d.dir, e.Name())
		if !e.IsDir() {
			continue
		}
		switch {
		case strings.HasPrefix(name, removingPrefix):
		case strings.HasPrefix(name, newPrefix):
			// Another driver instance on this directory may be starting it
			// right now: it holds the lock until the workload is made.
			lock, ok, err := tryLock(filepath.Join(path, "lock"))
			if err != nil || !ok {
				continue
			}
			lock.Close()
		case idPattern.MatchString(name):
			if _, err := os.Stat(filepath.Join(path, "spec.json")); !errors.Is(err, os.ErrNotExist) {
				continue
			}
		default:
			continue
		}
		_ = os.RemoveAll(path)
	}
}

// List implements runtime.Driver.
func (d *Driver) List(ctx context.Context, labels map[string]string) ([]runtime.Status, error) {
	ids, err := d.ids()
	if err != nil {
		return nil, err
	}
	var out []runtime.Status
	for _, id := range ids {
		st, err := d.status(id)
		if err != nil {
			continue // half-made or removed meanwhile
		}
		match := true
		for k, v := range labels {
			if got, ok := st.Labels[k]; !ok || got != v {
				match = false
				break
			}
		}
		if match {
			out = append(out, st)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].StartedAt.Before(out[j].StartedAt) })
	return out, nil
}

// RemoveAll stops (without grace) and removes every workload under
// stateDir, if it exists: what a test or an operator clearing an install
// needs, since workloads outlive the server that started them by design.
func RemoveAll(ctx context.Context, stateDir string) error {
	if _, err := os.Stat(stateDir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	d, err := New(stateDir)
	if err != nil {
		return err
	}
	defer d.Close()
	list, err := d.List(ctx, nil)
	if err != nil {
		return err
	}
	var errs []error
	for _, w := range list {
		_ = d.Stop(ctx, w.ID, 0)
		if _, err := d.Wait(ctx, w.ID); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := d.Remove(ctx, w.ID); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
