package drivers

import (
	"context"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"

	"github.com/slipwayhq/slipway/pkg/runtime"
	"github.com/slipwayhq/slipway/pkg/runtime/docker"
	"github.com/slipwayhq/slipway/pkg/runtime/process"
	"github.com/slipwayhq/slipway/pkg/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func open(t *testing.T, opts Options) (runtime.Driver, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d, reason, err := Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.(io.Closer).Close() })
	t.Logf("reason: %s", reason)
	return d, reason
}

func openErr(t *testing.T, opts Options) error {
	t.Helper()
	d, reason, err := Open(context.Background(), opts)
	if err == nil {
		_ = d.(io.Closer).Close()
		t.Fatalf("Open(%+v) = %s, %q; want an error", opts, d.Name(), reason)
	}
	t.Logf("error: %v", err)
	return err
}

// noSockets keeps the machine's own sockets and $DOCKER_HOST out.
func noSockets(t *testing.T, opts Options) Options {
	t.Setenv("DOCKER_HOST", "")
	opts.Sockets = []string{filepath.Join(t.TempDir(), "no-docker.sock")}
	return opts
}

func TestExplicitProcess(t *testing.T) {
	d, reason := open(t, Options{Name: "process", StateDir: t.TempDir()})
	if d.Name() != "process" || !strings.HasPrefix(reason, "process (") {
		t.Fatalf("%s, %q", d.Name(), reason)
	}
	if err := openErr(t, Options{Name: "process"}); !strings.Contains(err.Error(), "state directory") {
		t.Fatalf("no state dir: %v", err)
	}
}

// TestOptionsReachDrivers: the process cap and the sandbox options reach
// the driver opened.
func TestOptionsReachDrivers(t *testing.T) {
	d, _ := open(t, Options{Name: "process", StateDir: t.TempDir(), MaxProcs: 7, Process: process.Options{Unsandboxed: true}})
	pd := d.(*process.Driver)
	if pd.MaxProcs() != 7 || !strings.Contains(pd.Notice(), "UNSANDBOXED") {
		t.Fatalf("MaxProcs %d, notice %q", pd.MaxProcs(), pd.Notice())
	}
}

// TestPortRange: the process-ports setting takes a range of unprivileged
// ports, and the range reaches the process driver.
func TestPortRange(t *testing.T) {
	var check func(string) error
	for _, st := range Settings {
		if st.Flag == "process-ports" {
			check = st.Check
			if st.Default != "20000-29999" || st.Env != "SLIPWAY_PROCESS_PORTS" {
				t.Errorf("setting %+v", st)
			}
		}
	}
	if check == nil {
		t.Fatal("no process-ports setting")
	}
	for v, ok := range map[string]bool{"20000-29999": true, "1024-65535": true, "30000-30000": true,
		"": false, "20000": false, "x-y": false, "30000-20000": false, "80-90": false, "60000-70000": false} {
		if err := check(v); (err == nil) != ok {
			t.Errorf("check(%q) = %v", v, err)
		}
	}
	d, _ := open(t, Options{Name: "process", StateDir: t.TempDir(), Process: process.Options{PortFirst: 31000, PortLast: 31010}})
	if iso := d.(*process.Driver).Isolation(); !strings.Contains(iso, "ports on 127.0.0.1:31000-31010") {
		t.Fatalf("isolation %q", iso)
	}
}

func TestUnknownName(t *testing.T) {
	err := openErr(t, Options{Name: "kubernetes", StateDir: t.TempDir()})
	for _, want := range []string{`"kubernetes"`, `"process"`, `"docker"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

func TestAutoWithoutSocket(t *testing.T) {
	opts := noSockets(t, Options{StateDir: t.TempDir()})
	d, reason := open(t, opts)
	if d.Name() != "process" || reason != "process (no Docker or Podman socket found)" {
		t.Fatalf("%s, %q", d.Name(), reason)
	}

	// A configured address that does not answer: process, saying why.
	opts.DockerHost = "unix://" + filepath.Join(t.TempDir(), "missing.sock")
	d, reason = open(t, opts)
	if d.Name() != "process" || !strings.Contains(reason, opts.DockerHost) {
		t.Fatalf("%s, %q", d.Name(), reason)
	}

	// A socket file nobody serves (a stale one): process.
	stale := filepath.Join(t.TempDir(), "stale.sock")
	l, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	opts.DockerHost, opts.Sockets = "", []string{stale}
	d, reason = open(t, opts)
	if d.Name() != "process" || !strings.Contains(reason, stale) {
		t.Fatalf("%s, %q", d.Name(), reason)
	}

	// A socket that accepts but never answers: process, after PingTimeout.
	hungPath := filepath.Join(t.TempDir(), "hung.sock")
	hung, err := net.Listen("unix", hungPath)
	if err != nil {
		t.Fatal(err)
	}
	defer hung.Close()
	go func() {
		for {
			c, err := hung.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, unanswered, until the test ends
		}
	}()
	opts.Sockets = []string{hungPath}
	began := time.Now()
	d, reason = open(t, opts)
	if took := time.Since(began); d.Name() != "process" || took < PingTimeout || took > PingTimeout+3*time.Second {
		t.Fatalf("%s, %q after %v", d.Name(), reason, took)
	}

	// Asking for docker without a socket is an error.
	opts.Name = "docker"
	opts.Sockets = []string{filepath.Join(t.TempDir(), "no-docker.sock")}
	if err := openErr(t, opts); !strings.Contains(err.Error(), "no Docker or Podman socket") {
		t.Fatalf("error %v", err)
	}
	opts.DockerHost = "unix://" + filepath.Join(t.TempDir(), "missing.sock")
	openErr(t, opts)
}

func TestDocker(t *testing.T) {
	host := testenv.Podman(t)
	sock := strings.TrimPrefix(host, "unix://")

	t.Run("Explicit", func(t *testing.T) {
		d, reason := open(t, noSockets(t, Options{Name: "docker", DockerHost: host}))
		if d.Name() != "docker" || !strings.Contains(reason, host) {
			t.Fatalf("%s, %q", d.Name(), reason)
		}
		if _, err := d.List(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("AutoFindsSocket", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "docker.sock")
		opts := noSockets(t, Options{StateDir: t.TempDir()})
		opts.Sockets = []string{missing, sock}
		d, reason := open(t, opts)
		if want := "docker (socket " + host + " found)"; d.Name() != "docker" || reason != want {
			t.Fatalf("%s, %q; want docker, %q", d.Name(), reason, want)
		}
	})
	t.Run("MaxProcs", func(t *testing.T) {
		d, _ := open(t, noSockets(t, Options{Name: "docker", DockerHost: host, MaxProcs: 9}))
		if got := d.(*docker.Driver).PidsLimit; got != 9 {
			t.Fatalf("PidsLimit %d, want 9", got)
		}
	})
	t.Run("Network", func(t *testing.T) {
		// The network setting reaches the docker driver and its reason; a
		// network the engine does not have is refused at start-up, by
		// name, in either mode.
		cli, err := client.NewClientWithOpts(client.WithHost(host), client.WithAPIVersionNegotiation())
		if err != nil {
			t.Fatal(err)
		}
		defer cli.Close()
		name := "slipway-drivers-test"
		if _, err := cli.NetworkCreate(context.Background(), name, network.CreateOptions{Driver: "bridge"}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := cli.NetworkRemove(context.Background(), name); err != nil {
				t.Errorf("removing network %s: %v", name, err)
			}
		})
		d, reason := open(t, noSockets(t, Options{Name: "docker", DockerHost: host, DockerNetwork: name}))
		if got := d.(*docker.Driver).Network(); got != name || !strings.Contains(reason, "network "+name) {
			t.Fatalf("Network() %q, reason %q; want %s in both", got, reason, name)
		}
		explicit := noSockets(t, Options{Name: "docker", DockerHost: host})
		auto := noSockets(t, Options{StateDir: t.TempDir()})
		auto.Sockets = []string{sock}
		for _, opts := range []Options{explicit, auto} {
			opts.DockerNetwork = "slipway-missing"
			if err := openErr(t, opts); !strings.Contains(err.Error(), `network "slipway-missing" does not exist`) {
				t.Errorf("missing network: %v", err)
			}
		}
		// Without it, ports are published as before.
		d, _ = open(t, noSockets(t, Options{Name: "docker", DockerHost: host}))
		if got := d.(*docker.Driver).Network(); got != "" {
			t.Fatalf("Network() %q without the setting", got)
		}
	})
	t.Run("AutoFromEnv", func(t *testing.T) {
		t.Setenv("DOCKER_HOST", host)
		d, reason := open(t, Options{StateDir: t.TempDir(), Sockets: []string{}})
		if d.Name() != "docker" || !strings.Contains(reason, "$DOCKER_HOST") {
			t.Fatalf("%s, %q", d.Name(), reason)
		}
	})
}
