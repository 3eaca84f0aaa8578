package process

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"

	"github.com/slipwayhq/slipway/pkg/procfs"
	"github.com/slipwayhq/slipway/pkg/runtime"
)

// Exec: a command run inside a running workload's sandbox can do no more
// than the workload itself. A shell on the host joins the run's cgroups
// (so the command counts against its limits) and becomes nsenter, which
// enters every namespace of the sandbox's PID 1 that is not the server's
// (network, cgroup, IPC, UTS, PID, mount; as a normal user each through
// the user namespace owning it, and last the command's own user
// namespace: see nsSteps) and its root; there, as the workload does,
// prlimit caps its user's processes and setpriv makes it the run's uid
// and gid with no capabilities, an empty bounding set and no_new_privs.
// As a normal user the command is SandboxUID of user namespaces without a
// root, so it has no capabilities from its first execve on: setpriv
// cannot empty its bounding set then, which with no_new_privs and no uid
// 0 to become could grant nothing anyway. Only then does a shell of the sandbox
// take on the environment (the workload's, read from its PID 1's
// /proc/<pid>/environ when Exec runs since it is never stored, plus the
// ExecSpec's), change to the working directory and exec the command.
//
// The environment reaches that last shell through a pipe (see envShell),
// as the workload's own does.
//
// Unsandboxed workloads run as the server's user: so does the command, in
// the run's working directory (its WorkDir's host path, see hostPath) with
// its environment.

// shellName is a name the last shell can export.
var shellName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// envShell is the script of the shell that gives a sandboxed command its
// environment, the last step before the command, once setpriv has made it
// the workload's user: it runs the shell code envScript wrote to
// descriptor fd (a pipe), then the command in $@.
//
// A workload's environment (its runtime variables, the user's to choose)
// must reach neither the processes that run as root on the host (the
// run's shim, prlimit, unshare, bubblewrap; nsenter for an exec) nor those
// with privileges in the sandbox (setpriv): given LD_PRELOAD, the dynamic
// loader of each would load a library of the workload's choosing, say
// one an earlier run wrote to its working directory, whose host path a
// sandbox can read in /proc/self/mountinfo. Nor may it appear in
// arguments, which anyone on the host can read in /proc/<pid>/cmdline.
func envShell(fd int) string {
	n := strconv.Itoa(fd)
	return `eval "$(cat <&` + n + `)" || exit 126
exec ` + n + `<&-
exec "$@"`
}

// envScript is the shell code envShell runs: export env and, when dir is
// not empty, change to dir (leaving OLDPWD as env has it). Variables whose
// names are no shell names ("spring.profiles.active") cannot be exported:
// /usr/bin/env sets them, given them as arguments for the moment before it
// runs the command (a command whose name holds "=" would be taken for one
// of them).
func envScript(env []string, dir string) []byte {
	var b strings.Builder
	var odd []string
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if shellName.MatchString(k) {
			b.WriteString("export " + k + "=" + shellQuote(v) + "\n")
		} else if k != "" {
			odd = append(odd, shellQuote(kv))
		}
	}
	if dir != "" {
		b.WriteString("cd -- " + shellQuote(dir) + " || exit 126\n")
		if old, ok := lookupEnv(env, "OLDPWD"); ok {
			b.WriteString("OLDPWD=" + shellQuote(old) + "\n")
		} else {
			b.WriteString("unset OLDPWD\n")
		}
	}
	if len(odd) > 0 {
		b.WriteString(`set -- /usr/bin/env -- ` + strings.Join(odd, " ") + ` "$@"` + "\n")
	}
	return []byte(b.String())
}

func lookupEnv(env []string, key string) (string, bool) {
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}

// Exec implements runtime.Driver.
func (d *Driver) Exec(ctx context.Context, id string, spec runtime.ExecSpec) (int, error) {
	if len(spec.Command) == 0 || spec.Command[0] == "" {
		return -1, errors.New("process: exec: no command to run")
	}
	st, err := d.status(id)
	if err != nil {
		return -1, err
	}
	if st.State != runtime.StateRunning {
		return -1, runtime.ErrNotRunning
	}
	var sf specFile
	var pf pidFile
	if err := readJSON(d.path(id, "spec.json"), &sf); err != nil {
		return -1, fmt.Errorf("process: %s: %w", id, err)
	}
	if err := readJSON(d.path(id, "pid"), &pf); err != nil || pf.PID <= 0 {
		return -1, runtime.ErrNotRunning
	}
	var cmd *exec.Cmd
	var envPipe *os.File // the write end: the environment for envShell
	var envText []byte
	if !sf.Sandboxed {
		// The shim's environment is the command's.
		env, err := environ(pf.PID)
		if err != nil || !alive(&pf) {
			return -1, runtime.ErrNotRunning
		}
		env = mergeEnv(env, spec.Env)
		path := lookPathIn(spec.Command[0], envValue(env, "PATH"))
		cmd = exec.Command(path, spec.Command[1:]...)
		cmd.Args[0] = spec.Command[0]
		cmd.Env = env
		cmd.Dir = cmp.Or(sf.WorkDir, d.path(id, "work"))
		if spec.WorkDir != "" {
			cmd.Dir = hostPath(spec.WorkDir, sf.Mounts, d.path(id, "work"))
		}
	} else {
		pid1, err := d.sandboxPID(ctx, id, &pf)
		if err != nil {
			return -1, err
		}
		env, err := environ(pid1)
		if err != nil {
			return -1, runtime.ErrNotRunning
		}
		envText = envScript(mergeEnv(env, spec.Env), cmp.Or(spec.WorkDir, sf.WorkDir, WorkDir))
		argv, userns, err := d.sb.execArgv(sf, pid1, spec.Command)
		for _, f := range userns {
			defer f.Close()
		}
		if err != nil {
			if !alive(&pf) || d.exited(id) {
				return -1, runtime.ErrNotRunning
			}
			return -1, fmt.Errorf("process: exec: %w", err)
		}
		cmd = exec.Command(argv[0], argv[1:]...)
		cmd.Env = []string{} // nothing of the server's, nor the workload's, on the host
		r, w, err := os.Pipe()
		if err != nil {
			return -1, fmt.Errorf("process: exec: %w", err)
		}
		defer r.Close()
		cmd.ExtraFiles = append([]*os.File{r}, userns...)
		envPipe = w
	}
	if envPipe != nil {
		defer envPipe.Close()
	}

	// Output copied after the command ended (a background process holding
	// it open) gets a grace, not forever.
	cmd.WaitDelay = d.execGrace
	var ptmx *os.File
	if spec.TTY {
		size := &pty.Winsize{Rows: spec.Size.Rows, Cols: spec.Size.Cols}
		if size.Rows == 0 || size.Cols == 0 {
			size = &pty.Winsize{Rows: 24, Cols: 80}
		}
		// pty.StartWithSize makes the command a session leader with the
		// terminal as its controlling terminal.
		ptmx, err = pty.StartWithSize(cmd, size)
		if err != nil {
			return -1, fmt.Errorf("process: exec: %w", err)
		}
		defer ptmx.Close()
	} else {
		// The input goes through a pipe of our own: a client's input that
		// never ends (an open connection) must not hold Exec once the
		// command has exited, as exec.Cmd's own copying would.
		var stdinR, stdinW *os.File
		if spec.Stdin != nil {
			if stdinR, stdinW, err = os.Pipe(); err != nil {
				return -1, fmt.Errorf("process: exec: %w", err)
			}
			// Closed once the command ends: a copy blocked writing
			// then fails (one blocked reading the client's input ends
			// when that input does).
			defer stdinW.Close()
			cmd.Stdin = stdinR
		}
		cmd.Stdout, cmd.Stderr = spec.Stdout, spec.Stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		err := cmd.Start()
		if stdinR != nil {
			stdinR.Close() // the command has its own copy
		}
		if err != nil {
			return -1, fmt.Errorf("process: exec: %w", err)
		}
		if stdinW != nil {
			go func() {
				_, _ = io.Copy(stdinW, spec.Stdin)
				stdinW.Close() // EOF for the command
			}()
		}
	}
	if envPipe != nil {
		go func(w *os.File) {
			_, _ = w.Write(envText)
			w.Close()
		}(envPipe)
		envPipe = nil
	}

	// The command's whole tree ends with the context.
	done := make(chan struct{})
	var killed bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-ctx.Done():
			killed = true
			killTree(cmd.Process.Pid)
		case <-done:
		}
	}()
	var copyWG sync.WaitGroup
	if ptmx != nil {
		if spec.Stdin != nil {
			go func() { _, _ = io.Copy(ptmx, spec.Stdin) }()
		}
		copyWG.Add(1)
		go func() {
			defer copyWG.Done()
			out := spec.Stdout
			if out == nil {
				out = io.Discard
			}
			_, _ = io.Copy(out, ptmx) // ends with EIO once nothing holds the terminal
		}()
		if spec.Resize != nil {
			// Waited for below (wg) before the deferred close of ptmx, which
			// must not race a Setsize in flight.
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case sz, ok := <-spec.Resize:
						if !ok {
							return
						}
						_ = pty.Setsize(ptmx, &pty.Winsize{Rows: sz.Rows, Cols: sz.Cols})
					case <-done:
						return
					}
				}
			}()
		}
	}
	err = cmd.Wait()
	close(done)
	wg.Wait()
	if ptmx != nil {
		waitTimeout(&copyWG, 2*time.Second)
	}
	if killed {
		return -1, ctx.Err()
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) && !errors.Is(err, exec.ErrWaitDelay) {
		return -1, fmt.Errorf("process: exec: %w", err)
	}
	code := cmd.ProcessState.ExitCode()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		code = 128 + int(ws.Signal())
	}
	// nsenter fails when the sandbox ended meanwhile.
	if st, err := d.status(id); err == nil && st.State != runtime.StateRunning && code != 0 {
		return -1, runtime.ErrNotRunning
	}
	return code, nil
}

func waitTimeout(wg *sync.WaitGroup, d time.Duration) {
	c := make(chan struct{})
	go func() { wg.Wait(); close(c) }()
	select {
	case <-c:
	case <-time.After(d):
	}
}

// execArgv is the command that runs command in the sandbox whose PID 1
// is pid1 (see the comment at the top), and the user namespaces it
// enters, to be its descriptors 4, 5, ... (3 is the environment).
func (s *sandbox) execArgv(sf specFile, pid1 int, command []string) ([]string, []*os.File, error) {
	nsenter, err := exec.LookPath("nsenter")
	if err != nil {
		return nil, nil, errors.New("nsenter (util-linux) is not installed")
	}
	setpriv := s.setpriv
	if setpriv == "" {
		if setpriv, err = exec.LookPath("setpriv"); err != nil {
			return nil, nil, errors.New("setpriv (util-linux) is not installed")
		}
	}
	var a []string
	if len(sf.Cgroups) > 0 {
		var join []string
		for _, cg := range sf.Cgroups {
			join = append(join, "echo $$ >"+shellQuote(filepath.Join(cg, "cgroup.procs")))
		}
		a = append(a, "/bin/sh", "-c", "{ "+strings.Join(join, " && ")+"; } || exit 126\nexec \"$@\"", "slipway-exec")
	}
	steps, userns, err := nsSteps(pid1)
	if err != nil {
		return nil, userns, err
	}
	for _, st := range steps {
		a = append(append(append(a, nsenter), st...), "--")
	}
	if s.root {
		n := strconv.Itoa(s.procs)
		u := strconv.Itoa(sf.UID)
		a = append(a, s.prlimit, "--nproc="+n+":"+n, "--",
			setpriv, "--reuid="+u, "--regid="+u, "--clear-groups",
			"--no-new-privs", "--bounding-set=-all", "--inh-caps=-all", "--")
	} else {
		a = append(a, setpriv, "--no-new-privs", "--bounding-set=-all", "--inh-caps=-all", "--")
	}
	a = append(a, "/bin/sh", "-c", envShell(3), "slipway-exec")
	return append(a, command...), userns, nil
}

// nsKinds are the namespaces of a sandbox an exec enters, in nsenter's
// option names and /proc/<pid>/ns/ names, the network first: it is the
// outermost (see sandbox.argv), and the mount namespace last.
var nsKinds = [][2]string{{"net", "net"}, {"cgroup", "cgroup"}, {"ipc", "ipc"}, {"uts", "uts"}, {"pid", "pid"}, {"mount", "mnt"}}

// nsSteps plans the nsenter calls that take a process into the
// namespaces of pid1 that are not the server's. Joining a namespace takes
// CAP_SYS_ADMIN in the user namespace that owns it, so where a sandbox
// has user namespaces (as a normal user: one of unshare's owning its
// network, bubblewrap's owning the others, and the one its command runs
// in), each step first enters the owner of the namespaces it joins, and
// the last enters the command's own. Entered user namespaces come as open
// files, to be descriptors 4, 5, ...; nsenter keeps the server's uid and
// gid (--preserve-credentials), mapped to SandboxUID in them.
func nsSteps(pid1 int) ([][]string, []*os.File, error) {
	proc := "/proc/" + strconv.Itoa(pid1)
	cur, err := nsIno("/proc/self/ns/user")
	if err != nil {
		return nil, nil, err
	}
	var steps [][]string
	var files []*os.File
	enter := func(f *os.File) string {
		files = append(files, f)
		return "--user=/proc/self/fd/" + strconv.Itoa(3+len(files))
	}
	stepOwner := uint64(0)
	for _, k := range nsKinds {
		path := proc + "/ns/" + k[1]
		mine, err1 := nsIno("/proc/self/ns/" + k[1])
		theirs, err2 := nsIno(path)
		if err1 != nil || err2 != nil {
			return nil, files, fmt.Errorf("namespace %s: %v%v", k[1], err1, err2)
		}
		if mine == theirs {
			continue
		}
		owner, err := nsOwner(path)
		if err != nil {
			return nil, files, fmt.Errorf("owner of namespace %s: %w", k[1], err)
		}
		ownerIno, err := fileIno(owner)
		if err != nil {
			owner.Close()
			return nil, files, err
		}
		if len(steps) == 0 || ownerIno != stepOwner {
			step := []string{"--preserve-credentials"}
			if ownerIno != cur {
				step = append(step, enter(owner))
				cur = ownerIno
			} else {
				owner.Close()
			}
			steps = append(steps, step)
			stepOwner = ownerIno
		} else {
			owner.Close()
		}
		last := &steps[len(steps)-1]
		*last = append(*last, "--"+k[0]+"="+path)
		if k[0] == "mount" {
			*last = append(*last, "--root="+proc+"/root")
		}
	}
	// The command's own user namespace, entered from inside the sandbox.
	if u, err := nsIno(proc + "/ns/user"); err != nil {
		return nil, files, err
	} else if u != cur {
		f, err := os.Open(proc + "/ns/user")
		if err != nil {
			return nil, files, err
		}
		steps = append(steps, []string{"--preserve-credentials", enter(f)})
	}
	return steps, files, nil
}

// nsIno identifies the namespace a /proc/<pid>/ns/ file names.
func nsIno(path string) (uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

func fileIno(f *os.File) (uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// nsGetUserns is the ioctl NS_GET_USERNS (linux/nsfs.h): the user
// namespace owning a namespace, as a new descriptor.
const nsGetUserns = 0xb701

// nsOwner opens the user namespace that owns the namespace at path.
func nsOwner(path string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fd, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), nsGetUserns, 0)
	if errno != 0 {
		return nil, errno
	}
	syscall.CloseOnExec(int(fd))
	return os.NewFile(fd, "userns"), nil
}

// sandboxPID is the host pid of the run's sandbox's PID 1 once the
// sandbox is set up: a workload that just started may not have its
// sandbox yet, or have one still being built. Bubblewrap writes its info
// (the PID 1) right after creating the namespaces, before it mounts
// anything, and the sandbox's PID 1 then execs, in turn, setpriv (as
// root), the shell of envShell and the workload's command (--as-pid-1):
// until that last exec the mount namespace lacks its mounts (or has not
// even its root pivoted) and PID 1's environment is not the workload's,
// so an exec entering it would run the wrong files with the wrong
// environment. Exec waits for that, bounded by setupWait; a sandbox
// still being set up then is refused, never entered half-made. Start
// does not wait: nothing but an exec needs the finished sandbox.
func (d *Driver) sandboxPID(ctx context.Context, id string, pf *pidFile) (int, error) {
	deadline := time.Now().Add(setupWait)
	for {
		if pid, ok := sandboxInit(d.path(id, "info"), pf); ok && d.sb.setUp(pid) {
			return pid, nil
		}
		if !alive(pf) || d.exited(id) {
			return 0, runtime.ErrNotRunning
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%w: its sandbox was still being set up after %s", runtime.ErrNotRunning, setupWait)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// setupWait bounds how long an exec waits for a starting workload's
// sandbox. A private network's set-up alone may take up to a minute (see
// Start), but a workload whose sandbox takes longer than this to come up
// is failing, and the caller is better told so than kept waiting. A
// variable for the tests.
var setupWait = 20 * time.Second

// setUp reports whether the sandbox whose PID 1 is pid1 is finished: its
// PID 1 runs the workload's command, not one of the steps before it
// (bubblewrap, setpriv, the shell of envShell), as its command line
// shows. A command that rewrites its own command line to look like one of
// them only keeps execs out of itself.
func (s *sandbox) setUp(pid1 int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid1) + "/cmdline")
	if err != nil || len(b) == 0 {
		return false // gone, or a zombie: the caller finds out
	}
	argv := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
	switch {
	case argv[0] == s.bwrap:
		return false
	case s.root && argv[0] == s.setpriv:
		return false
	case len(argv) >= 4 && argv[1] == "-c" && argv[2] == envShell(envFD) && argv[3] == "slipway-env":
		return false
	}
	return true
}

// environ is the environment a process started with.
func environ(pid int) ([]string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return nil, err
	}
	var env []string
	for _, kv := range bytes.Split(b, []byte{0}) {
		if len(kv) > 0 {
			env = append(env, string(kv))
		}
	}
	return env, nil
}

// mergeEnv is env with add set (replacing variables of the same name).
func mergeEnv(env []string, add map[string]string) []string {
	out := make([]string, 0, len(env)+len(add))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := add[k]; !ok {
			out = append(out, kv)
		}
	}
	for k, v := range add {
		out = append(out, k+"="+v)
	}
	return out
}

func envValue(env []string, key string) string {
	v, _ := lookupEnv(env, key)
	return v
}

// lookPathIn finds file in the directories of path (a PATH value), as the
// workload's shell would; a name with a slash, or one not found, is
// returned as is (and fails to run, saying so).
func lookPathIn(file, path string) string {
	if strings.Contains(file, "/") {
		return file
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, file)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return file
}

// killTree kills pid and every process descending from it: each is
// stopped first, so that none forks away (or is reparented away) before
// the kill.
func killTree(pid int) {
	stopped := map[int]bool{}
	for round := 0; round < 50; round++ {
		found := false
		for _, p := range descendants(pid) {
			if !stopped[p] {
				_ = syscall.Kill(p, syscall.SIGSTOP)
				stopped[p] = true
				found = true
			}
		}
		if !found {
			break
		}
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	for p := range stopped {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
}

// descendants is pid and the processes descending from it.
func descendants(pid int) []int {
	pids, err := procfs.PIDs()
	if err != nil {
		return []int{pid}
	}
	parent := map[int]int{}
	for _, p := range pids {
		if st, err := procfs.ReadStat(p); err == nil {
			parent[p] = st.PPID
		}
	}
	out := []int{pid}
	in := map[int]bool{pid: true}
	for changed := true; changed; {
		changed = false
		for p, pp := range parent {
			if in[pp] && !in[p] {
				in[p] = true
				out = append(out, p)
				changed = true
			}
		}
	}
	return out
}
