package rollout

import (
	"context"
	"errors"
	"log/slog"

	"github.com/slipwayhq/slipway/pkg/ingress"
	"github.com/slipwayhq/slipway/pkg/runtime"
)

// Options configure a Controller.
type Options struct {
	// Driver runs the instances.
	Driver runtime.Driver
	// Ingress routes public HTTP ports to ready instances.
	Ingress *ingress.Ingress
	// Hooks receives outcomes and log lines.
	Hooks Hooks
	// Logger receives what operators should know.
	Logger *slog.Logger
}

// Controller runs services' instances. It is safe for concurrent use.
type Controller struct{}

// New returns a controller; Run starts it.
//
// The controller is being written (issue 10); until it lands New fails.
func New(opts Options) (*Controller, error) {
	return nil, errors.New("rollout: the controller is not built yet")
}

// Run adopts the instances an earlier controller left running, then
// reconciles until ctx ends.
func (c *Controller) Run(ctx context.Context) error { return errors.New("rollout: not built yet") }

// Apply sets a service's desired state; the controller converges to it in
// the background and reports through Hooks.
func (c *Controller) Apply(s Service) {}

// Delete stops and removes every instance of a service and forgets it.
func (c *Controller) Delete(serviceID string) {}

// Instances returns a service's instances, oldest first.
func (c *Controller) Instances(serviceID string) []Instance { return nil }

// Exec runs a command in a running instance of a service (ErrNotFound
// when the service has no instance of that name; an empty name picks the
// first ready instance).
func (c *Controller) Exec(ctx context.Context, serviceID, instance string, spec runtime.ExecSpec) (int, error) {
	return -1, runtime.ErrUnsupported
}

// Usage samples what every running instance of a service uses, by
// instance name.
func (c *Controller) Usage(ctx context.Context, serviceID string) (map[string]runtime.Usage, error) {
	return nil, runtime.ErrUnsupported
}
