package docker

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/docker/docker/api/types/container"
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

// loopback is the only host address ports are published on.
const loopback = "127.0.0.1"

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

// publishedPorts maps each port named in label (LabelPorts) to the
// loopback address the engine published it at. A binding on any other
// address is not reported: the server reaches workloads on loopback only.
func publishedPorts(label string, ns *container.NetworkSettings) map[string]string {
	if label == "" {
		return nil
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
