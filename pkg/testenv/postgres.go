package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// pg holds the one PostgreSQL server shared by all tests of a test binary.
// A mutex rather than sync.Once guards it so that Main can also mark it as
// stopped, and so that a failed start is remembered and reported to every
// test instead of being retried (slowly) by each of them.
var pg struct {
	mu      sync.Mutex
	srv     *pgServer
	err     error
	stopped bool
}

// errNoPostgres is returned when no PostgreSQL server binaries can be found.
var errNoPostgres = errors.New("PostgreSQL server binaries (initdb, postgres) not found on PATH or under /usr/lib/postgresql/*/bin")

// pgServer is a running throwaway PostgreSQL cluster.
type pgServer struct {
	dir  string // temp dir: data directory, unix socket and logs
	port int
	proc *process
	lock *os.File // flock held for our lifetime; see sweepStalePostgresDirs
}

// Postgres returns a connection URL (postgres://...?sslmode=disable) for a
// new, empty database that belongs to this test alone and is dropped, with
// any connections still open to it, when the test finishes. Tests may run in
// parallel: each gets its own database on the shared server.
//
// The server is started on first use and stopped by Main, so the calling
// package's TestMain must call Main; Postgres fails the test otherwise, since
// nothing would stop the server. It also fails (never skips) when the
// PostgreSQL binaries are not installed.
func Postgres(t testing.TB) string {
	t.Helper()
	if !mainCalled.Load() {
		t.Fatal("testenv.Postgres: the shared PostgreSQL server is only stopped by testenv.Main; " +
			"add `func TestMain(m *testing.M) { testenv.Main(m) }` to this package's tests")
	}
	srv, err := sharedPostgres()
	if errors.Is(err, errNoPostgres) {
		t.Fatalf("testenv.Postgres: %v; %s", err, missingBinaryHelp)
	}
	if err != nil {
		t.Fatalf("testenv.Postgres: start server: %v", err)
	}

	name := "test_" + randomHex(8)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.admin(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("testenv.Postgres: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		// Not t.Context(): it is already cancelled when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// FORCE because a test that leaks a pool must not break teardown.
		if err := srv.admin(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("testenv.Postgres: drop database %s: %v", name, err)
		}
	})
	return srv.url(name)
}

// sharedPostgres returns the shared server, starting it on first use.
// Holding the lock during start-up makes concurrent first callers wait for
// the single server instead of racing to start several.
func sharedPostgres() (*pgServer, error) {
	pg.mu.Lock()
	defer pg.mu.Unlock()
	if pg.stopped {
		return nil, errors.New("called after testenv.Main stopped the shared server")
	}
	if pg.srv == nil && pg.err == nil {
		pg.srv, pg.err = startPostgres()
	}
	return pg.srv, pg.err
}

// stopSharedPostgres stops the shared server, if it was ever started, and
// removes its files.
func stopSharedPostgres() {
	pg.mu.Lock()
	defer pg.mu.Unlock()
	pg.stopped = true
	if pg.srv != nil {
		pg.srv.stop()
		pg.srv = nil
	}
}

// url returns the connection URL for database name. Authentication is
// "trust", so no password is needed.
func (s *pgServer) url(name string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, name)
}

// admin runs one statement against the maintenance database. A fresh
// connection per call keeps the harness free of shared pool state; the
// statements are rare (two per test) so the cost does not matter.
func (s *pgServer) admin(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, s.url("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// stop performs a "fast" shutdown (SIGINT: disconnect clients, no waiting
// for them) because the data is thrown away anyway, then deletes the files.
func (s *pgServer) stop() {
	s.proc.stop(syscall.SIGINT, 15*time.Second)
	if err := os.RemoveAll(s.dir); err != nil {
		fmt.Fprintf(os.Stderr, "testenv: remove %s: %v\n", s.dir, err)
	}
	s.lock.Close()
}

// pgDirPattern names the shared server's temp dirs, so stale ones can be
// found by later runs.
const pgDirPattern = "slipway-testenv-pg-*"

// pgLockName is a file in each server dir that its owning test process keeps
// flock'ed. The kernel drops the lock when that process dies however it
// dies, which makes the lock a reliable "owner is gone" signal.
const pgLockName = "owner.lock"

// makePostgresDir creates the server's temp dir with its owner lock held.
// The dir is prepared under a name the sweeper does not match and only then
// renamed into place, so a concurrent sweep can never see the lock file in
// the instant between its creation and its locking.
func makePostgresDir() (dir string, lock *os.File, err error) {
	staging, err := os.MkdirTemp("", "slipway-testenv-pgnew-*")
	if err != nil {
		return "", nil, err
	}
	lock, err = os.OpenFile(filepath.Join(staging, pgLockName), os.O_CREATE|os.O_RDWR, 0o600)
	if err == nil {
		err = syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	}
	if err == nil {
		// The suffix is unique among staging dirs, hence among final dirs.
		dir = filepath.Join(filepath.Dir(staging), strings.Replace(filepath.Base(staging), "pgnew-", "pg-", 1))
		err = os.Rename(staging, dir)
	}
	if err != nil {
		if lock != nil {
			lock.Close()
		}
		_ = os.RemoveAll(staging)
		return "", nil, err
	}
	return dir, lock, nil
}

// sweepStalePostgresDirs removes server dirs left behind by test binaries
// that were killed (e.g. by go test -timeout) before Main could clean up.
// Their servers are already gone thanks to the parent-death signal, but the
// data dirs (tens of MB each) would otherwise pile up in the temp dir. A dir
// is only removed when its owner lock can be taken, so dirs of concurrently
// running test binaries, including ones still being set up (no lock file
// yet), are never touched.
func sweepStalePostgresDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), pgDirPattern))
	for _, dir := range dirs {
		f, err := os.OpenFile(filepath.Join(dir, pgLockName), os.O_RDWR, 0)
		if err != nil {
			continue
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			_ = os.RemoveAll(dir)
		}
		f.Close()
	}
}

// startPostgres initialises a new cluster in a temp dir and starts a server
// on it, retrying on a fresh port if the chosen one was taken meanwhile.
func startPostgres() (_ *pgServer, err error) {
	initdb, postgres, err := findPostgres()
	if err != nil {
		return nil, err
	}
	cred, err := unprivilegedCredential()
	if err != nil {
		return nil, err
	}
	sweepStalePostgresDirs()
	dir, lock, err := makePostgresDir()
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(dir)
			lock.Close()
		}
	}()
	if cred != nil {
		// The server user must own its directory: initdb creates the data
		// dir inside it and the server puts its unix socket there.
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, err
		}
	}

	data := filepath.Join(dir, "data")
	initLog := filepath.Join(dir, "initdb.log")
	// trust auth and the C locale keep the cluster independent of the
	// host's configuration; --no-sync skips fsyncing throwaway files.
	if err := runLogged(initLog, cred, dir, initdb,
		"-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		return nil, fmt.Errorf("initdb: %w\n%s", err, logTail(initLog))
	}

	const attempts = 3
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		logPath := filepath.Join(dir, "postgres.log")
		srv, err := startPostgresOn(postgres, dir, data, port, logPath, cred)
		if err == nil {
			srv.lock = lock
			return srv, nil
		}
		tail := logTail(logPath)
		if attempt < attempts && strings.Contains(tail, "already in use") {
			continue
		}
		return nil, fmt.Errorf("%w\n%s", err, tail)
	}
}

// startPostgresOn starts the server on port and waits until it accepts
// connections.
func startPostgresOn(postgres, dir, data string, port int, logPath string, cred *syscall.Credential) (*pgServer, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child keeps its own descriptor
	if cred != nil {
		_ = logFile.Chown(int(cred.Uid), int(cred.Gid))
	}
	cmd := exec.Command(postgres,
		"-D", data,
		"-p", strconv.Itoa(port),
		// TCP on loopback only, and the unix socket in our own dir so
		// that it cannot collide with a system server's socket.
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories="+dir,
		// Durability is pointless for throwaway data and costs most of
		// the time of a write-heavy test.
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		// Many packages' tests run in parallel against one server.
		"-c", "max_connections=200",
	)
	cmd.Dir = dir // the server user may not be able to read the caller's cwd
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// SIGQUIT is PostgreSQL's immediate shutdown: if the test binary dies,
	// the postmaster takes its backends and shared memory down with it.
	proc, err := startProcess(cmd, cred, syscall.SIGQUIT)
	if err != nil {
		return nil, err
	}
	srv := &pgServer{dir: dir, port: port, proc: proc}

	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, srv.url("postgres"))
		if err == nil {
			err = conn.Ping(ctx)
			conn.Close(ctx)
		}
		cancel()
		if err == nil {
			return srv, nil
		}
		if proc.exited() {
			return nil, fmt.Errorf("postgres exited during start-up: %v", proc.err)
		}
		if time.Now().After(deadline) {
			proc.stop(syscall.SIGQUIT, 5*time.Second)
			return nil, fmt.Errorf("postgres not ready after 60s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// runLogged runs a short-lived helper (initdb) to completion as cred, with
// its output in logPath.
func runLogged(logPath string, cred *syscall.Credential, dir, name string, args ...string) error {
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	return cmd.Run()
}

// findPostgres locates matching initdb and postgres binaries. PATH wins so
// that developers can point the tests at any installation; otherwise the
// newest Debian/Ubuntu versioned install is used, because those packages keep
// the server binaries off PATH.
func findPostgres() (initdb, postgres string, err error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		// postgres must come from the same installation as initdb, so
		// look next to it (and next to its target if it is a symlink).
		dirs := []string{filepath.Dir(p)}
		if real, err := filepath.EvalSymlinks(p); err == nil {
			dirs = append(dirs, filepath.Dir(real))
		}
		for _, d := range dirs {
			if isExecutable(filepath.Join(d, "postgres")) {
				return p, filepath.Join(d, "postgres"), nil
			}
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		return versionLess(filepath.Base(filepath.Dir(dirs[j])), filepath.Base(filepath.Dir(dirs[i])))
	})
	for _, d := range dirs {
		i, p := filepath.Join(d, "initdb"), filepath.Join(d, "postgres")
		if isExecutable(i) && isExecutable(p) {
			return i, p, nil
		}
	}
	return "", "", errNoPostgres
}

// versionLess compares dotted numeric versions ("9.6" < "15"), which a
// plain string sort gets wrong.
func versionLess(a, b string) bool {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) || i < len(bs); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			return x < y
		}
	}
	return false
}

// isExecutable reports whether path is a regular file with an execute bit.
func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// randomHex returns n random bytes as lowercase hex, which is valid in an
// unquoted SQL identifier and makes name clashes between tests impossible in
// practice.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
