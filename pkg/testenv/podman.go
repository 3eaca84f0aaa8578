package testenv

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/client"
)

// TestImage is the reference BuildTestImage tags its image with.
const TestImage = "localhost/slipway-test:latest"

// podmanEnvs maps a host returned by Podman to the environment its CLI
// needs (the same configuration and storage as the service), so that
// BuildTestImage can import into that service's storage.
var podmanEnvs sync.Map // host -> []string

// Podman starts `podman system service` on a unix socket in a temp dir and
// returns its Docker-compatible API address (unix:///.../podman.sock). The
// service is fully isolated from the machine's own Podman: its own
// containers.conf (runc as the OCI runtime, ulimits that an unprivileged
// container may set, no network namespace setup, exec sessions cleaned up
// 15 s after they end instead of 300 s, so that their conmon processes do
// not pile up by the thousand during a test), its own storage (vfs, so
// that nothing is mounted on the host and the directory can simply be
// deleted), its own lock, tmp and event directories. At the end of the test
// every container is removed, the service is stopped and the storage is
// deleted. No registry is reachable from tests: use BuildTestImage for an
// image. The test fails (never skips) when podman or runc is missing.
func Podman(t testing.TB) string {
	t.Helper()
	bin := lookBinary(t, "podman")
	lookBinary(t, "runc")

	// Unix socket paths are limited to 108 bytes and t.TempDir can be
	// long, so the socket lives in a short directory of its own.
	sockDir, err := os.MkdirTemp("", "podman")
	if err != nil {
		t.Fatalf("testenv.Podman: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(sockDir) })
	sock := filepath.Join(sockDir, "podman.sock")

	dir := t.TempDir() // registered before the stop below, so removed after it
	env, err := podmanConfig(dir)
	if err != nil {
		t.Fatalf("testenv.Podman: %v", err)
	}
	logPath := filepath.Join(dir, "podman.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("testenv.Podman: %v", err)
	}
	defer logFile.Close() // the child keeps its own descriptor
	cmd := exec.Command(bin, "system", "service", "--time=0", "unix://"+sock)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	proc, err := startProcess(cmd, nil, syscall.SIGKILL)
	if err != nil {
		t.Fatalf("testenv.Podman: starting podman: %v", err)
	}
	host := "unix://" + sock
	t.Cleanup(func() {
		// Containers outlive the service (conmon keeps them), so remove
		// them all first; then stop the service and drop its storage.
		podmanCLI(bin, env, 60*time.Second, "rm", "--all", "--force", "--time", "0")
		proc.stop(syscall.SIGTERM, 10*time.Second)
		podmanCLI(bin, env, 60*time.Second, "system", "reset", "--force")
		podmanEnvs.Delete(host)
	})

	client := unixHTTPClient(sock)
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := podmanPing(client)
		if err == nil {
			break
		}
		if proc.exited() {
			t.Fatalf("testenv.Podman: podman system service exited during start-up: %v\n%s", proc.err, logTail(logPath))
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv.Podman: no answer to /_ping after 30s: %v\n%s", err, logTail(logPath))
		}
		time.Sleep(50 * time.Millisecond)
	}
	podmanEnvs.Store(host, env)
	return host
}

// lookBinary finds a system binary, failing the test with the usual
// guidance when it is missing.
func lookBinary(t testing.TB, name string) string {
	t.Helper()
	if bin, err := exec.LookPath(name); err == nil {
		if abs, err := filepath.Abs(bin); err == nil {
			return abs // sshd insists on an absolute path to itself
		}
	}
	for _, dir := range []string{"/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/local/bin", "/usr/local/sbin"} {
		if bin := filepath.Join(dir, name); isExecutable(bin) {
			return bin
		}
	}
	t.Fatalf("testenv: %s not found on PATH or in the bin and sbin directories; %s", name, missingBinaryHelp)
	return ""
}

// podmanConfig writes the isolated configuration under dir and returns the
// environment for the podman service and CLI.
func podmanConfig(dir string) ([]string, error) {
	sub := func(name string) (string, error) {
		p := filepath.Join(dir, name)
		return p, os.MkdirAll(p, 0o700)
	}
	paths := map[string]string{}
	for _, name := range []string{"graph", "run", "tmp", "libpod", "volumes", "networks", "xdg"} {
		p, err := sub(name)
		if err != nil {
			return nil, err
		}
		paths[name] = p
	}
	// Podman raises RLIMIT_NPROC for root containers beyond what this
	// (possibly itself containerised) machine allows; ask for what we have.
	nproc := "1024:1024"
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(6 /* RLIMIT_NPROC */, &rl); err == nil && rl.Cur > 0 && rl.Max > 0 && rl.Cur < 1<<31 && rl.Max < 1<<31 {
		nproc = fmt.Sprintf("%d:%d", rl.Cur, rl.Max)
	}
	conf := fmt.Sprintf(`[containers]
default_ulimits = ["nofile=1024:1024", "nproc=%s"]
netns = "none"
log_driver = "k8s-file"

[engine]
runtime = "runc"
exit_command_delay = 15
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = %q
tmp_dir = %q
volume_path = %q
static_dir = %q

[network]
network_config_dir = %q
`, nproc, filepath.Join(dir, "events.log"), paths["tmp"], paths["volumes"], paths["libpod"], paths["networks"])
	storage := fmt.Sprintf(`[storage]
driver = "vfs"
graphroot = %q
runroot = %q
`, paths["graph"], paths["run"])
	confPath := filepath.Join(dir, "containers.conf")
	storagePath := filepath.Join(dir, "storage.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(storagePath, []byte(storage), 0o600); err != nil {
		return nil, err
	}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF", "CONTAINERS_REGISTRIES_CONF", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "TMPDIR", "DOCKER_HOST", "CONTAINER_HOST":
			continue
		}
		env = append(env, kv)
	}
	// registries.conf: an empty file, so short names never resolve to a
	// registry search.
	regPath := filepath.Join(dir, "registries.conf")
	if err := os.WriteFile(regPath, nil, 0o600); err != nil {
		return nil, err
	}
	return append(env,
		"CONTAINERS_CONF="+confPath,
		"CONTAINERS_STORAGE_CONF="+storagePath,
		"CONTAINERS_REGISTRIES_CONF="+regPath,
		"XDG_RUNTIME_DIR="+paths["xdg"],
		"XDG_CONFIG_HOME="+paths["xdg"],
		"TMPDIR="+paths["tmp"],
	), nil
}

// podmanCLI runs the podman CLI against the service's configuration,
// ignoring failures (it is used for cleanup), and never for longer than
// timeout.
func podmanCLI(bin string, env []string, timeout time.Duration, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	cmd.WaitDelay = 5 * time.Second
	return cmd.CombinedOutput()
}

func unixHTTPClient(sock string) *http.Client {
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", sock)
			},
		},
	}
}

func podmanPing(c *http.Client) error {
	resp, err := c.Get("http://podman/_ping")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(b)) != "OK" {
		return fmt.Errorf("/_ping: %s %q", resp.Status, b)
	}
	return nil
}

// BuildTestImage makes a tiny image in the storage of the Podman service at
// host (as returned by Podman) and returns its reference, TestImage. The
// image is a root file system holding Debian's static busybox as /bin/busybox
// with links for sh, echo, sleep, cat, env, true, false and the like (tr,
// grep, head and setsid for runtimetest's isolation cases; httpd, nc,
// stty and tty for ports and exec), imported
// with `podman import`; no registry is involved. The test fails (never skips)
// when busybox is missing.
func BuildTestImage(t testing.TB, host string) string {
	t.Helper()
	v, ok := podmanEnvs.Load(host)
	if !ok {
		t.Fatalf("testenv.BuildTestImage: %s is not a service started by testenv.Podman", host)
	}
	env := v.([]string)
	bin := lookBinary(t, "podman")
	busybox := lookBinary(t, "busybox")
	bb, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatalf("testenv.BuildTestImage: %v", err)
	}
	tarPath := filepath.Join(t.TempDir(), "rootfs.tar")
	if err := writeRootfsTar(tarPath, bb); err != nil {
		t.Fatalf("testenv.BuildTestImage: %v", err)
	}
	out, err := podmanCLI(bin, env, 2*time.Minute, "import",
		"--change", `CMD ["/bin/sh"]`,
		"--change", "ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin",
		tarPath, TestImage)
	if err != nil {
		t.Fatalf("testenv.BuildTestImage: podman import: %v\n%s", err, out)
	}
	return TestImage
}

func writeRootfsTar(path string, busybox []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	now := time.Now()
	dirs := []string{"bin", "tmp", "etc", "proc", "sys", "dev", "root"}
	for _, d := range dirs {
		mode := int64(0o755)
		if d == "tmp" {
			mode = 0o1777
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: mode, ModTime: now}); err != nil {
			return err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: int64(len(busybox)), ModTime: now}); err != nil {
		return err
	}
	if _, err := tw.Write(busybox); err != nil {
		return err
	}
	for _, name := range []string{"sh", "echo", "sleep", "cat", "env", "true", "false", "ls", "printf", "kill", "id", "date", "tr", "grep", "head", "setsid",
		// httpd and nc serve ports, stty and tty show an exec's terminal.
		"httpd", "nc", "mkdir", "pwd", "stty", "tty", "wc"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + name, Linkname: "busybox", Mode: 0o777, ModTime: now}); err != nil {
			return err
		}
	}
	passwd := "root:x:0:0:root:/root:/bin/sh\n"
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "etc/passwd", Mode: 0o644, Size: int64(len(passwd)), ModTime: now}); err != nil {
		return err
	}
	if _, err := tw.Write([]byte(passwd)); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return f.Close()
}

// EngineClient is a Docker Engine API client of the engine at host (as
// Podman returns it), closed when the test ends.
func EngineClient(t testing.TB, host string) *client.Client {
	t.Helper()
	api, err := client.NewClientWithOpts(client.WithHost(host), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatalf("testenv: engine client: %v", err)
	}
	t.Cleanup(func() { _ = api.Close() })
	return api
}
