package testenv

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago. It
// exists because redis-server and PostgreSQL cannot be told to pick port 0
// and report back. The port is released before returning, so another process
// can grab it in between; the starters below therefore retry with a fresh
// port when a server reports that its address is in use.
func FreePort(t testing.TB) int {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatalf("testenv: find a free port: %v", err)
	}
	return port
}

// freePort is FreePort without a testing.TB, for the shared PostgreSQL
// server whose start is not owned by any single test.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// process is a child server process that is reaped by a dedicated goroutine,
// so that callers can both wait for readiness and notice an early exit (for
// example a port clash) without blocking.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited and been reaped
	err  error         // cmd.Wait result; read only after done is closed
}

// startProcess starts cmd, running it as cred when non-nil, and arranges for
// the kernel to send deathSig to it if the test binary dies without cleaning
// up.
//
// The fork happens on a goroutine locked to its OS thread that then blocks in
// cmd.Wait: the parent-death signal fires when the forking *thread* exits,
// and a locked thread that stays busy until the child exits is the only way
// to make that coincide with the test process going away rather than with
// the Go scheduler retiring an idle thread.
func startProcess(cmd *exec.Cmd, cred *syscall.Credential, deathSig syscall.Signal) (*process, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Credential = cred
	setParentDeathSignal(cmd.SysProcAttr, deathSig)

	p := &process{cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		// Never unlocked on purpose: when this goroutine returns, the
		// runtime terminates the thread, which is harmless because the
		// child has already been reaped.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return p, nil
}

// exited reports whether the process has already terminated.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends sig, waits up to grace for the process to exit and then kills
// it, so that a wedged server can never hang a test run's teardown.
func (p *process) stop(sig syscall.Signal, grace time.Duration) {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return
	case <-time.After(grace):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// unprivilegedCredential returns the credential to run PostgreSQL under. The
// postgres binaries refuse to run as root, and tests in containers and CI
// commonly run as root, so in that case the servers are started as the
// `postgres` system user (present wherever the Debian package is installed)
// or, failing that, as `nobody`. It returns nil when no switch is needed.
func unprivilegedCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	var errs []error
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil {
			errs = append(errs, fmt.Errorf("user %s has non-numeric uid/gid %q/%q", name, u.Uid, u.Gid))
			continue
		}
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
	}
	return nil, fmt.Errorf("running as root and no unprivileged user to run PostgreSQL as: %w", errors.Join(errs...))
}

// logTail returns the last few lines of a server log so that start-up
// failures are diagnosable from the test output alone; the log itself lives
// in a temp dir that is removed during cleanup.
func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(could not read %s: %v)", path, err)
	}
	const max = 4096
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}
