// Package runtime runs workloads for every Slipway service that needs them
// (jobs now; builds, deployments and addons later) through one interface,
// with drivers for local processes, the Docker Engine API (Docker or
// Podman) and, later, Kubernetes.
//
// A driver owns nothing but what it starts: every workload carries labels
// (project, job, run) so that a restarted service can find and reconcile
// what an earlier instance left running, and none is orphaned.
package runtime

import (
	"context"
	"errors"
	"io"
	"iter"
	"time"
)

// Spec describes one workload run.
type Spec struct {
	// Name is unique among the driver's workloads (e.g. "<project>-<job>-<run>").
	Name string
	// Image is the container image; drivers that run no containers refuse
	// a Spec with one (ErrUnsupported).
	Image string
	// User is who the container's command (and every Exec in it) runs as,
	// "uid:gid" or a user of the image ("postgres"); empty is the image's.
	// Only the docker driver honours it: the process driver gives every
	// workload a user of its own and refuses a Spec with one
	// (ErrUnsupported).
	User string
	// Entrypoint and Command override the image's; for the process driver
	// Command is the program and its arguments (Entrypoint, when set, is
	// prepended).
	Entrypoint []string
	Command    []string
	// Env is the environment, exactly (nothing is inherited).
	Env map[string]string
	// Labels tie the workload to its owner; List finds workloads by them.
	Labels map[string]string
	// Resources limits the workload where the driver can enforce limits.
	Resources Resources
	// Deadline, when positive, kills the workload that long after it
	// started; its Status then says ReasonDeadline.
	Deadline time.Duration
	// Ports are the ports the workload listens on. The driver makes each
	// reachable from the server at a loopback address (Status.Ports) and
	// never on another interface of the host.
	Ports []Port
	// Mounts are host directories the workload sees, so that workloads
	// run one after the other can hand work on (a build's clone, then its
	// build) and a deployment can run what a build left on the host. See
	// Mount and ValidateMounts.
	Mounts []Mount
	// WorkDir, when set, is where the command starts and an Exec unless
	// told otherwise (an absolute path as the workload sees it, usually a
	// mount's Target, that must exist there); else the driver's default:
	// the process driver's own working directory (/work), the image's on
	// docker.
	WorkDir string
	// HostNetwork shares the host's network with the workload, its
	// loopback services included, for trusted programs only (a `git clone`
	// of a URL the server checked, which must reach what the server can).
	// The process driver keeps every other part of its sandbox (its own
	// uid, mounts and PID namespace, no capabilities); its ports are then
	// host ports (see Port). The docker driver refuses it
	// (ErrUnsupported).
	HostNetwork bool
}

// Port is a port a workload listens on.
type Port struct {
	// Name is unique within the Spec ("p01").
	Name string
	// Port is the number the workload listens on inside its network. A
	// driver that shares the host's network (the process driver with the
	// host network, or for a Spec with HostNetwork) cannot honour it and gives the workload another; the
	// workload learns its numbers from PORT (the first port) and
	// PORT_<NAME> (every port, the name upper-cased, "-" as "_"), which the
	// driver sets unless Env does.
	Port int
	// Protocol is "tcp" (the default) or "udp".
	Protocol string
}

// Resources are limits; zero means none.
type Resources struct {
	MilliCPU int64
	MemoryMB int64
}

// State is where a workload is in its life.
type State string

// The states a workload goes through.
const (
	StateRunning State = "RUNNING"
	StateExited  State = "EXITED"
)

// Reasons a workload ended other than by exiting on its own.
const (
	ReasonDeadline = "DeadlineExceeded"
	ReasonStopped  = "Stopped"
	ReasonLost     = "Lost" // the driver cannot tell what became of it
)

// Status is what a driver knows of a workload.
type Status struct {
	ID     string
	Name   string
	Labels map[string]string
	State  State
	// ExitCode is meaningful once State is StateExited.
	ExitCode   int
	Reason     string
	StartedAt  time.Time
	FinishedAt time.Time
	// Ports maps each Spec port's name to where the server reaches it
	// while the workload runs: a loopback "127.0.0.1:<port>", or, on the
	// docker driver with a network set (docker.Driver.UseNetwork), the
	// container's "<ip>:<container port>" on that network.
	Ports map[string]string
}

// ExecSpec is a command run inside a running workload, as the workload's
// own user, in its namespaces and limits.
type ExecSpec struct {
	// Command is the program and its arguments (no shell is implied).
	Command []string
	// Env is added to the workload's own environment; WorkDir, when set,
	// is where the command starts (else the workload's working directory).
	Env     map[string]string
	WorkDir string
	// Stdin, when not nil, is the command's standard input until EOF.
	Stdin io.Reader
	// Stdout and Stderr receive its output; nil discards it. With TTY the
	// terminal's output all goes to Stdout.
	Stdout, Stderr io.Writer
	// TTY runs the command on a terminal of Size; Resize, when not nil,
	// delivers later sizes until it is closed or the command ends.
	TTY    bool
	Size   TermSize
	Resize <-chan TermSize
}

// TermSize is a terminal's size in characters.
type TermSize struct {
	Rows, Cols uint16
}

// Usage is what a workload uses now.
type Usage struct {
	// CPU is the processor time it has used since it started; two samples
	// give its CPU rate.
	CPU time.Duration
	// MemoryBytes is its resident memory now.
	MemoryBytes int64
	// At is when the sample was taken.
	At time.Time
}

// MaxLineBytes is the longest log line a driver yields: a longer line is
// split into pieces of MaxLineBytes bytes (the last one shorter), each
// yielded as a line of its own, in order, so nothing is dropped and no
// single line can grow without bound in memory or in a log store.
const MaxLineBytes = 64 << 10

// LogLine is one line a workload wrote.
type LogLine struct {
	Time   time.Time
	Stream string // "stdout" or "stderr"
	Text   string
}

// Errors drivers return.
var (
	ErrNotFound    = errors.New("runtime: workload not found")
	ErrUnsupported = errors.New("runtime: not supported by this driver")
	ErrNotRunning  = errors.New("runtime: workload is not running")
	// ErrInvalidSpec: Start refuses a Spec no driver could run as asked
	// (a mount that is not allowed, say), whatever the driver.
	ErrInvalidSpec = errors.New("runtime: invalid spec")
)

// Driver runs workloads. Implementations are safe for concurrent use.
type Driver interface {
	// Name is the driver's name ("process", "docker").
	Name() string
	// Start starts the workload and returns its id once it runs.
	Start(ctx context.Context, spec Spec) (string, error)
	// Status describes a workload, running or finished.
	Status(ctx context.Context, id string) (Status, error)
	// Wait blocks until the workload has exited (or ctx ends) and returns
	// its final status.
	Wait(ctx context.Context, id string) (Status, error)
	// Logs yields the workload's lines from the start; with follow it
	// keeps yielding until the workload exits or ctx ends.
	Logs(ctx context.Context, id string, follow bool) iter.Seq2[LogLine, error]
	// Stop asks the workload to stop, and kills it after grace.
	Stop(ctx context.Context, id string, grace time.Duration) error
	// Remove forgets a finished workload and frees what it held.
	Remove(ctx context.Context, id string) error
	// List returns the workloads whose labels include all of labels, so a
	// restarted service can reconcile what it had started.
	List(ctx context.Context, labels map[string]string) ([]Status, error)
	// Exec runs a command inside a running workload and returns its exit
	// code once it ends (ErrNotRunning when the workload does not run).
	// Cancelling ctx kills the command.
	Exec(ctx context.Context, id string, spec ExecSpec) (int, error)
	// Usage samples what a running workload uses (ErrNotRunning when it
	// does not run).
	Usage(ctx context.Context, id string) (Usage, error)
}

// Volume is a named volume: storage the driver's engine keeps apart from
// any workload, which workloads mount by name (Mount.Volume), so that
// data outlives the workloads that use it.
type Volume struct {
	Name string
	// Labels are the volume's own (not the driver's); ListVolumes finds
	// volumes by them.
	Labels    map[string]string
	CreatedAt time.Time
}

// Volumes is implemented by drivers that keep named volumes (docker); the
// process driver has none. A driver only ever sees the volumes it created
// (any other name is ErrNotFound), like its workloads.
type Volumes interface {
	// CreateVolume creates the volume name with labels, or returns it
	// as it is when it exists already (so a create that a crash
	// interrupted can simply be repeated).
	CreateVolume(ctx context.Context, name string, labels map[string]string) (Volume, error)
	// InspectVolume describes a volume (ErrNotFound when there is none).
	InspectVolume(ctx context.Context, name string) (Volume, error)
	// RemoveVolume removes a volume and its data (ErrNotFound when there
	// is none). A volume a workload still mounts, running or not, is
	// refused: remove the workload first.
	RemoveVolume(ctx context.Context, name string) error
	// ListVolumes returns the volumes whose labels include all of
	// labels, by name.
	ListVolumes(ctx context.Context, labels map[string]string) ([]Volume, error)
}

// PortProtocols is implemented by drivers that cannot publish every
// protocol: Protocols lists those they can ("tcp", "udp"; none when the
// workloads have no network to reach), so that an API refuses a port at
// once instead of failing its workload's start.
type PortProtocols interface {
	Protocols() []string
}
