// Package rollout runs services' instances on the workload runtime and
// keeps them as their owner wants them: the release to run, how many
// instances, paused or not. It starts instances, probes their health
// (pkg/probe), routes traffic to the ready ones (pkg/ingress), rolls a new
// release out health-gated per the service's strategy, rolls back a
// release that does not become ready, restarts dead or unhealthy
// instances with back-off, and adopts the instances an earlier Slipway
// left running instead of restarting them.
//
// The controller keeps no database: the deployments service owns the
// desired state (Apply, Delete) and records what the controller reports
// (Hooks). After a restart the service applies every service again, and
// the controller finds the running instances by their labels.
package rollout

import (
	"context"
	"iter"
	"time"

	"github.com/slipwayhq/slipway/pkg/probe"
	"github.com/slipwayhq/slipway/pkg/runtime"
)

// Service is the desired state of one service.
type Service struct {
	// ID identifies the service among all the controller runs (the
	// deployments service's internal id); TeamID, ProjectID and Name are
	// for labels and the ingress host name (<port>--<name>--<project>).
	ID                             string
	TeamID, ProjectID, ProjectName string
	Name                           string
	// Release is what the service runs now; a release with a new ID is
	// rolled out.
	Release Release
	// Instances is how many instances should run and be ready; Paused
	// stops them all (Instances is kept for Resume).
	Instances int
	Paused    bool
	// Strategy is how a new release replaces the running one.
	Strategy Strategy
	// Grace is how long a stopped instance gets between SIGTERM and
	// SIGKILL, once no request is in flight to it.
	Grace time.Duration
	// Restart, when it changes, replaces every instance (a rolling
	// restart of the same release).
	Restart int64
}

// Release is one deployable version of a service.
type Release struct {
	// ID is unique per service; it is in every instance's labels.
	ID string
	// Workload is every instance's template: the controller sets Name and
	// adds its labels, and sets Ports from Ports.
	Workload runtime.Spec
	// Ports are the ports the instances listen on; public HTTP and HTTP/2
	// ports are routed by the ingress.
	Ports []Port
	// HealthChecks gate readiness and restart unhealthy instances; with
	// none an instance is ready once it runs (and, with ports, accepts
	// TCP connections on the first one).
	HealthChecks []probe.HealthCheck
	// ReadyTimeout is how long a new instance has to become ready before
	// its rollout fails and the previous release is restored.
	ReadyTimeout time.Duration
}

// Port is one port of a release.
type Port struct {
	Name     string
	Port     int
	Protocol string // HTTP, HTTP/2, TCP or UDP
	Public   bool
}

// Strategy is how a new release replaces the running one.
type Strategy struct {
	// Recreate stops every old instance before starting new ones (a
	// service that cannot run two versions at once); otherwise the
	// rollout is rolling, with MaxSurge extra instances at a time and at
	// most MaxUnavailable instances fewer than wanted ready.
	Recreate                 bool
	MaxSurge, MaxUnavailable int
}

// The statuses of an instance, in Northflank's strings.
const (
	TaskStaging  = "TASK_STAGING"
	TaskStarting = "TASK_STARTING"
	TaskRunning  = "TASK_RUNNING"
	TaskKilling  = "TASK_KILLING"
	TaskKilled   = "TASK_KILLED"
	TaskFailed   = "TASK_FAILED"
	TaskFinished = "TASK_FINISHED"
)

// Instance is one instance of a service as the controller sees it.
type Instance struct {
	// Name is the instance's (container's) name users see and pick for
	// exec, logs and metrics, e.g. "web-6f1c2a-0b3d9".
	Name       string
	WorkloadID string
	ReleaseID  string
	Status     string // a Task* constant
	Ready      bool
	Restarts   int
	CreatedAt  time.Time
	// Ports maps port names to the loopback address the server reaches
	// them at.
	Ports map[string]string
}

// The statuses of a rollout, in Northflank's deployment strings.
const (
	RolloutInProgress = "IN_PROGRESS"
	RolloutCompleted  = "COMPLETED"
	RolloutFailed     = "FAILED"
)

// Outcome is a change of a rollout's state.
type Outcome struct {
	ServiceID, ReleaseID string
	// Status is a Rollout* constant.
	Status string
	// Reason says why a rollout failed ("instance web-… not ready within
	// 2m0s: readiness check HTTP /healthz on port 8080: status 500").
	Reason string
	// RestoredID is, for a failed rollout, the release the service runs
	// again (empty when there was none ready).
	RestoredID string
}

// Hooks is how the controller reports to the deployments service.
// Calls for one service never overlap; they must not block for long.
type Hooks interface {
	// Rollout reports a rollout's progress and outcome.
	Rollout(ctx context.Context, o Outcome)
	// Logs hands over an instance's log lines, from the instance's first
	// line on (so a pump that stored some before a restart skips them),
	// until the instance ends or ctx does. It runs in its own goroutine
	// per instance.
	//
	// Precisely, it is called once per workload (inst.WorkloadID) by each
	// controller: a restarted instance (a death, a failed liveness check)
	// keeps its Name, counts one more Restart and runs a new workload
	// whose lines start afresh, so what a pump has consumed must be kept
	// by WorkloadID, not by Name; and the old workload's call may still
	// be finishing its last lines when the new one's starts.
	Logs(ctx context.Context, serviceID string, inst Instance, lines iter.Seq2[runtime.LogLine, error])
}
