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

	"github.com/slipwayhq/slipway/pkg/runtime"
)

// Exec: a command run inside a running workload's sandbox can do no more
// than the workload itself. A shell on the host joins the run's cgroups
// (so the command counts against its limits) and becomes nsenter, which
// enters every namespace of the sandbox's PID 1 (mount, UTS, IPC, network,
// PID, cgroup, and as a normal user the user namespace) and its root;
// there, as the workload does, prlimit caps its user's processes and
// setpriv makes it the run's uid and gid with no capabilities, an empty
// bounding set and no_new_privs. Only then does a shell of the sandbox
// take on the environment (the workload's, read from its PID 1's
// /proc/<pid>/environ when Exec runs since it is never stored, plus the
// ExecSpec's), change to the working directory and exec the command.
//
// The environment reaches that last shell through a pipe, never through
// the host's or the privileged steps' environment (a workload's
// LD_PRELOAD must not reach nsenter, which runs as root) nor through
// arguments (which anyone on the host may read in /proc). Variables
// whose names are no shell names ("a-b") cannot be passed so and are left
// out.
//
// Unsandboxed workloads run as the server's user: so does the command, in
// the run's working directory with its environment.

// shellName is a name the last shell can export.
var shellName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// execShell is the script of the sandbox's shell: on fd 3 the
// environment as export lines and the change of directory (execSetup),
// the command in $@.
const execShell = `eval "$(cat <&3)" || exit 126
exec 3<&-
exec "$@"`

// execSetup is the shell code execShell runs: export env, change to dir,
// and leave OLDPWD as env has it.
func execSetup(env []string, dir string) []byte {
	var b strings.Builder
	oldpwd := false
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if shellName.MatchString(k) {
			b.WriteString("export " + k + "=" + shellQuote(v) + "\n")
			oldpwd = oldpwd || k == "OLDPWD"
		}
	}
	b.WriteString("cd -- " + shellQuote(dir) + " || exit 126\n")
	if old := envValue(env, "OLDPWD"); oldpwd {
		b.WriteString("OLDPWD=" + shellQuote(old) + "\n")
	} else {
		b.WriteString("unset OLDPWD\n")
	}
	return []byte(b.String())
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
	var envPipe *os.File // the write end: the environment for execShell
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
		cmd.Dir = d.path(id, "work")
		if spec.WorkDir != "" {
			cmd.Dir = spec.WorkDir
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
		envText = execSetup(mergeEnv(env, spec.Env), cmp.Or(spec.WorkDir, WorkDir))
		argv, err := d.sb.execArgv(sf, pid1, spec.Command)
		if err != nil {
			return -1, fmt.Errorf("process: exec: %w", err)
		}
		cmd = exec.Command(argv[0], argv[1:]...)
		cmd.Env = []string{} // nothing of the server's, nor the workload's, on the host
		r, w, err := os.Pipe()
		if err != nil {
			return -1, fmt.Errorf("process: exec: %w", err)
		}
		defer r.Close()
		cmd.ExtraFiles = []*os.File{r}
		envPipe = w
	}
	if envPipe != nil {
		defer envPipe.Close()
	}

	// Output copied after the command ended (a background process holding
	// it open) gets WaitDelay, not forever.
	cmd.WaitDelay = 2 * time.Second
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
		cmd.Stdin = spec.Stdin
		cmd.Stdout, cmd.Stderr = spec.Stdout, spec.Stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			return -1, fmt.Errorf("process: exec: %w", err)
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
			go func() {
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
// is pid1 (see the comment at the top).
func (s *sandbox) execArgv(sf specFile, pid1 int, command []string) ([]string, error) {
	nsenter, err := exec.LookPath("nsenter")
	if err != nil {
		return nil, errors.New("nsenter (util-linux) is not installed")
	}
	setpriv := s.setpriv
	if setpriv == "" {
		if setpriv, err = exec.LookPath("setpriv"); err != nil {
			return nil, errors.New("setpriv (util-linux) is not installed")
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
	// Every namespace of PID 1 that is not the server's; as a normal
	// user, the user namespace too, keeping the server's uid (which is
	// SandboxUID there).
	a = append(a, nsenter, "--target", strconv.Itoa(pid1), "--all", "--preserve-credentials", "--root", "--")
	if s.root {
		n := strconv.Itoa(s.procs)
		u := strconv.Itoa(sf.UID)
		a = append(a, s.prlimit, "--nproc="+n+":"+n, "--",
			setpriv, "--reuid="+u, "--regid="+u, "--clear-groups",
			"--no-new-privs", "--bounding-set=-all", "--inh-caps=-all", "--")
	} else {
		a = append(a, setpriv, "--no-new-privs", "--bounding-set=-all", "--inh-caps=-all", "--")
	}
	a = append(a, "/bin/sh", "-c", execShell, "slipway-exec")
	return append(a, command...), nil
}

// sandboxPID is the host pid of the run's sandbox's PID 1, once it runs
// (a workload that just started may not have its sandbox yet).
func (d *Driver) sandboxPID(ctx context.Context, id string, pf *pidFile) (int, error) {
	deadline := time.Now().Add(20 * time.Second)
	for {
		if pid, ok := sandboxInit(d.path(id, "info"), pf); ok {
			return pid, nil
		}
		if !alive(pf) || d.exited(id) || time.Now().After(deadline) {
			return 0, runtime.ErrNotRunning
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
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
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
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
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return []int{pid}
	}
	parent := map[int]int{}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pp, err := readPPID(p); err == nil {
			parent[p] = pp
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

func readPPID(pid int) (int, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("bad stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0, errors.New("bad stat")
	}
	return strconv.Atoi(f[1])
}
