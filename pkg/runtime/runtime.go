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
}
