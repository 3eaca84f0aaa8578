package docker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/go-connections/nat"

	"github.com/slipwayhq/slipway/pkg/runtime"
	"github.com/slipwayhq/slipway/pkg/runtime/runtimetest"
)

// createNetwork creates a user-defined network with a name of its own
// through the engine API, removed (with the containers on it) when the
// test ends.
func createNetwork(t *testing.T, d *Driver) string {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := "slipway-test-" + hex.EncodeToString(b)
	if _, err := d.cli.NetworkCreate(runtimetest.Context(t), name, network.CreateOptions{Driver: "bridge"}); err != nil {
		t.Fatalf("creating network %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// A network with containers on it cannot be removed.
		if nw, err := d.cli.NetworkInspect(ctx, name, network.InspectOptions{}); err == nil {
			for id := range nw.Containers {
				_ = d.cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true})
			}
		}
		if err := d.cli.NetworkRemove(ctx, name); err != nil {
			t.Errorf("removing network %s: %v", name, err)
		}
	})
	return name
}

// testNetwork (run by TestDriver against Podman): with a network set, a
// workload with ports joins that network instead of the engine's default
// one and publishes nothing, and its ports are reported at its IP there
// with the container ports, by this driver and by a later one (adoption),
// whatever the later one's own setting; a workload without ports is left
// on the default network; an unknown network is refused. No traffic is
// sent to those addresses: tests reach workloads on loopback only.
// (Publishing on 127.0.0.1 with no network set is testPorts'.)
func testNetwork(t *testing.T, host, img string) {
	d := newDriver(t, host)
	name := createNetwork(t, d)
	ctx := runtimetest.Context(t)
	if err := d.UseNetwork(ctx, name); err != nil {
		t.Fatal(err)
	}
	if d.Network() != name {
		t.Fatalf("Network() = %q, want %q", d.Network(), name)
	}
	labels := map[string]string{"project": "p-network"}
	id := runtimetest.Start(t, d, runtime.Spec{Image: img, Command: []string{"sleep", "300"}, Labels: labels,
		Ports: []runtime.Port{{Name: "web", Port: 8080}, {Name: "dns", Port: 5353, Protocol: "udp"}}})
	t.Cleanup(func() { _ = d.Stop(context.Background(), id, 0) })

	ci, err := d.cli.ContainerInspect(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	// (Podman 4.3 reports the NetworkMode of a container on a named
	// network as "bridge": the networks it is on are what counts.)
	if len(ci.HostConfig.PortBindings) != 0 {
		t.Errorf("port bindings %v, want none", ci.HostConfig.PortBindings)
	}
	for cp, bs := range ci.NetworkSettings.Ports {
		if len(bs) != 0 {
			t.Errorf("%s published at %v", cp, bs)
		}
	}
	ep := ci.NetworkSettings.Networks[name]
	if len(ci.NetworkSettings.Networks) != 1 || ep == nil {
		t.Fatalf("networks %v, want only %s", keys(ci.NetworkSettings.Networks), name)
	}
	ip := net.ParseIP(ep.IPAddress)
	if ip == nil || ip.IsLoopback() || ip.IsUnspecified() {
		t.Fatalf("address on %s: %q", name, ep.IPAddress)
	}
	want := map[string]string{"web": net.JoinHostPort(ep.IPAddress, "8080"), "dns": net.JoinHostPort(ep.IPAddress, "5353")}
	check := func(who string, st runtime.Status) {
		t.Helper()
		if len(st.Ports) != 2 || st.Ports["web"] != want["web"] || st.Ports["dns"] != want["dns"] {
			t.Errorf("%s: Ports %v, want %v", who, st.Ports, want)
		}
		if _, ok := st.Labels[LabelNetwork]; ok {
			t.Errorf("%s: the driver's own label in Labels: %v", who, st.Labels)
		}
	}
	st, err := d.Status(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	check("Status", st)

	// Adoption: a new driver finds the running container and reports the
	// same addresses, with the same setting or none (the container's
	// label, not the driver's setting, says where its ports are).
	for _, network := range []string{name, ""} {
		later := newDriver(t, host)
		if err := later.UseNetwork(ctx, network); err != nil {
			t.Fatal(err)
		}
		list, err := later.List(ctx, labels)
		if err != nil || len(list) != 1 || list[0].ID != id {
			t.Fatalf("List by a later driver (network %q): %+v, %v", network, list, err)
		}
		check("later driver's List (network "+network+")", list[0])
		st, err := later.Status(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		check("later driver's Status (network "+network+")", st)
	}

	// A workload without ports stays on the engine's default network.
	plain := runtimetest.Start(t, d, runtime.Spec{Image: img, Command: []string{"sleep", "300"}})
	t.Cleanup(func() { _ = d.Stop(context.Background(), plain, 0) })
	pi, err := d.cli.ContainerInspect(ctx, plain)
	if err != nil {
		t.Fatal(err)
	}
	if _, on := pi.NetworkSettings.Networks[name]; on || pi.Config.Labels[LabelNetwork] != "" {
		t.Errorf("a workload without ports joined %s: mode %q, networks %v", name, pi.HostConfig.NetworkMode, keys(pi.NetworkSettings.Networks))
	}

	// Stopped, it has no addresses.
	if err := d.Stop(ctx, id, 0); err != nil {
		t.Fatal(err)
	}
	if st := runtimetest.Wait(t, d, id); len(st.Ports) != 0 {
		t.Errorf("stopped workload's ports %v", st.Ports)
	}

	// A network that does not exist is refused, saying so, and the
	// driver keeps its setting.
	err = d.UseNetwork(ctx, "slipway-no-such-network")
	if err == nil || !strings.Contains(err.Error(), `network "slipway-no-such-network" does not exist`) {
		t.Errorf("UseNetwork of a missing network: %v", err)
	}
	// Neither are host's or none, which give no address of its own (an
	// engine that does not know them refuses them as missing).
	for _, n := range []string{"host", "none"} {
		if err := d.UseNetwork(ctx, n); err == nil {
			t.Errorf("UseNetwork(%q) accepted", n)
		} else {
			t.Logf("UseNetwork(%q): %v", n, err)
		}
	}
	if d.Network() != name {
		t.Errorf("Network() = %q after a refused UseNetwork", d.Network())
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestNetworkPorts: the addresses read from an inspection's network
// settings, engine aside.
func TestNetworkPorts(t *testing.T) {
	labels := map[string]string{LabelPorts: "web=8080/tcp,dns=53/udp", LabelNetwork: "apps"}
	ns := &container.NetworkSettings{Networks: map[string]*network.EndpointSettings{
		"apps":  {IPAddress: "10.89.0.7"},
		"other": {IPAddress: "10.88.0.2"},
	}}
	ns.Ports = nat.PortMap{"8080/tcp": {{HostIP: "127.0.0.1", HostPort: "40000"}}}
	got := publishedPorts(labels, ns)
	if len(got) != 2 || got["web"] != "10.89.0.7:8080" || got["dns"] != "10.89.0.7:53" {
		t.Errorf("on the network: %v", got)
	}
	ns.Networks["apps"] = &network.EndpointSettings{GlobalIPv6Address: "fd00::7"}
	if got := publishedPorts(labels, ns); got["web"] != "[fd00::7]:8080" {
		t.Errorf("IPv6 only: %v", got)
	}
	delete(ns.Networks, "apps")
	if got := publishedPorts(labels, ns); len(got) != 0 {
		t.Errorf("not (yet) on the network: %v", got)
	}
	// Without the network label, the loopback binding.
	delete(labels, LabelNetwork)
	if got := publishedPorts(labels, ns); len(got) != 1 || got["web"] != "127.0.0.1:40000" {
		t.Errorf("published: %v", got)
	}
}
