package docker

import (
	"errors"
	"io"
	"maps"
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

// testPorts: every port is published on 127.0.0.1 only, reachable there
// from the server, named in Status (also by a driver that did not start
// the container) and announced to the workload in PORT and PORT_<NAME>.
func testPorts(t *testing.T, host, img string, d *Driver) {
	labels := map[string]string{"project": "p-ports"}
	spec := runtime.Spec{Image: img, Labels: labels,
		Command: []string{"/bin/sh", "-c", `mkdir -p /www && echo "$PORT $PORT_WEB $PORT_ALT_PORT $PORT_ADMIN" > /www/index.html && exec httpd -f -p "$PORT" -h /www`},
		Ports: []runtime.Port{
			{Name: "web", Port: 8080},
			{Name: "alt-port", Port: 9090, Protocol: "udp"},
			{Name: "admin", Port: 7070, Protocol: "tcp"},
		},
		Env: map[string]string{"PORT_ADMIN": "set-by-spec"},
	}
	id := runtimetest.Start(t, d, spec)
	st, err := d.Status(runtimetest.Context(t), id)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Ports) != 3 {
		t.Fatalf("Status.Ports = %v, want web, alt-port and admin", st.Ports)
	}
	for name, addr := range st.Ports {
		h, p, err := net.SplitHostPort(addr)
		if err != nil || h != "127.0.0.1" || p == "" || p == "0" {
			t.Errorf("port %s at %q, want 127.0.0.1:<port>", name, addr)
		}
	}
	if _, ok := st.Labels[LabelPorts]; ok {
		t.Errorf("the driver's own label in Status.Labels: %v", st.Labels)
	}
	if got := strings.TrimSpace(get(t, "http://"+st.Ports["web"]+"/")); got != "8080 8080 9090 set-by-spec" {
		t.Errorf("the workload says PORT PORT_WEB PORT_ALT_PORT PORT_ADMIN = %q, want 8080 8080 9090 set-by-spec", got)
	}

	// The engine binds loopback only, never another interface.
	ci, err := d.cli.ContainerInspect(runtimetest.Context(t), id)
	if err != nil {
		t.Fatal(err)
	}
	if len(ci.HostConfig.PortBindings) != 3 || len(ci.Config.ExposedPorts) != 3 {
		t.Errorf("bindings %v, exposed %v; want 3 of each", ci.HostConfig.PortBindings, ci.Config.ExposedPorts)
	}
	for cp, bs := range ci.NetworkSettings.Ports {
		for _, b := range bs {
			if b.HostIP != "127.0.0.1" {
				t.Errorf("%s published on %q", cp, b.HostIP)
			}
		}
	}
	if _, ok := ci.NetworkSettings.Ports["9090/udp"]; !ok {
		t.Errorf("the udp port is not published: %v", ci.NetworkSettings.Ports)
	}

	// A new driver on the same engine reads the same ports back.
	d2 := newDriver(t, host)
	st2, err := d2.Status(runtimetest.Context(t), id)
	if err != nil || !maps.Equal(st2.Ports, st.Ports) {
		t.Errorf("adopted Status.Ports = %v, %v; want %v", st2.Ports, err, st.Ports)
	}
	if l, err := d2.List(runtimetest.Context(t), labels); err != nil || len(l) != 1 || !maps.Equal(l[0].Ports, st.Ports) {
		t.Errorf("adopted List = %+v, %v; want the ports %v", l, err, st.Ports)
	}

	// Once it no longer runs, it has no addresses.
	if err := d.Stop(runtimetest.Context(t), id, 0); err != nil {
		t.Fatal(err)
	}
	if st := runtimetest.Wait(t, d, id); len(st.Ports) != 0 {
		t.Errorf("stopped workload's ports %v", st.Ports)
	}
}

// testBadPorts: ports the driver cannot publish unambiguously are refused
// with a clear error, before anything is created.
func testBadPorts(t *testing.T, img string, d *Driver) {
	labels := map[string]string{"project": "p-bad-ports"}
	for _, c := range []struct {
		ports []runtime.Port
		want  string
	}{
		{[]runtime.Port{{Name: "a", Port: 80}, {Name: "a", Port: 81}}, `port name "a" is used twice`},
		{[]runtime.Port{{Name: "a-b", Port: 80}, {Name: "a_b", Port: 81}}, `would both be PORT_A_B`},
		{[]runtime.Port{{Name: "a", Port: 0}}, `0 is not a port number`},
		{[]runtime.Port{{Name: "a", Port: 65536}}, `65536 is not a port number`},
		{[]runtime.Port{{Name: "a", Port: -1}}, `-1 is not a port number`},
		{[]runtime.Port{{Name: "a", Port: 80, Protocol: "sctp"}}, `protocol "sctp" is not tcp or udp`},
		{[]runtime.Port{{Name: "a", Port: 80, Protocol: "TCP"}}, `protocol "TCP" is not tcp or udp`},
		{[]runtime.Port{{Name: "", Port: 80}}, `port name ""`},
		{[]runtime.Port{{Name: "a b", Port: 80}}, `port name "a b"`},
		{[]runtime.Port{{Name: "a", Port: 80}, {Name: "b", Port: 80, Protocol: "tcp"}}, `ports "a" and "b" are both 80/tcp`},
	} {
		_, err := d.Start(runtimetest.Context(t), runtime.Spec{Image: img, Command: []string{"true"}, Labels: labels, Ports: c.ports})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ports %+v: %v, want %q", c.ports, err, c.want)
		}
	}
	// The same number over tcp and udp is two ports.
	id := runtimetest.Start(t, d, runtime.Spec{Image: img, Command: []string{"true"}, Labels: labels,
		Ports: []runtime.Port{{Name: "t", Port: 53}, {Name: "u", Port: 53, Protocol: "udp"}}})
	runtimetest.Wait(t, d, id)
	if l, err := d.List(runtimetest.Context(t), labels); err != nil || len(l) != 1 {
		t.Errorf("List = %+v, %v; want only the good one", l, err)
	}
	if _, err := d.Start(runtimetest.Context(t), runtime.Spec{Image: img, Ports: []runtime.Port{{Name: "x", Port: 0}}}); errors.Is(err, runtime.ErrUnsupported) {
		t.Errorf("bad ports are not unsupported: %v", err)
	}
}
