package docker

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

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
		Command: []string{"/bin/sh", "-c", `mkdir -p /www && echo "$PORT_ALT_PORT" > /www/index.html && exec httpd -f -p "$PORT" -h /www`},
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
