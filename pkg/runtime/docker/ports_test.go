package docker

import (
	"archive/tar"
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/slipwayhq/slipway/pkg/runtime"
	"github.com/slipwayhq/slipway/pkg/runtime/runtimetest"
)

// get fetches url until it answers (the workload may still be starting)
// and returns the body.
func get(t *testing.T, url string) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	c := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := c.Get(url)
		if err == nil {
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode == http.StatusOK {
				return string(b)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// testPorts: what the conformance case (runtimetest Ports) cannot see:
// the engine binds every port, tcp and udp, on 127.0.0.1 only, the
// driver's label stays its own, and a workload that no longer runs has no
// addresses. (Reachability, PORT and PORT_<NAME> and adoption are the
// conformance case's.)
func testPorts(t *testing.T, img string, d *Driver) {
	spec := runtime.Spec{Image: img,
		// httpd serves tcp; busybox has no udp server, so the test copies
		// one in (udpEcho) and the workload runs it once it is there.
		Command: []string{"/bin/sh", "-c", `mkdir -p /www && echo "$PORT_ALT_PORT" > /www/index.html && httpd -p "$PORT" -h /www &&
while [ ! -e /tmp/udpecho.ready ]; do sleep 0.1; done; exec /tmp/udpecho`},
		Ports: []runtime.Port{
			{Name: "web", Port: 8080},
			{Name: "alt-port", Port: 9090, Protocol: "udp"},
		},
	}
	id := runtimetest.Start(t, d, spec)
	st, err := d.Status(runtimetest.Context(t), id)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Ports) != 2 || st.Ports["web"] == "" || st.Ports["alt-port"] == "" {
		t.Fatalf("Status.Ports = %v, want web and alt-port", st.Ports)
	}
	for name, addr := range st.Ports {
		if h, p, err := net.SplitHostPort(addr); err != nil || h != "127.0.0.1" || p == "" || p == "0" {
			t.Errorf("port %s at %q, want 127.0.0.1:<port>", name, addr)
		}
	}
	if _, ok := st.Labels[LabelPorts]; ok {
		t.Errorf("the driver's own label in Status.Labels: %v", st.Labels)
	}
	if got := strings.TrimSpace(get(t, "http://"+st.Ports["web"]+"/")); got != "9090" {
		t.Errorf("PORT_ALT_PORT = %q, want 9090", got)
	}
	// The udp port answers at its loopback address too.
	if err := d.cli.CopyToContainer(runtimetest.Context(t), id, "/tmp", udpEcho(t), container.CopyToContainerOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := udpAsk(t, st.Ports["alt-port"], "ping"); got != "echo ping" {
		t.Errorf("udp answer %q, want echo ping", got)
	}

	ci, err := d.cli.ContainerInspect(runtimetest.Context(t), id)
	if err != nil {
		t.Fatal(err)
	}
	if len(ci.HostConfig.PortBindings) != 2 || len(ci.Config.ExposedPorts) != 2 {
		t.Errorf("bindings %v, exposed %v; want 2 of each", ci.HostConfig.PortBindings, ci.Config.ExposedPorts)
	}
	for cp, bs := range ci.NetworkSettings.Ports {
		for _, b := range bs {
			if b.HostIP != "127.0.0.1" {
				t.Errorf("%s published on %q", cp, b.HostIP)
			}
		}
	}
	if bs := ci.NetworkSettings.Ports["9090/udp"]; len(bs) != 1 || net.JoinHostPort(bs[0].HostIP, bs[0].HostPort) != st.Ports["alt-port"] {
		t.Errorf("the udp port is published at %v, Status says %s", bs, st.Ports["alt-port"])
	}

	if err := d.Stop(runtimetest.Context(t), id, 0); err != nil {
		t.Fatal(err)
	}
	if st := runtimetest.Wait(t, d, id); len(st.Ports) != 0 {
		t.Errorf("stopped workload's ports %v", st.Ports)
	}
}

// udpEchoSource is a udp server that answers "echo <datagram>" on
// $PORT_ALT_PORT.
const udpEchoSource = `package main

import (
	"net"
	"os"
)

func main() {
	c, err := net.ListenPacket("udp", ":"+os.Getenv("PORT_ALT_PORT"))
	if err != nil {
		panic(err)
	}
	b := make([]byte, 2048)
	for {
		n, from, err := c.ReadFrom(b)
		if err != nil {
			panic(err)
		}
		_, _ = c.WriteTo(append([]byte("echo "), b[:n]...), from)
	}
}
`

// udpEcho builds udpEchoSource as a static binary and returns a tar of it
// (udpecho) followed by udpecho.ready, which says it is all there.
func udpEcho(t *testing.T) io.Reader {
	t.Helper()
	dir := t.TempDir()
	for name, content := range map[string]string{
		"main.go": udpEchoSource,
		"go.mod":  "module udpecho\n\ngo 1.22\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The go command that runs the tests.
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go is needed to build the udp echo server: %v", err)
	}
	cmd := exec.Command(goBin, "build", "-o", "udpecho", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the udp echo server: %v\n%s", err, out)
	}
	bin, err := os.ReadFile(filepath.Join(dir, "udpecho"))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct {
		name string
		data []byte
	}{{"udpecho", bin}, {"udpecho.ready", nil}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o755, Size: int64(len(f.data)), ModTime: time.Now()}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(f.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf
}

// udpAsk sends msg to addr until an answer comes (the server may still be
// starting) and returns it.
func udpAsk(t *testing.T, addr, msg string) string {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b := make([]byte, 2048)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		if _, err := c.Write([]byte(msg)); err != nil {
			time.Sleep(200 * time.Millisecond) // refused while nothing listens
			continue
		}
		_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		if n, err := c.Read(b); err == nil {
			return string(b[:n])
		}
	}
	t.Fatalf("no udp answer from %s", addr)
	return ""
}
