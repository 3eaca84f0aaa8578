// Package drivers selects and opens the workload runtime driver: the
// process driver, or the docker driver when a Docker or Podman socket
// answers.
package drivers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/slipwayhq/slipway/pkg/runtime"
	"github.com/slipwayhq/slipway/pkg/runtime/docker"
	"github.com/slipwayhq/slipway/pkg/runtime/process"
)

// The driver names Open accepts ("" is auto).
const (
	Process = "process"
	Docker  = "docker"
)

// PingTimeout is how long auto-selection waits for a found socket to
// answer before falling back to the process driver.
const PingTimeout = 2 * time.Second

// Options configure Open.
type Options struct {
	// Name is "process", "docker" or "" (auto: docker when a socket is
	// found and answers within PingTimeout, else process).
	Name string
	// StateDir is the process driver's state directory.
	StateDir string
	// DockerHost is the Docker API address (e.g.
	// "unix:///run/podman/podman.sock"); "" means $DOCKER_HOST, else the
	// first of Sockets that exists.
	DockerHost string
	// DockerNetwork, when set, is the user-defined engine network on which
	// the docker driver attaches workloads with ports instead of
	// publishing them on 127.0.0.1 (docker.Driver.UseNetwork): for a
	// server that runs in a container on that network. The process driver
	// ignores it (its ports are on the server's own loopback).
	DockerNetwork string
	// Process configures the process driver's sandbox.
	Process process.Options
	// MaxProcs, when positive, caps each workload's processes on either
	// driver (process.Options.MaxProcs, docker's Driver.PidsLimit).
	MaxProcs int
	// Sockets are the candidate socket paths tried, in order, when neither
	// DockerHost nor $DOCKER_HOST is set; nil means DefaultSockets(). A
	// non-nil empty slice means none (tests use it to keep the machine's
	// own sockets out).
	Sockets []string
}

// DefaultSockets are where Docker and Podman put their API sockets:
// /var/run/docker.sock, $XDG_RUNTIME_DIR/podman/podman.sock (rootless
// Podman) and /run/podman/podman.sock (rootful Podman).
func DefaultSockets() []string {
	socks := []string{"/var/run/docker.sock"}
	if xdg := os.Getenv("XDG_RUNTIME_DIR"); xdg != "" {
		socks = append(socks, filepath.Join(xdg, "podman", "podman.sock"))
	}
	return append(socks, "/run/podman/podman.sock")
}

// dockerHost finds the Docker API address to use and says where it came
// from; "" when there is none.
func dockerHost(opts Options) (host, source string) {
	if opts.DockerHost != "" {
		return opts.DockerHost, "configured"
	}
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		return h, "from $DOCKER_HOST"
	}
	socks := opts.Sockets
	if socks == nil {
		socks = DefaultSockets()
	}
	for _, s := range socks {
		if fi, err := os.Stat(s); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return "unix://" + s, "found"
		}
	}
	return "", ""
}

// tried lists the sockets auto-selection looks for, for messages.
func tried(opts Options) string {
	socks := opts.Sockets
	if socks == nil {
		socks = DefaultSockets()
	}
	if len(socks) == 0 {
		return "no candidates"
	}
	return "looked for " + strings.Join(socks, ", ")
}

// Open returns the selected driver and a one-line human reason for the
// choice (for the caller to log at start-up), e.g. "docker (socket
// unix:///run/podman/podman.sock found)" or "process (no Docker or Podman
// socket found)". Both drivers implement io.Closer; the caller closes the
// driver when done.
func Open(ctx context.Context, opts Options) (runtime.Driver, string, error) {
	switch opts.Name {
	case Process:
		return openProcess(opts, "process (requested)")
	case Docker:
		host, source := dockerHost(opts)
		if host == "" {
			return nil, "", fmt.Errorf("runtime driver docker: no Docker or Podman socket found (%s; set DOCKER_HOST or the Docker host option)", tried(opts))
		}
		d, err := docker.New(host)
		if err != nil {
			return nil, "", fmt.Errorf("runtime driver docker: %w", err)
		}
		if err := configure(ctx, d, opts); err != nil {
			return nil, "", fmt.Errorf("runtime driver docker: %w", err)
		}
		return d, fmt.Sprintf("docker (requested; socket %s %s%s)", host, source, onNetwork(opts)), nil
	case "":
		host, source := dockerHost(opts)
		if host == "" {
			return openProcess(opts, "process (no Docker or Podman socket found)")
		}
		pingCtx, cancel := context.WithTimeout(ctx, PingTimeout)
		err := docker.Ping(pingCtx, host)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil, "", ctx.Err()
			}
			return openProcess(opts, fmt.Sprintf("process (socket %s %s but it did not answer a ping within %v)", host, source, PingTimeout))
		}
		d, err := docker.New(host)
		if err != nil {
			return nil, "", fmt.Errorf("runtime driver docker (socket %s %s): %w", host, source, err)
		}
		if err := configure(ctx, d, opts); err != nil {
			return nil, "", fmt.Errorf("runtime driver docker (socket %s %s): %w", host, source, err)
		}
		return d, fmt.Sprintf("docker (socket %s %s%s)", host, source, onNetwork(opts)), nil
	default:
		return nil, "", fmt.Errorf("unknown runtime driver %q: valid are %q, %q and \"\" (auto)", opts.Name, Process, Docker)
	}
}

func openProcess(opts Options, reason string) (runtime.Driver, string, error) {
	if opts.StateDir == "" {
		return nil, "", errors.New("runtime driver process: no state directory given")
	}
	po := opts.Process
	if opts.MaxProcs > 0 {
		po.MaxProcs = opts.MaxProcs
	}
	d, err := process.NewWith(opts.StateDir, po)
	if err != nil {
		return nil, "", fmt.Errorf("runtime driver process: %w", err)
	}
	return d, reason, nil
}

// configure applies opts to a docker driver just opened, closing it if
// they cannot apply (a network that does not exist).
func configure(ctx context.Context, d *docker.Driver, opts Options) error {
	if opts.MaxProcs > 0 {
		d.PidsLimit = int64(opts.MaxProcs)
	}
	if err := d.UseNetwork(ctx, opts.DockerNetwork); err != nil {
		_ = d.Close()
		return err
	}
	return nil
}

// onNetwork says, for Open's reason, where instances' ports are reached.
func onNetwork(opts Options) string {
	if opts.DockerNetwork == "" {
		return ""
	}
	return "; workloads' ports reached on network " + opts.DockerNetwork
}
