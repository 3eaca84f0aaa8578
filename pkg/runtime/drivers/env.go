package drivers

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"

	"github.com/slipwayhq/slipway/pkg/component"
	"github.com/slipwayhq/slipway/pkg/runtime"
	"github.com/slipwayhq/slipway/pkg/runtime/process"
)

// Settings are the workload runtime's knobs. Every component that runs
// workloads (jobs, deployments) declares them; the process lists each
// once, so one configuration drives every component's driver.
var Settings = []component.Setting{
	{Flag: "runtime-driver", Env: "SLIPWAY_RUNTIME_DRIVER",
		Help:  "how workloads (jobs, services) run: process or docker (empty: docker when a Docker or Podman socket answers, else process)",
		Check: component.OneOf(Process, Docker)},
	{Flag: "docker-host", Env: "SLIPWAY_DOCKER_HOST",
		Help: "Docker Engine API address of the docker driver, e.g. unix:///run/podman/podman.sock (empty: $DOCKER_HOST, else the usual sockets)"},
	{Flag: "docker-network", Env: "SLIPWAY_DOCKER_NETWORK",
		Help: "existing user-defined engine network on which the docker driver attaches workloads with ports instead of publishing them on 127.0.0.1, reaching them at their address there: for a server that runs in a container joined to that network (empty: publish on 127.0.0.1)"},
	{Flag: "runtime-max-procs", Env: "SLIPWAY_RUNTIME_MAX_PROCS", Default: "1024",
		Help:  "most processes (and threads) one workload may have, on either driver",
		Check: component.Positive},
	{Flag: "process-unsandboxed", Env: "SLIPWAY_PROCESS_UNSANDBOXED", Default: "false",
		Help:  "true runs process-driver workloads WITHOUT a sandbox, as the server's user, able to read its data: only where bubblewrap cannot work and every workload is trusted",
		Check: component.OneOf("true", "false")},
	{Flag: "process-network", Env: "SLIPWAY_PROCESS_NETWORK", Default: "private",
		Help:  "network of a process-driver sandbox: private (its own, outbound through slirp4netns, the host's loopback unreachable), none (only its own loopback) or host (the host's, loopback services included: unsafe for tenants)",
		Check: component.OneOf("private", "none", "host")},
	{Flag: "process-ports", Env: "SLIPWAY_PROCESS_PORTS", Default: "20000-29999",
		Help: "range first-last of host ports that process-driver workloads' ports get, one each, reachable at 127.0.0.1 only",
		Check: func(v string) error {
			_, _, err := process.ParsePortRange(v)
			return err
		}},
	{Flag: "process-uid-base", Env: "SLIPWAY_PROCESS_UID_BASE", Default: "100000",
		Help:  "first host user id of the range process-driver workloads run as when Slipway runs as root (one id per running workload)",
		Check: component.Positive},
	{Flag: "process-uid-count", Env: "SLIPWAY_PROCESS_UID_COUNT", Default: "65536",
		Help:  "size of that range: at most that many workloads run at once",
		Check: component.Positive},
	{Flag: "process-cgroup", Env: "SLIPWAY_PROCESS_CGROUP", Default: "slipway",
		Help: "cgroup (relative to the hierarchy's root) under which process-driver workloads get their limits; as a normal user, one delegated to you"},
}

// FromEnv opens the driver a component's settings (Settings) select, its
// process-driver state under <data dir>/<stateDir>, logs how its
// workloads are isolated, keeps what is missing on /health (env.Notice)
// and closes the driver with the component.
func FromEnv(ctx context.Context, env *component.Env, stateDir string) (runtime.Driver, error) {
	return fromEnv(ctx, env, stateDir, env.Setting("runtime-driver"))
}

// ProcessFromEnv opens the process driver with the component's sandbox
// settings whatever driver they select: the builds component clones
// repositories in its sandbox even when images are built and run by a
// container engine.
func ProcessFromEnv(ctx context.Context, env *component.Env, stateDir string) (runtime.Driver, error) {
	return fromEnv(ctx, env, stateDir, Process)
}

func fromEnv(ctx context.Context, env *component.Env, stateDir, name string) (runtime.Driver, error) {
	// The settings were checked: positive integers.
	maxProcs, _ := strconv.Atoi(env.Setting("runtime-max-procs"))
	uidBase, _ := strconv.Atoi(env.Setting("process-uid-base"))
	uidCount, _ := strconv.Atoi(env.Setting("process-uid-count"))
	portFirst, portLast, _ := process.ParsePortRange(env.Setting("process-ports"))
	driver, why, err := Open(ctx, Options{
		Name: name, StateDir: filepath.Join(env.DataDir, stateDir), DockerHost: env.Setting("docker-host"),
		DockerNetwork: env.Setting("docker-network"),
		MaxProcs:      maxProcs,
		Process: process.Options{
			Unsandboxed: env.Setting("process-unsandboxed") == "true",
			UIDBase:     uidBase, UIDCount: uidCount, Cgroup: env.Setting("process-cgroup"),
			Hide:      []string{env.DataDir},
			Network:   env.Setting("process-network"),
			PortFirst: portFirst, PortLast: portLast,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("runtime driver: %w", err)
	}
	// How workloads are isolated is said once at start-up; what is
	// missing (limits, the sandbox itself) also stays on /health.
	if iso, ok := driver.(interface {
		Isolation() string
		Notice() string
	}); ok {
		env.Log.Info(env.Name + " workload isolation: " + iso.Isolation())
		if n := iso.Notice(); n != "" {
			env.Log.Warn(env.Name + " workload isolation: " + n)
			env.Notice("workload-isolation", n)
		}
	}
	if c, ok := driver.(interface{ Close() error }); ok {
		env.OnClose(func() { _ = c.Close() })
	}
	env.Log.Info(env.Name+" workloads run on the "+driver.Name()+" runtime driver", "why", why)
	return driver, nil
}
