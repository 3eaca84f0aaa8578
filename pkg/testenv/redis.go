package testenv

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Redis starts a redis-server dedicated to this test and returns its URL
// (redis://127.0.0.1:PORT/0). The server is stopped when the test finishes.
// A per-test server (rather than a shared one with per-test logical
// databases) is used because redis-server starts in milliseconds and tests
// then cannot observe each other through FLUSHALL, keyspace notifications,
// pub/sub or the 16-database limit. Persistence is disabled: the data only
// lives as long as the test. The test fails (never skips) when redis-server
// is not installed.
func Redis(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		// PATH may be trimmed (e.g. sudo, IDE runners); Debian puts it here.
		bin = "/usr/bin/redis-server"
		if !isExecutable(bin) {
			t.Fatalf("testenv.Redis: redis-server not found on PATH; %s", missingBinaryHelp)
		}
	}
	dir := t.TempDir() // registered before the stop below, so removed after it

	const attempts = 3
	for attempt := 1; ; attempt++ {
		port := FreePort(t)
		logPath := filepath.Join(dir, "redis.log")
		proc, err := startRedisOn(bin, dir, port, logPath)
		if err == nil {
			t.Cleanup(func() {
				// No save is configured, so SIGTERM exits immediately.
				proc.stop(syscall.SIGTERM, 10*time.Second)
			})
			return fmt.Sprintf("redis://127.0.0.1:%d/0", port)
		}
		tail := logTail(logPath)
		if attempt < attempts && strings.Contains(tail, "already in use") {
			continue
		}
		t.Fatalf("testenv.Redis: %v\n%s", err, tail)
	}
}

// startRedisOn starts redis-server on port and waits until it answers PING.
func startRedisOn(bin, dir string, port int, logPath string) (*process, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child keeps its own descriptor
	cmd := exec.Command(bin,
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		// No RDB snapshots and no AOF: nothing a test writes should hit
		// the disk or survive the test.
		"--save", "",
		"--appendonly", "no",
		"--dir", dir,
		"--daemonize", "no",
		"--logfile", "",
	)
	cmd.Dir = dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	proc, err := startProcess(cmd, nil, syscall.SIGKILL)
	if err != nil {
		return nil, err
	}

	deadline := time.Now().Add(15 * time.Second)
	for {
		err := redisPing(port)
		if err == nil {
			return proc, nil
		}
		if proc.exited() {
			return nil, fmt.Errorf("redis-server exited during start-up: %v", proc.err)
		}
		if time.Now().After(deadline) {
			proc.stop(syscall.SIGKILL, time.Second)
			return nil, fmt.Errorf("redis-server not answering PING after 15s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// redisPing sends an inline PING and expects +PONG. It speaks the protocol
// by hand so that the harness needs no Redis client library.
func redisPing(port int) error {
	conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("unexpected PING reply %q", line)
	}
	return nil
}
