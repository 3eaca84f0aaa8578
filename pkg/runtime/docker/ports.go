package docker

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/go-connections/nat"

	"github.com/slipwayhq/slipway/pkg/runtime"
)

// Ports: every Spec port is published on 127.0.0.1 only, at a host port
// the engine picks (HostPort ""), so nothing of a workload is reachable
// from another interface of the host, and the server never has to reach
// a container through the engine's bridge address (which is not on
// loopback, and not routable at all with a remote engine).
//
// Podman 4.3.1's compat API (rootful, CNI) honours a binding with
// HostIp "127.0.0.1" and no HostPort: it picks a free port when the
// container is created (conmon then holds it while the container runs)
// and shows it in the inspection's NetworkSettings.Ports, so there is no
// need to pick one here; Docker picks at start. Either way the driver
// reads the ports back from the inspection, never from memory, so a
// restarted driver reports the same addresses. Which container port is
// which Spec port is kept in the LabelPorts label.
//
// With a network (Driver.UseNetwork), a workload with ports publishes
// nothing: it joins that user-defined engine network instead of the
// engine's default one, and each port's address is the container's IP on
// that network with the container port. That is for a server that runs in
// a container itself (docker-compose.yml), whose 127.0.0.1 is its own: it
// joins the same network and reaches instances there, as Traefik or
// Coolify's proxy do. The network is recorded in the LabelNetwork label,
// so any driver reports the addresses of the network the container was
// started on, whatever its own setting.

// loopback is the only host address ports are published on.
const loopback = "127.0.0.1"

// UseNetwork makes the driver start every workload with ports on the
// user-defined engine network name, its ports unpublished and reported at
// its address there (see above); workloads without ports (jobs, addons)
// stay on the engine's default network. "" is the default: publish on
// 127.0.0.1. Call it before the first Start.
//
// The network must exist: the driver does not create it, because whoever
// creates it (compose, or `docker network create`) must also attach the
// server's own container to it, and a network the driver made up would
// only hide a misspelt name behind instances that never become ready.
// Networks without addresses of their own (host, none) are refused too.
func (d *Driver) UseNetwork(ctx context.Context, name string) error {
	if name == "" {
		d.network = ""
		return nil
	}
	noAddress := fmt.Errorf("docker: network %q gives containers no address of their own: name a user-defined bridge network", name)
	if name == "host" || name == "none" {
		return noAddress
	}
	nw, err := d.cli.NetworkInspect(ctx, name, network.InspectOptions{})
	switch {
	case cerrdefs.IsNotFound(err):
		return fmt.Errorf("docker: network %q does not exist on the engine at %s: create it (docker network create %s) and attach the container of the server that runs the ingress to it, or leave the network setting empty to publish ports on 127.0.0.1", name, d.Host(), name)
	case err != nil:
		return fmt.Errorf("docker: inspecting network %q: %w", name, err)
	case nw.Driver == "host" || nw.Driver == "null":
		return noAddress
	}
	d.network = name
	return nil
}

// Network is the network set by UseNetwork; "" when ports are published
// on 127.0.0.1.
func (d *Driver) Network() string { return d.network }

// protocol is p's protocol as the engine spells it.
func protocol(p runtime.Port) string {
	if p.Protocol == "" {
		return runtime.ProtocolTCP
	}
	return p.Protocol
}

// validatePorts refuses ports the driver cannot publish unambiguously,
// by the rules every driver shares.
func validatePorts(ports []runtime.Port) error {
	if err := runtime.ValidatePorts(ports); err != nil {
		return fmt.Errorf("docker: %w", err)
	}
	return nil
}

// portEnv returns env with PORT (the first port's number) and
// PORT_<NAME> for every port added, unless env sets them.
func portEnv(ports []runtime.Port, env map[string]string) map[string]string {
	out := make(map[string]string, len(env)+len(ports)+1)
	for k, v := range env {
		out[k] = v
	}
	set := func(k string, n int) {
		if _, ok := env[k]; !ok {
			out[k] = strconv.Itoa(n)
		}
	}
	for i, p := range ports {
		if i == 0 {
			set("PORT", p.Port)
		}
		set(runtime.PortEnvName(p.Name), p.Port)
	}
	return out
}

// portBindings exposes every port and publishes it on loopback at a port
// the engine picks.
func portBindings(ports []runtime.Port) (nat.PortSet, nat.PortMap) {
	if len(ports) == 0 {
		return nil, nil
	}
	exposed, bindings := nat.PortSet{}, nat.PortMap{}
	for _, p := range ports {
		cp := nat.Port(strconv.Itoa(p.Port) + "/" + protocol(p))
		exposed[cp] = struct{}{}
		bindings[cp] = []nat.PortBinding{{HostIP: loopback, HostPort: ""}}
	}
	return exposed, bindings
}

// portsLabel records which container port each Spec port is.
func portsLabel(ports []runtime.Port) string {
	parts := make([]string, len(ports))
	for i, p := range ports {
		parts[i] = p.Name + "=" + strconv.Itoa(p.Port) + "/" + protocol(p)
	}
	return strings.Join(parts, ",")
}

// publishedPorts maps each port named in the container's LabelPorts label
// to where the server reaches it: with a LabelNetwork label, the
// container's IP on that network and the container port; else the
// loopback address the engine published it at (a binding on any other
// address is not reported: the server reaches published ports on
// loopback only).
func publishedPorts(labels map[string]string, ns *container.NetworkSettings) map[string]string {
	label := labels[LabelPorts]
	if label == "" {
		return nil
	}
	if name := labels[LabelNetwork]; name != "" {
		return networkPorts(label, name, ns)
	}
	out := map[string]string{}
	for _, part := range strings.Split(label, ",") {
		name, cp, ok := strings.Cut(part, "=")
		if !ok || ns == nil {
			continue
		}
		for _, b := range ns.Ports[nat.Port(cp)] {
			if b.HostIP == loopback && b.HostPort != "" && b.HostPort != "0" {
				out[name] = net.JoinHostPort(loopback, b.HostPort)
				break
			}
		}
	}
	return out
}

// networkPorts maps each port named in label (LabelPorts) to the
// container's address on the network netName: none while it has no
// address there.
func networkPorts(label, netName string, ns *container.NetworkSettings) map[string]string {
	var ep *network.EndpointSettings
	if ns != nil {
		ep = ns.Networks[netName]
	}
	if ep == nil {
		return map[string]string{}
	}
	ip := ep.IPAddress
	if ip == "" {
		ip = ep.GlobalIPv6Address // an IPv6-only network
	}
	out := map[string]string{}
	if ip == "" {
		return out
	}
	for _, part := range strings.Split(label, ",") {
		if name, cp, ok := strings.Cut(part, "="); ok {
			out[name] = net.JoinHostPort(ip, nat.Port(cp).Port())
		}
	}
	return out
}
