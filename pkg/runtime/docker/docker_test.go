package docker

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/slipwayhq/slipway/pkg/runtime"
	"github.com/slipwayhq/slipway/pkg/runtime/runtimetest"
	"github.com/slipwayhq/slipway/pkg/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func newDriver(t *testing.T, host string) *Driver {
	t.Helper()
	d, err := New(host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// recorder is a proxy in front of the engine's socket that records the
// requests' paths, to see which API calls the driver makes.
type recorder struct {
	host  string
	mu    sync.Mutex
	paths []string
}

func (r *recorder) seen(substr string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.ContainsFunc(r.paths, func(p string) bool { return strings.Contains(p, substr) })
}

func newRecorder(t *testing.T, engine string) *recorder {
	t.Helper()
	sockPath := strings.TrimPrefix(engine, "unix://")
	dir, err := os.MkdirTemp("", "rec")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	l, err := net.Listen("unix", filepath.Join(dir, "proxy.sock"))
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{host: "unix://" + filepath.Join(dir, "proxy.sock")}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(&url.URL{Scheme: "http", Host: "engine"})
			r.mu.Lock()
			r.paths = append(r.paths, pr.In.Method+" "+pr.In.URL.Path)
			r.mu.Unlock()
		},
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sockPath)
		}},
		FlushInterval: -1,
	}
	srv := &http.Server{Handler: proxy}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return r
}

// TestDriver runs the conformance suite and the docker-only cases against
// one Podman service (starting one is the slow part); the cases run in
// parallel, each with its own containers and labels.
func TestDriver(t *testing.T) {
	host := testenv.Podman(t)
	img := testenv.BuildTestImage(t, host)
	d := newDriver(t, host)
	if d.Name() != "docker" {
		t.Fatalf("Name = %q", d.Name())
	}

	runtimetest.Run(t, runtimetest.Harness{
		// The engine keeps the state: every driver on host sees the same
		// containers.
		New: func(t *testing.T, _ string) runtimetest.Driver {
			d, err := New(host)
			if err != nil {
				t.Fatal(err)
			}
			d.PidsLimit = 64
			return d
		},
		Spec: func(command ...string) runtime.Spec { return runtime.Spec{Image: img, Command: command} },
		// The image's PATH and the engine's standard variables.
		BaseEnv:      []string{"PATH", "HOSTNAME", "HOME", "container", "TERM"},
		MaxLineBytes: MaxLineBytes,
		MaxProcs:     64,
	})

	t.Run("Volumes", func(t *testing.T) {
		t.Parallel()
		testVolumes(t, d, img)
	})

	t.Run("ImagePath", func(t *testing.T) {
		t.Parallel()
		// Without a PATH in the spec, the image's applies.
		id := runtimetest.Start(t, d, runtime.Spec{Image: img, Command: []string{"/bin/sh", "-c", `echo "$PATH"`}})
		runtimetest.Wait(t, d, id)
		if got := runtimetest.Texts(t, runtimetest.Logs(t, d, id, false), "stdout"); !slices.Equal(got, []string{"/usr/sbin:/usr/bin:/sbin:/bin"}) {
			t.Errorf("PATH %q, want the image's", got)
		}
	})

	t.Run("User", func(t *testing.T) {
		t.Parallel()
		// Spec.User is who the command, and an Exec, run as.
		id := runtimetest.Start(t, d, runtime.Spec{Image: img, User: "4321:4322", Command: []string{"/bin/sh", "-c", `id -u; id -g; sleep 30`}})
		t.Cleanup(func() { _ = d.Stop(context.Background(), id, 0) })
		var out bytes.Buffer
		code, err := d.Exec(runtimetest.Context(t), id, runtime.ExecSpec{Command: []string{"id", "-u"}, Stdout: &out})
		if err != nil || code != 0 || strings.TrimSpace(out.String()) != "4321" {
			t.Fatalf("exec: %d %v %q, want uid 4321", code, err, out.String())
		}
		_ = d.Stop(runtimetest.Context(t), id, 0)
		runtimetest.Wait(t, d, id)
		if got := runtimetest.Texts(t, runtimetest.Logs(t, d, id, false), "stdout"); !slices.Equal(got, []string{"4321", "4322"}) {
			t.Errorf("ids %q, want 4321 4322", got)
		}
	})

	t.Run("HostNetworkUnsupported", func(t *testing.T) {
		t.Parallel()
		// A container never shares the host's network: Start refuses,
		// saying so, and creates nothing.
		labels := map[string]string{"project": "p-hostnet"}
		_, err := d.Start(runtimetest.Context(t), runtime.Spec{Image: img, Command: []string{"true"}, Labels: labels, HostNetwork: true})
		if !errors.Is(err, runtime.ErrUnsupported) || !strings.Contains(err.Error(), "host's network") {
			t.Fatalf("Start with HostNetwork: %v, want ErrUnsupported saying why", err)
		}
		if l, err := d.List(runtimetest.Context(t), labels); err != nil || len(l) != 0 {
			t.Fatalf("List = %+v, %v; want nothing", l, err)
		}
	})

	t.Run("Network", func(t *testing.T) {
		t.Parallel()
		// Driver.NetworkMode gives containers another network than the
		// engine's default (a bridge, from which the host's loopback is
		// out of reach; not tried here, since 10.0.2.2 is routed off the
		// host there): slirp4netns with the host's loopback at 10.0.2.2,
		// so the connection stays on loopback.
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = l.Close() })
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				_, _ = c.Write([]byte("from the host\n"))
				_ = c.Close()
			}
		}()
		port := l.Addr().(*net.TCPAddr).Port
		read := func(d *Driver) []string {
			t.Helper()
			id := runtimetest.Start(t, d, runtime.Spec{Image: img, Command: []string{"/bin/sh", "-c",
				"nc -w 5 10.0.2.2 " + strconv.Itoa(port) + " </dev/null 2>/dev/null || echo unreachable"}})
			runtimetest.Wait(t, d, id)
			return runtimetest.Texts(t, runtimetest.Logs(t, d, id, false), "stdout")
		}
		nd := newDriver(t, host)
		nd.NetworkMode = "slirp4netns:allow_host_loopback=true"
		if got := read(nd); !slices.Equal(got, []string{"from the host"}) {
			t.Errorf("with NetworkMode %s: %q", nd.NetworkMode, got)
		}
	})

	t.Run("ForeignContainers", func(t *testing.T) {
		t.Parallel()
		// A container with the same labels that the driver did not start
		// is not the driver's: List skips it, Status does not know it.
		labels := map[string]string{"project": "p-foreign"}
		own := runtimetest.Start(t, d, runtime.Spec{Image: img, Command: []string{"true"}, Labels: labels})
		runtimetest.Wait(t, d, own)
		foreign, err := d.cli.ContainerCreate(runtimetest.Context(t), &container.Config{Image: img, Cmd: []string{"true"}, Labels: labels},
			&container.HostConfig{Resources: container.Resources{Ulimits: DefaultUlimits()}}, nil, nil, "list-foreign")
		if err != nil {
			t.Fatal(err)
		}
		if l, err := d.List(runtimetest.Context(t), labels); err != nil || len(l) != 1 || l[0].ID != own {
			t.Fatalf("List = %+v, %v; want only %s", l, err, own)
		}
		if _, err := d.Status(runtimetest.Context(t), foreign.ID); !errors.Is(err, runtime.ErrNotFound) {
			t.Errorf("Status of a foreign container: %v, want ErrNotFound", err)
		}
	})

	t.Run("ResourcesAndUlimits", func(t *testing.T) {
		t.Parallel()
		id := runtimetest.Start(t, d, runtime.Spec{Image: img, Command: []string{"cat", "/proc/self/limits"},
			Resources: runtime.Resources{MilliCPU: 500, MemoryMB: 64}})
		if st := runtimetest.Wait(t, d, id); st.ExitCode != 0 {
			t.Fatalf("status %+v", st)
		}
		ci, err := d.cli.ContainerInspect(runtimetest.Context(t), id)
		if err != nil {
			t.Fatal(err)
		}
		if ci.HostConfig.NanoCPUs != 500_000_000 || ci.HostConfig.Memory != 64<<20 || ci.HostConfig.MemorySwap != 64<<20 {
			t.Errorf("NanoCPUs %d, Memory %d, MemorySwap %d; want 5e8, 64 MiB and no swap beyond it", ci.HostConfig.NanoCPUs, ci.HostConfig.Memory, ci.HostConfig.MemorySwap)
		}
		if p := ci.HostConfig.PidsLimit; p == nil || *p != DefaultPidsLimit {
			t.Errorf("PidsLimit %v, want %d", p, DefaultPidsLimit)
		}
		// Nothing of the host is mounted: the data directory never is.
		if len(ci.HostConfig.Binds) != 0 || len(ci.HostConfig.Mounts) != 0 || len(ci.Mounts) != 0 {
			t.Errorf("binds %q, mounts %+v %+v; want none", ci.HostConfig.Binds, ci.HostConfig.Mounts, ci.Mounts)
		}
		limits := map[string][]string{}
		for _, l := range runtimetest.Texts(t, runtimetest.Logs(t, d, id, false), "stdout") {
			for _, name := range []string{"Max open files", "Max processes"} {
				if rest, ok := strings.CutPrefix(l, name); ok {
					limits[name] = strings.Fields(rest)
				}
			}
		}
		for _, name := range []string{"Max open files", "Max processes"} {
			if f := limits[name]; len(f) < 2 || f[0] != "1024" || f[1] != "1024" {
				t.Errorf("%s in the container: %q, want 1024 1024", name, f)
			}
		}
	})
	t.Run("PortsOnLoopback", func(t *testing.T) {
		t.Parallel()
		testPorts(t, img, d)
	})
	t.Run("PortsOnNetwork", func(t *testing.T) {
		t.Parallel()
		testNetwork(t, host, img)
	})
	for name, fn := range map[string]func(*testing.T, *Driver, string){
		"ExecStreams": testExecStreams, "ExecBrokenWriter": testExecBrokenWriter, "ExecResizeLast": testExecResizeLast,
		"UsageMeasured": testUsage, "ExecConmons": testExecConmons,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(t, d, img)
		})
	}
	t.Run("PullIfMissing", func(t *testing.T) {
		t.Parallel()
		rec := newRecorder(t, host)
		pd := newDriver(t, rec.host)
		// Present locally: inspected, never pulled (no registry is
		// reachable from here, so a pull would fail the Start too).
		id := runtimetest.Start(t, pd, runtime.Spec{Image: img, Command: []string{"true"}})
		runtimetest.Wait(t, pd, id)
		if !rec.seen("/images/" + img + "/json") {
			t.Errorf("image not inspected; requests %q", rec.paths)
		}
		if rec.seen("/images/create") {
			t.Errorf("present image pulled; requests %q", rec.paths)
		}
		// Missing: pulled, and the failure is a clear error, not a hang.
		began := time.Now()
		_, err := pd.Start(runtimetest.Context(t), runtime.Spec{Image: "localhost/slipway-missing:latest", Command: []string{"true"}})
		if err == nil || !strings.Contains(err.Error(), `image "localhost/slipway-missing:latest" is not present and pulling it failed`) {
			t.Fatalf("Start with a missing image: %v", err)
		}
		if took := time.Since(began); took > 30*time.Second {
			t.Errorf("failing took %v", took)
		}
		if !rec.seen("/images/create") {
			t.Errorf("missing image not pulled; requests %q", rec.paths)
		}
		t.Logf("missing image: %v", err)
	})
	t.Run("BadSpecs", func(t *testing.T) {
		t.Parallel()
		if _, err := d.Start(runtimetest.Context(t), runtime.Spec{Command: []string{"true"}}); !errors.Is(err, runtime.ErrUnsupported) {
			t.Errorf("no image: %v", err)
		}
		if _, err := d.Start(runtimetest.Context(t), runtime.Spec{Image: img, Name: "bad name/"}); err == nil {
			t.Error("bad name accepted")
		}
		id := runtimetest.Start(t, d, runtime.Spec{Image: img, Name: "dup-name", Command: []string{"true"}})
		if _, err := d.Start(runtimetest.Context(t), runtime.Spec{Image: img, Name: "dup-name", Command: []string{"true"}}); err == nil {
			t.Error("duplicate name accepted")
		}
		runtimetest.Wait(t, d, id)
	})
}

func TestNewUnreachable(t *testing.T) {
	began := time.Now()
	_, err := New("unix://" + filepath.Join(t.TempDir(), "nothing.sock"))
	if err == nil {
		t.Fatal("New on a missing socket succeeded")
	}
	if took := time.Since(began); took > 10*time.Second {
		t.Errorf("took %v", took)
	}
	if err := Ping(context.Background(), "unix:///nonexistent/docker.sock"); err == nil {
		t.Error("Ping of a missing socket succeeded")
	}
}
