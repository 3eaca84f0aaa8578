// Package docker is the runtime driver that runs workloads as containers
// through the Docker Engine API, so it works against Docker or against
// Podman's Docker-compatible service (`podman system service`).
//
// Client choice: github.com/docker/docker/client v28, the official,
// maintained Go client of the Engine API, which both Docker and Podman's
// compatible socket speak. Its API-version negotiation goes down to the
// API 1.41 that Debian 12's Podman 4.3 answers with; the newer
// github.com/moby/moby/client module is still pre-1.0 and wants a newer
// engine. Switching later is mechanical: the calls are the same.
//
// Named volumes (runtime.Volumes) are in volumes.go.
//
// Every container carries the spec's labels plus dev.slipway.managed=true,
// dev.slipway.name=<spec.Name> and, when the spec has them,
// dev.slipway.deadline=<Go duration> and dev.slipway.ports (which container
// port each named port is; see ports.go for how ports are published), and
// dev.slipway.network (the network on which they are reached instead of
// published, with Driver.UseNetwork). The
// driver only ever sees containers with the managed label (any other id
// is runtime.ErrNotFound), and a restarted driver finds everything an
// earlier one started with List. New re-arms the deadlines of the
// containers still running, and Status, Wait and List arm the deadline of
// any running container they look at, so an adopted container is still
// killed at StartedAt+deadline.
//
// The reason a workload ended is kept in memory by the driver that ended
// it. A later driver cannot read it back (the engine API cannot change a
// container's labels); it reports ReasonDeadline for a container with a
// deadline that finished at or after StartedAt+deadline, and no reason
// otherwise (so ReasonStopped is only known to the driver that stopped it).
//
// Podman 4.3 caveats, each worked around where it bites:
//   - its compat API ignores containers.conf default_ulimits and raises
//     RLIMIT_NPROC beyond what an unprivileged (containerised) host allows,
//     so every container gets explicit ulimits (Driver.Ulimits);
//   - ContainerWait answers up to ~20 s after the container exited, so
//     Wait and the deadline watchers poll ContainerInspect instead;
//   - a followed log stream does not end when the container exits, so Logs
//     watches the container and ends the stream itself (see Logs);
//   - a short-lived container's StartedAt can be after its FinishedAt
//     (FinishedAt is then reported as StartedAt);
//   - log timestamps have whole-second precision (Docker's are in
//     nanoseconds); nothing here works around that.
package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/slipwayhq/slipway/pkg/runtime"
)

// Labels the driver sets on every container.
const (
	LabelManaged  = "dev.slipway.managed"  // always "true"
	LabelName     = "dev.slipway.name"     // Spec.Name
	LabelDeadline = "dev.slipway.deadline" // Spec.Deadline as a Go duration, counted from the container's StartedAt
	LabelPorts    = "dev.slipway.ports"    // Spec.Ports as "<name>=<port>/<protocol>,…", so that any driver can name the published ports
	LabelNetwork  = "dev.slipway.network"  // the network (Driver.UseNetwork) on which the ports are reached, instead of published
)

const (
	defaultKillGrace = 2 * time.Second
	// pollMin and pollMax bound the backoff of Wait's and Logs' polling.
	pollMin = 50 * time.Millisecond
	pollMax = 500 * time.Millisecond
	// watchPoll is how often a deadline watcher checks that its container
	// still runs, so that it ends soon after the container does.
	watchPoll = 5 * time.Second
	// logDrain is how long a followed log stream gets to end by itself
	// after the container exited (Docker ends it; Podman 4.3 does not).
	logDrain = 250 * time.Millisecond
	// lostAfter is how long a created but never started container may
	// stay so before it counts as lost (its starter died in between).
	lostAfter = 2 * time.Minute
)

// DefaultPidsLimit is the process cap of a container unless
// Driver.PidsLimit says otherwise: the process driver's default too.
const DefaultPidsLimit = 1024

// DefaultUlimits are the ulimits every container gets unless
// Driver.Ulimits says otherwise. Explicit limits are needed because
// Podman's compat API ignores containers.conf's default_ulimits and gives
// root containers an RLIMIT_NPROC above the hard limit of an unprivileged
// (e.g. containerised) host, where runc then fails with "error setting
// rlimit type 6". Lowering a limit is always allowed, so these work
// everywhere.
func DefaultUlimits() []*container.Ulimit {
	return []*container.Ulimit{
		{Name: "nofile", Soft: 1024, Hard: 1024},
		{Name: "nproc", Soft: 1024, Hard: 1024},
	}
}

// Driver runs workloads as containers. It is safe for concurrent use; set
// its fields before the first Start.
type Driver struct {
	cli *client.Client
	// KillGrace is how long a container stopped for its deadline gets
	// between SIGTERM and SIGKILL (rounded up to whole seconds).
	KillGrace time.Duration
	// Ulimits are given to every container; New sets DefaultUlimits.
	Ulimits []*container.Ulimit
	// PidsLimit caps the processes (and threads) of every container, the
	// engine's pids cgroup limit; New sets DefaultPidsLimit.
	PidsLimit int64
	// network is where workloads with ports are attached instead of
	// publishing them ("": publish); see UseNetwork.
	network string
	// NetworkMode is the network mode of every container not attached to
	// network: "" is the engine's default network; else a network's
	// name, or a mode such as Podman's
	// "slirp4netns:allow_host_loopback=true".
	NetworkMode string

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	reasons  map[string]string // container id -> why this driver ended it
	watching map[string]bool   // container ids with a deadline watcher
}

var _ runtime.Driver = (*Driver)(nil)

func newClient(host string) (*client.Client, error) {
	opts := []client.Opt{client.FromEnv}
	if host != "" {
		opts = append(opts, client.WithHost(host))
	}
	opts = append(opts, client.WithAPIVersionNegotiation())
	cli, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker: %w", err)
	}
	return cli, nil
}

// Ping reports whether an engine answers at host (as for New) before ctx
// ends.
func Ping(ctx context.Context, host string) error {
	cli, err := newClient(host)
	if err != nil {
		return err
	}
	defer cli.Close()
	if _, err := cli.Ping(ctx); err != nil {
		return fmt.Errorf("docker: %w", err)
	}
	return nil
}

// New connects to the engine at host (e.g. "unix:///run/podman/podman.sock"
// or "unix:///var/run/docker.sock"; empty means $DOCKER_HOST, else the
// client's default) and re-arms the deadlines of the running containers an
// earlier driver started.
func New(host string) (*Driver, error) {
	cli, err := newClient(host)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &Driver{cli: cli, KillGrace: defaultKillGrace, Ulimits: DefaultUlimits(), PidsLimit: DefaultPidsLimit,
		ctx: ctx, cancel: cancel, reasons: map[string]string{}, watching: map[string]bool{}}
	startCtx, startCancel := context.WithTimeout(ctx, 30*time.Second)
	defer startCancel()
	if _, err := cli.Ping(startCtx); err != nil {
		cancel()
		cli.Close()
		return nil, fmt.Errorf("docker: connecting to %s: %w", cli.DaemonHost(), err)
	}
	if _, err := d.List(startCtx, nil); err != nil { // arms the deadlines
		cancel()
		cli.Close()
		return nil, err
	}
	return d, nil
}

// Close stops the driver's deadline watchers without touching the
// containers; a later New re-arms them.
func (d *Driver) Close() error {
	d.cancel()
	d.wg.Wait()
	return d.cli.Close()
}

// Name implements runtime.Driver.
func (d *Driver) Name() string { return "docker" }

// Host is the engine address the driver talks to.
func (d *Driver) Host() string { return d.cli.DaemonHost() }

// isNotFound reports whether err says the container (or image) does not
// exist. Podman 4.3 answers an inspection that races with the container's
// removal with a 500 "...: no such container" instead of a 404.
func isNotFound(err error) bool {
	return err != nil && (cerrdefs.IsNotFound(err) || strings.Contains(err.Error(), "no such container"))
}

func wrap(id string, err error) error {
	if err == nil {
		return nil
	}
	if isNotFound(err) {
		return fmt.Errorf("docker: %s: %w (%v)", id, runtime.ErrNotFound, err)
	}
	return fmt.Errorf("docker: %s: %w", id, err)
}

func notFound(id string) error {
	return fmt.Errorf("docker: %s: %w", id, runtime.ErrNotFound)
}

// inspect inspects one of the driver's containers: containers without the
// managed label are not found.
func (d *Driver) inspect(ctx context.Context, id string) (container.InspectResponse, error) {
	if id == "" {
		return container.InspectResponse{}, notFound(id)
	}
	ci, err := d.cli.ContainerInspect(ctx, id)
	// Podman 4.3 can fail to inspect a container that is exiting just
	// then ("read /proc/<pid>/cgroup: no such process", a 500): look again.
	for delay := 50 * time.Millisecond; cerrdefs.IsInternal(err) && !isNotFound(err) && delay <= 200*time.Millisecond; delay *= 2 {
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ci, ctx.Err()
		case <-t.C:
		}
		ci, err = d.cli.ContainerInspect(ctx, id)
	}
	if err != nil {
		return ci, wrap(id, err)
	}
	if ci.Config == nil || ci.Config.Labels[LabelManaged] != "true" {
		return ci, notFound(id)
	}
	return ci, nil
}

// validName reports whether the engine accepts s as a container name.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			i > 0 && (r == '_' || r == '.' || r == '-')
		if !ok {
			return false
		}
	}
	return true
}

// Start implements runtime.Driver: it pulls the image if it is missing,
// then creates and starts the container and returns its id.
func (d *Driver) Start(ctx context.Context, spec runtime.Spec) (string, error) {
	if spec.Image == "" {
		return "", fmt.Errorf("%w: the docker driver runs images; the spec has none", runtime.ErrUnsupported)
	}
	if err := validatePorts(spec.Ports); err != nil {
		return "", err
	}
	if err := runtime.ValidateMounts(spec.Mounts, spec.WorkDir); err != nil {
		return "", fmt.Errorf("docker: %w", err)
	}
	if spec.HostNetwork {
		// A container reaches the network through the engine's own (what
		// a clone needs); the host's would give a process that is root in
		// its container the server's loopback services, and leave its
		// ports unpublishable.
		return "", fmt.Errorf("%w: the docker driver does not share the host's network with a container; its own network reaches what the host's does, but the host's loopback", runtime.ErrUnsupported)
	}
	if spec.Name != "" && !validName(spec.Name) {
		return "", fmt.Errorf("docker: %q is not a valid container name ([a-zA-Z0-9][a-zA-Z0-9_.-]*)", spec.Name)
	}
	if spec.Deadline < 0 {
		return "", fmt.Errorf("docker: negative deadline %v", spec.Deadline)
	}
	if err := d.checkVolumes(ctx, spec.Mounts); err != nil {
		return "", err
	}
	if err := d.ensureImage(ctx, spec.Image); err != nil {
		return "", err
	}
	labels := maps.Clone(spec.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[LabelManaged] = "true"
	labels[LabelName] = spec.Name
	delete(labels, LabelPorts)
	delete(labels, LabelNetwork)
	if len(spec.Ports) > 0 {
		labels[LabelPorts] = portsLabel(spec.Ports)
		if d.network != "" {
			labels[LabelNetwork] = d.network
		}
	}
	if spec.Deadline > 0 {
		labels[LabelDeadline] = spec.Deadline.String()
	} else {
		delete(labels, LabelDeadline)
	}
	envMap := portEnv(spec.Ports, spec.Env)
	env := make([]string, 0, len(envMap))
	for _, k := range slices.Sorted(maps.Keys(envMap)) {
		env = append(env, k+"="+envMap[k])
	}
	cfg := &container.Config{
		Image:      spec.Image,
		Env:        env,
		Labels:     labels,
		WorkingDir: spec.WorkDir, // "": the image's
		User:       spec.User,    // "": the image's; Exec runs as it too
	}
	if len(spec.Entrypoint) > 0 {
		cfg.Entrypoint = spec.Entrypoint
	}
	if len(spec.Command) > 0 {
		cfg.Cmd = spec.Command
	}
	// Isolation is the engine's (namespaces, cgroups, its seccomp and
	// capability defaults); the driver adds the plan's limits and a
	// process cap, with no swap beyond the memory limit, and mounts
	// nothing of the host but the Spec's mounts (binds of exactly those
	// directories, found on the engine's host), so the rest of the
	// server's data directory is never in a container; and no volume but
	// the named ones of the Spec's mounts, which the driver created.
	host := &container.HostConfig{Resources: container.Resources{
		NanoCPUs: spec.Resources.MilliCPU * 1_000_000,
		Memory:   spec.Resources.MemoryMB << 20,
		Ulimits:  d.Ulimits,
	}}
	if host.Memory > 0 {
		host.MemorySwap = host.Memory
	}
	if d.PidsLimit > 0 {
		pids := d.PidsLimit
		host.PidsLimit = &pids
	}
	for _, m := range spec.Mounts {
		if m.Volume != "" {
			// NoCopy: the volume holds only what workloads write, never
			// a copy of what the image has at Target.
			host.Mounts = append(host.Mounts, mount.Mount{Type: mount.TypeVolume, Source: m.Volume, Target: m.Target, ReadOnly: m.ReadOnly,
				VolumeOptions: &mount.VolumeOptions{NoCopy: true}})
			continue
		}
		host.Mounts = append(host.Mounts, mount.Mount{Type: mount.TypeBind, Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly})
	}
	var endpoints *network.NetworkingConfig
	if nw := labels[LabelNetwork]; nw != "" {
		// Reached on the network, in place of the engine's default one:
		// nothing is published.
		host.NetworkMode = container.NetworkMode(nw)
		endpoints = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{nw: {}}}
	} else {
		if d.NetworkMode != "" {
			host.NetworkMode = container.NetworkMode(d.NetworkMode)
		}
		cfg.ExposedPorts, host.PortBindings = portBindings(spec.Ports)
	}
	created, err := d.cli.ContainerCreate(ctx, cfg, host, endpoints, nil, spec.Name)
	if err != nil {
		return "", fmt.Errorf("docker: creating %q: %w", spec.Name, err)
	}
	id := created.ID
	if err := d.cli.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		rmCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = d.cli.ContainerRemove(rmCtx, id, container.RemoveOptions{Force: true})
		return "", fmt.Errorf("docker: starting %q: %w", spec.Name, err)
	}
	if spec.Deadline > 0 {
		// Counted from now, which is after the engine's StartedAt: a
		// later driver (counting from StartedAt) is never later.
		d.ensureWatch(id, time.Now().Add(spec.Deadline))
	}
	return id, nil
}

// ensureImage pulls ref unless the engine has it.
func (d *Driver) ensureImage(ctx context.Context, ref string) error {
	return EnsureImage(ctx, d.cli, ref)
}

// EnsureImage pulls ref unless the engine cli talks to has it, as the
// driver does before it creates a container; the error says why a pull
// failed (the engine answers a failed pull 200, with the reason in its
// progress stream).
func EnsureImage(ctx context.Context, cli client.ImageAPIClient, ref string) error {
	_, err := cli.ImageInspect(ctx, ref)
	if err == nil {
		return nil
	}
	if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("docker: inspecting image %q: %w", ref, err)
	}
	rc, err := cli.ImagePull(ctx, ref, image.PullOptions{})
	if err == nil {
		err = pullResult(rc)
		rc.Close()
	}
	if err == nil {
		if _, err = cli.ImageInspect(ctx, ref); err == nil {
			return nil
		}
	}
	return fmt.Errorf("docker: image %q is not present and pulling it failed: %w", ref, err)
}

// pullResult reads a pull's JSON progress stream to its end: the pull's
// outcome is in it, failures as {"error": ...} messages (or a failed read).
func pullResult(r io.Reader) error {
	dec := json.NewDecoder(r)
	var first error
	for {
		var m struct {
			Error       string `json:"error"`
			ErrorDetail struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&m); err != nil {
			if err == io.EOF {
				return first
			}
			if first == nil {
				first = err
			}
			return first
		}
		msg := m.Error
		if msg == "" {
			msg = m.ErrorDetail.Message
		}
		if msg != "" && first == nil {
			first = errors.New(msg)
		}
	}
}

// ensureWatch arms the deadline of the running container id: at deadline
// (now, if it is past) the container is stopped and its reason recorded.
// The watcher ends early once the container is gone or has exited.
//
// It polls ContainerInspect rather than using ContainerWait, which on
// Podman 4.3 answers up to ~20 s late.
func (d *Driver) ensureWatch(id string, deadline time.Time) {
	d.mu.Lock()
	if d.watching[id] || d.ctx.Err() != nil {
		d.mu.Unlock()
		return
	}
	d.watching[id] = true
	d.wg.Add(1)
	d.mu.Unlock()
	go func() {
		defer d.wg.Done()
		defer func() {
			d.mu.Lock()
			delete(d.watching, id)
			d.mu.Unlock()
		}()
		retry := false // after an engine error: look again in a second
		for {
			wait := min(time.Until(deadline), watchPoll)
			if retry {
				wait, retry = time.Second, false
			}
			if wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-d.ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
			}
			ci, err := d.cli.ContainerInspect(d.ctx, id)
			switch {
			case d.ctx.Err() != nil || isNotFound(err):
				return
			case err != nil:
				retry = true
				continue
			case phaseOf(ci.State) == phaseExited:
				return
			case time.Now().Before(deadline):
				continue
			}
			d.setReason(ci.ID, runtime.ReasonDeadline)
			retry = true
			if err := d.cli.ContainerStop(d.ctx, id, container.StopOptions{Timeout: seconds(d.KillGrace)}); err == nil {
				return
			}
		}
	}()
}

// setReason records why the driver ends a container, unless it knows one
// already; it reports whether it recorded reason.
func (d *Driver) setReason(id, reason string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.reasons[id]; ok {
		return false
	}
	d.reasons[id] = reason
	return true
}

// seconds turns a grace period into the engine's whole seconds, rounding up.
func seconds(grace time.Duration) *int {
	s := max(0, int((grace+time.Second-1)/time.Second))
	return &s
}

func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.Year() <= 1 {
		return time.Time{}
	}
	return t
}

// phase classifies an engine's container state. Only the states that
// certainly mean "ended" count as exited: Podman 4.3 also has e.g.
// "stopping" (with Running false) while a stop's grace runs.
type phase int

const (
	phaseRunning phase = iota
	phaseCreated       // created, not (yet) started
	phaseExited
)

func phaseOf(s *container.State) phase {
	if s == nil {
		return phaseCreated
	}
	switch s.Status {
	case container.StateExited, container.StateDead, container.StateRemoving, "stopped":
		return phaseExited
	case container.StateCreated, "configured", "initialized":
		return phaseCreated
	case "":
		switch {
		case s.Running || s.Paused || s.Restarting:
			return phaseRunning
		case parseTime(s.StartedAt).IsZero():
			return phaseCreated
		default:
			return phaseExited
		}
	}
	return phaseRunning
}

// status turns an inspection into a Status, and arms the deadline of a
// running container that has one.
func (d *Driver) status(ci container.InspectResponse) runtime.Status {
	st := runtime.Status{ID: ci.ID, State: runtime.StateRunning, Labels: map[string]string{}}
	var labels map[string]string
	if ci.Config != nil {
		labels = ci.Config.Labels
	}
	for k, v := range labels {
		switch k {
		case LabelManaged, LabelDeadline, LabelName, LabelPorts, LabelNetwork:
		default:
			st.Labels[k] = v
		}
	}
	if name, ok := labels[LabelName]; ok {
		st.Name = name
	} else {
		st.Name = strings.TrimPrefix(ci.Name, "/")
	}
	deadline, _ := time.ParseDuration(labels[LabelDeadline])
	if s := ci.State; s != nil {
		st.StartedAt = parseTime(s.StartedAt)
	}
	switch phaseOf(ci.State) {
	case phaseRunning:
		st.Ports = publishedPorts(labels, ci.NetworkSettings)
	case phaseCreated:
		// Not (yet) started: running soon, unless its starter died
		// before starting it.
		if created := parseTime(ci.Created); !created.IsZero() && time.Since(created) > lostAfter {
			st.State, st.ExitCode, st.Reason = runtime.StateExited, -1, runtime.ReasonLost
		}
	case phaseExited:
		st.State = runtime.StateExited
		st.ExitCode = ci.State.ExitCode
		st.FinishedAt = parseTime(ci.State.FinishedAt)
		if st.FinishedAt.Before(st.StartedAt) {
			// Podman 4.3 can record a StartedAt a few milliseconds after
			// the FinishedAt of a container that exits at once.
			st.FinishedAt = st.StartedAt
		}
	}
	d.mu.Lock()
	if r, ok := d.reasons[ci.ID]; ok && st.State == runtime.StateExited {
		st.Reason = r
	}
	d.mu.Unlock()
	switch {
	case st.State == runtime.StateRunning && deadline > 0 && !st.StartedAt.IsZero():
		d.ensureWatch(ci.ID, st.StartedAt.Add(deadline))
	case st.State == runtime.StateExited && st.Reason == "" && deadline > 0 &&
		!st.StartedAt.IsZero() && !st.FinishedAt.Before(st.StartedAt.Add(deadline)):
		// It ran to its deadline: killed for it by a driver that is gone
		// (or by this one, which then knew it already).
		st.Reason = runtime.ReasonDeadline
	}
	return st
}

// Status implements runtime.Driver.
func (d *Driver) Status(ctx context.Context, id string) (runtime.Status, error) {
	ci, err := d.inspect(ctx, id)
	if err != nil {
		return runtime.Status{}, err
	}
	return d.status(ci), nil
}

// backoff returns the next polling interval after cur.
func backoff(cur time.Duration) time.Duration {
	return min(cur*3/2, pollMax)
}

// Wait implements runtime.Driver. It polls ContainerInspect (every 50 ms at
// first, backing off to 500 ms): Podman 4.3's ContainerWait answers up to
// ~20 s after the container exited.
func (d *Driver) Wait(ctx context.Context, id string) (runtime.Status, error) {
	interval := pollMin
	for {
		st, err := d.Status(ctx, id) // also arms the deadline
		if err != nil {
			if ctx.Err() != nil {
				return st, ctx.Err()
			}
			return st, err
		}
		if st.State == runtime.StateExited {
			return st, nil
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return st, ctx.Err()
		case <-t.C:
		}
		interval = backoff(interval)
	}
}

// errStop ends a log copy when the consumer stopped iterating.
var errStop = errors.New("docker: log consumer stopped")

// Logs implements runtime.Driver. The engine's multiplexed stream is split
// into stdout and stderr with stdcopy, each line carrying the engine's
// timestamp.
//
// With follow, Podman 4.3 does not end the stream when the container exits
// (Docker does), so a watcher polls the container and, once it exited and
// the stream has not ended within a short drain time, cuts the stream and
// reads the finished log once more without follow, skipping the lines
// already yielded: no line is lost to the cut.
func (d *Driver) Logs(ctx context.Context, id string, follow bool) iter.Seq2[runtime.LogLine, error] {
	return func(yield func(runtime.LogLine, error) bool) {
		ci, err := d.inspect(ctx, id)
		if err != nil {
			yield(runtime.LogLine{}, err)
			return
		}
		if follow && d.status(ci).State == runtime.StateExited {
			follow = false
		}
		n := 0 // lines yielded
		emit := func(l runtime.LogLine) bool {
			n++
			return yield(l, nil)
		}
		if !follow {
			err := d.copyLogs(ctx, ci.ID, false, 0, emit)
			d.endLogs(ctx, id, err, yield)
			return
		}

		streamCtx, cancelStream := context.WithCancel(ctx)
		defer cancelStream()
		var (
			cutMu sync.Mutex
			cut   bool
		)
		watched := make(chan struct{})
		go func() {
			defer close(watched)
			interval := pollMin
			for {
				t := time.NewTimer(interval)
				select {
				case <-streamCtx.Done():
					t.Stop()
					return
				case <-t.C:
				}
				interval = backoff(interval)
				st, err := d.Status(streamCtx, ci.ID)
				if streamCtx.Err() != nil {
					return
				}
				if err == nil && st.State != runtime.StateExited {
					continue
				}
				// Exited (or removed): give the stream a moment to end
				// by itself, then cut it.
				t = time.NewTimer(logDrain)
				select {
				case <-streamCtx.Done():
					t.Stop()
					return
				case <-t.C:
				}
				cutMu.Lock()
				cut = true
				cutMu.Unlock()
				cancelStream()
				return
			}
		}()
		err = d.copyLogs(streamCtx, ci.ID, true, 0, emit)
		cancelStream()
		<-watched
		cutMu.Lock()
		wasCut := cut
		cutMu.Unlock()
		if wasCut && ctx.Err() == nil && !errors.Is(err, errStop) {
			err = d.copyLogs(ctx, ci.ID, false, n, emit)
		}
		d.endLogs(ctx, id, err, yield)
	}
}

// endLogs reports how a log copy ended, if not well.
func (d *Driver) endLogs(ctx context.Context, id string, err error, yield func(runtime.LogLine, error) bool) {
	switch {
	case errors.Is(err, errStop):
	case ctx.Err() != nil:
		yield(runtime.LogLine{}, ctx.Err())
	case err != nil:
		yield(runtime.LogLine{}, wrap(id, fmt.Errorf("logs: %w", err)))
	}
}

// copyLogs reads the container's log from the start, skips its first skip
// lines and hands the others to emit.
func (d *Driver) copyLogs(ctx context.Context, id string, follow bool, skip int, emit func(runtime.LogLine) bool) error {
	rc, err := d.cli.ContainerLogs(ctx, id, container.LogsOptions{
		ShowStdout: true, ShowStderr: true, Timestamps: true, Follow: follow,
	})
	if err != nil {
		return err
	}
	defer rc.Close()
	out := func(l runtime.LogLine) bool {
		if skip > 0 {
			skip--
			return true
		}
		return emit(l)
	}
	stdout := &lineWriter{stream: "stdout", emit: out}
	stderr := &lineWriter{stream: "stderr", emit: out}
	if _, err := stdcopy.StdCopy(stdout, stderr, rc); err != nil {
		return err
	}
	if err := stdout.flush(); err != nil {
		return err
	}
	return stderr.flush()
}

// MaxLineBytes caps one log line; longer lines are split.
const MaxLineBytes = runtime.MaxLineBytes

// lineWriter turns one stream's frames into LogLines. stdcopy hands it one
// frame per Write, and the engine sends one log message per frame, each
// prefixed with its timestamp. A message that does not end in a newline is
// part of a line the engine split (Podman splits at 8 KiB, Docker at
// 16 KiB): the next messages continue it, and their timestamps are
// dropped (a line's time is when it began).
type lineWriter struct {
	stream string
	emit   func(runtime.LogLine) bool
	buf    []byte    // the line being assembled
	time   time.Time // its time
}

func (w *lineWriter) Write(p []byte) (int, error) {
	t, rest := splitTime(p)
	if len(w.buf) == 0 {
		w.time = t
	}
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			w.buf = append(w.buf, rest...)
			break
		}
		w.buf = append(w.buf, rest[:i]...)
		rest = rest[i+1:]
		// The piece that ends a line may take it past the cap (the
		// engine's pieces do not fall on it): split it here too.
		if err := w.split(MaxLineBytes + 1); err != nil {
			return 0, err
		}
		if err := w.line(w.buf); err != nil {
			return 0, err
		}
		w.buf, w.time = w.buf[:0], t
	}
	if err := w.split(MaxLineBytes); err != nil {
		return 0, err
	}
	return len(p), nil
}

// split emits MaxLineBytes pieces of the line being assembled while it
// holds at least atLeast bytes, keeping the rest.
func (w *lineWriter) split(atLeast int) error {
	for len(w.buf) >= atLeast {
		if err := w.line(w.buf[:MaxLineBytes]); err != nil {
			return err
		}
		w.buf = append(w.buf[:0], w.buf[MaxLineBytes:]...)
	}
	return nil
}

// flush emits an unterminated last line.
func (w *lineWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	defer func() { w.buf = w.buf[:0] }()
	return w.line(w.buf)
}

func (w *lineWriter) line(b []byte) error {
	l := runtime.LogLine{Time: w.time, Stream: w.stream, Text: string(bytes.TrimSuffix(b, []byte{'\r'}))}
	if !w.emit(l) {
		return errStop
	}
	return nil
}

// splitTime splits the engine's RFC 3339 timestamp and its space off the
// start of a log message.
func splitTime(p []byte) (time.Time, []byte) {
	i := bytes.IndexByte(p, ' ')
	if i <= 0 || i > len("2006-01-02T15:04:05.999999999+07:00") {
		return time.Time{}, p
	}
	t, err := time.Parse(time.RFC3339Nano, string(p[:i]))
	if err != nil {
		return time.Time{}, p
	}
	return t, p[i+1:]
}

// Stop implements runtime.Driver: SIGTERM, then SIGKILL after grace
// (rounded up to whole seconds). Stopping an exited container does
// nothing.
func (d *Driver) Stop(ctx context.Context, id string, grace time.Duration) error {
	ci, err := d.inspect(ctx, id)
	if err != nil {
		return err
	}
	if phaseOf(ci.State) == phaseExited {
		return nil
	}
	set := d.setReason(ci.ID, runtime.ReasonStopped)
	if err := d.cli.ContainerStop(ctx, ci.ID, container.StopOptions{Timeout: seconds(grace)}); err != nil {
		if set {
			d.mu.Lock()
			delete(d.reasons, ci.ID)
			d.mu.Unlock()
		}
		return wrap(id, err)
	}
	return nil
}

// Remove implements runtime.Driver. A running container is refused: stop
// it first.
func (d *Driver) Remove(ctx context.Context, id string) error {
	ci, err := d.inspect(ctx, id)
	if err != nil {
		return err
	}
	if d.status(ci).State != runtime.StateExited {
		return fmt.Errorf("docker: %s is still running; stop it first", id)
	}
	if err := d.cli.ContainerRemove(ctx, ci.ID, container.RemoveOptions{RemoveVolumes: true, Force: true}); err != nil {
		return wrap(id, err)
	}
	d.mu.Lock()
	delete(d.reasons, ci.ID)
	d.mu.Unlock()
	return nil
}

// List implements runtime.Driver: the containers this driver (or an
// earlier instance) started whose labels include all of labels, running
// or exited, oldest first.
func (d *Driver) List(ctx context.Context, labels map[string]string) ([]runtime.Status, error) {
	f := filters.NewArgs(filters.Arg("label", LabelManaged+"=true"))
	for k, v := range labels {
		f.Add("label", k+"="+v)
	}
	var cs []container.Summary
	var err error
	for try := 0; try < 3; try++ {
		cs, err = d.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
		// Podman 4.3's list can fail with "no such container" when a
		// container is removed while it lists: list again.
		if !isNotFound(err) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("docker: listing containers: %w", err)
	}
	out := make([]runtime.Status, 0, len(cs))
	for _, c := range cs {
		ci, err := d.inspect(ctx, c.ID)
		if errors.Is(err, runtime.ErrNotFound) {
			continue // removed in between
		}
		if err != nil {
			return nil, err
		}
		// Check the labels here too, in case an engine ignores a filter.
		match := true
		for k, v := range labels {
			if got, ok := ci.Config.Labels[k]; !ok || got != v {
				match = false
				break
			}
		}
		if match {
			out = append(out, d.status(ci))
		}
	}
	slices.SortFunc(out, func(a, b runtime.Status) int {
		if c := a.StartedAt.Compare(b.StartedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}
