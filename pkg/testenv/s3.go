package testenv

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// S3Server is a throwaway S3-compatible server owned by one test: the
// Versity S3 Gateway (versitygw, Apache-2.0) serving a temp directory
// through its POSIX backend, on a free loopback port.
//
// versitygw is a real S3 server, not a fake: it verifies every request's
// AWS Signature Version 4 (header-signed and presigned, including the
// payload hash and the presigned expiry) against the one account it is
// started with, and speaks the S3 REST API over HTTP with path-style
// addressing. So a wrong secret key gets the 403 SignatureDoesNotMatch a
// real provider answers, and an expired presigned URL is refused.
type S3Server struct {
	// Endpoint is http://127.0.0.1:PORT.
	Endpoint string
	// Region the server signs for.
	Region string
	// Bucket exists and is empty when S3 returns.
	Bucket string
	// AccessKey and SecretKey are the server's only account.
	AccessKey string
	SecretKey string
	// Dir is the backend's root: Dir/<bucket>/<key> holds each object.
	Dir string

	proc *process
}

// versitygwModule is the command built from the version pinned in
// tools/go.mod (a tool there, so Slipway's own module does not carry the
// gateway's dependencies).
const versitygwModule = "github.com/versity/versitygw/cmd/versitygw"

// S3 starts a versitygw server for this test with a fresh bucket and
// random credentials, and stops it when the test ends. The gateway binary
// is built from tools/go.mod on first use (about a minute on a cold build
// cache, then cached across test binaries and runs); a build failure fails
// the test, never skips it.
func S3(t testing.TB) *S3Server {
	t.Helper()
	bin, err := versitygwBinary()
	if err != nil {
		t.Fatalf("testenv.S3: %v", err)
	}
	dir := t.TempDir()
	s := &S3Server{
		Region:    "us-east-1",
		Bucket:    "slipway-test",
		AccessKey: "AK" + strings.ToUpper(randomHex(9)),
		SecretKey: randomHex(20),
		Dir:       filepath.Join(dir, "root"),
	}
	meta := filepath.Join(dir, "meta") // outside the root, as versitygw requires
	for _, d := range []string{filepath.Join(s.Dir, s.Bucket), meta} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatalf("testenv.S3: %v", err)
		}
	}
	const attempts = 3
	for attempt := 1; ; attempt++ {
		port := FreePort(t)
		logPath := filepath.Join(dir, "versitygw.log")
		proc, err := startVersitygw(bin, dir, meta, s, port, logPath)
		if err == nil {
			s.proc = proc
			s.Endpoint = "http://127.0.0.1:" + strconv.Itoa(port)
			t.Cleanup(s.Stop)
			return s
		}
		tail := logTail(logPath)
		if attempt < attempts && strings.Contains(tail, "address already in use") {
			continue
		}
		t.Fatalf("testenv.S3: %v\n%s", err, tail)
	}
}

// Stop stops the server (idempotent); requests then fail to connect, which
// is how tests see an unreachable destination.
func (s *S3Server) Stop() {
	if s.proc != nil {
		s.proc.stop(syscall.SIGTERM, 10*time.Second)
	}
}

func startVersitygw(bin, dir, meta string, s *S3Server, port int, logPath string) (*process, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cmd := exec.Command(bin,
		"--port", addr,
		"--region", s.Region,
		"--quiet",
		"posix",
		// Metadata in a side directory rather than extended attributes,
		// which not every temp file system offers.
		"--sidecar", meta,
		s.Dir,
	)
	// The credentials go through the environment, not argv (ps shows argv).
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+s.AccessKey, "ROOT_SECRET_KEY="+s.SecretKey)
	cmd.Dir = dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	proc, err := startProcess(cmd, nil, syscall.SIGKILL)
	if err != nil {
		return nil, err
	}
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for {
		// Any S3 answer (an unsigned request gets 403 AccessDenied) means
		// the gateway is serving.
		resp, err := client.Get("http://" + addr + "/")
		if err == nil {
			_ = resp.Body.Close()
			if resp.Header.Get("Server") != "" || resp.StatusCode == http.StatusForbidden {
				return proc, nil
			}
		}
		if proc.exited() {
			return nil, fmt.Errorf("versitygw exited during start-up: %v", proc.err)
		}
		if time.Now().After(deadline) {
			proc.stop(syscall.SIGKILL, time.Second)
			return nil, fmt.Errorf("versitygw not answering after 20s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var versitygwBuild struct {
	once sync.Once
	path string
	err  error
}

// versitygwBinary builds the gateway once per test binary into a cache
// directory keyed by tools/go.mod and go.sum (so a version bump rebuilds),
// shared by every test binary and run on the machine; builders take turns
// under a file lock and rename the finished binary into place, so none
// ever runs a half-written one.
func versitygwBinary() (string, error) {
	versitygwBuild.once.Do(func() {
		versitygwBuild.path, versitygwBuild.err = buildVersitygw()
	})
	return versitygwBuild.path, versitygwBuild.err
}

func buildVersitygw() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("cannot locate the source tree to build versitygw from")
	}
	tools := filepath.Join(filepath.Dir(file), "..", "..", "tools")
	sum, err := os.ReadFile(filepath.Join(tools, "go.sum"))
	if err != nil {
		return "", fmt.Errorf("read tools/go.sum (versitygw is pinned there): %w", err)
	}
	mod, err := os.ReadFile(filepath.Join(tools, "go.mod"))
	if err != nil {
		return "", err
	}
	h := sha256.Sum256(append(mod, sum...))
	dir := filepath.Join(os.TempDir(), "slipway-testenv-bin")
	bin := filepath.Join(dir, "versitygw-"+hex.EncodeToString(h[:8]))
	if isExecutable(bin) {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	// One builder at a time: the test binaries of a `go test ./...` start
	// together, and three cold builds of the same gateway would triple a
	// minute of CPU on a small machine. The others wait, then find it.
	lock, err := os.OpenFile(bin+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	if isExecutable(bin) {
		return bin, nil
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("go not on PATH to build versitygw: %w", err)
	}
	tmp := bin + ".tmp-" + randomHex(6)
	cmd := exec.Command(goCmd, "build", "-o", tmp, versitygwModule)
	cmd.Dir = tools
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("build %s from tools/go.mod: %v\n%s", versitygwModule, err, out)
	}
	if err := os.Rename(tmp, bin); err != nil {
		_ = os.Remove(tmp)
		return "", err
	}
	return bin, nil
}
