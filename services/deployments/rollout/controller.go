package rollout

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/slipwayhq/slipway/pkg/ingress"
	"github.com/slipwayhq/slipway/pkg/probe"
	"github.com/slipwayhq/slipway/pkg/runtime"
)

// Labels on every workload the controller starts: List finds a service's
// instances by them after a restart of Slipway, and they carry what the
// controller needs to adopt an instance (its name, release and restart
// count) without any database of its own.
const (
	// LabelOwner marks the deployments' workloads (value OwnerValue),
	// like jobs' workloads carry the same key with "jobs".
	LabelOwner = "dev.slipway.service"
	OwnerValue = "deployments"
	LabelTeam  = "dev.slipway.team"
	// LabelProject is the project's id.
	LabelProject = "dev.slipway.project"
	// LabelDeployment is the service's id (Service.ID).
	LabelDeployment = "dev.slipway.deployment"
	// LabelRelease is the release's id (Release.ID).
	LabelRelease = "dev.slipway.release"
	// LabelGeneration is the Service.Restart counter the instance was
	// started under: a rolling restart replaces the instances of older
	// generations.
	LabelGeneration = "dev.slipway.generation"
	// LabelInstance is the instance's name (Instance.Name).
	LabelInstance = "dev.slipway.instance"
	// LabelRestarts is how many times the instance had been restarted
	// when this workload started (Instance.Restarts).
	LabelRestarts = "dev.slipway.restarts"
)

// Defaults of Options' zero fields.
const (
	// DefaultReadyTimeout is Kubernetes' progressDeadlineSeconds.
	DefaultReadyTimeout = 10 * time.Minute
	// DefaultGrace is Kubernetes' terminationGracePeriodSeconds.
	DefaultGrace            = 30 * time.Second
	DefaultMaxStartFailures = 3
	DefaultAdoptGrace       = 2 * time.Minute
	DefaultReadyPoll        = 100 * time.Millisecond
	DefaultMinReady         = time.Second
)

// Options configure a Controller.
type Options struct {
	// Driver runs the instances.
	Driver runtime.Driver
	// Ingress routes public HTTP ports to ready instances; nil routes
	// nothing.
	Ingress *ingress.Ingress
	// Hooks receives outcomes and log lines; nil discards them.
	Hooks Hooks
	// Logger receives what operators should know; default slog.Default().
	Logger *slog.Logger

	// Backoff is how long a dead instance waits before it is restarted;
	// zero fields take probe.DefaultBackoffPolicy's.
	Backoff probe.BackoffPolicy
	// ReadyTimeout is a release's ReadyTimeout when it has none; default
	// DefaultReadyTimeout.
	ReadyTimeout time.Duration
	// Grace is a service's Grace when it has none; default DefaultGrace.
	Grace time.Duration
	// MaxStartFailures is how many times the instances of a release being
	// rolled out may die before any became ready before the rollout
	// fails, without waiting for ReadyTimeout; default
	// DefaultMaxStartFailures.
	MaxStartFailures int
	// AdoptGrace is how long after Run starts the controller waits for
	// the services of the workloads it finds to be applied before it
	// logs the ones nobody claimed; default DefaultAdoptGrace.
	AdoptGrace time.Duration
	// MinReady is how long an instance of a release being rolled out must
	// stay ready before it counts as available and replaces an old one,
	// like Kubernetes' minReadySeconds: without it a release whose
	// instances start, answer a first check and crash would replace a
	// working one. Default DefaultMinReady.
	MinReady time.Duration
	// ReadyPoll is how often, at most, an instance without health checks
	// is checked for accepting connections on its first port until it
	// does (the first checks come sooner); default DefaultReadyPoll.
	ReadyPoll time.Duration
}

// Controller runs services' instances. It is safe for concurrent use.
//
// Each service has one goroutine (its loop) that owns the service's
// instances and converges them to the last Apply; everything else
// (probes, waits for exits, drains, log pumps) runs in goroutines of its
// own that report to the loop. The ingress table is the one thing the
// loops share: each publishes its service's routes and the controller
// sets the table of all of them at once.
type Controller struct {
	opts  Options
	log   *slog.Logger
	hooks Hooks

	mu       sync.Mutex
	services map[string]*service
	ctx      context.Context // Run's; nil until Run
	wg       sync.WaitGroup  // the loops and every goroutine they start

	routeMu sync.Mutex
	routes  map[string][]ingress.Route // by service id
}

// New returns a controller; Run starts it.
func New(opts Options) (*Controller, error) {
	if opts.Driver == nil {
		return nil, errors.New("rollout: no runtime driver")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = DefaultReadyTimeout
	}
	if opts.Grace <= 0 {
		opts.Grace = DefaultGrace
	}
	if opts.MaxStartFailures <= 0 {
		opts.MaxStartFailures = DefaultMaxStartFailures
	}
	if opts.AdoptGrace <= 0 {
		opts.AdoptGrace = DefaultAdoptGrace
	}
	if opts.MinReady <= 0 {
		opts.MinReady = DefaultMinReady
	}
	if opts.ReadyPoll <= 0 {
		opts.ReadyPoll = DefaultReadyPoll
	}
	hooks := opts.Hooks
	if hooks == nil {
		hooks = noHooks{}
	}
	return &Controller{
		opts: opts, log: opts.Logger.With("component", "rollout"), hooks: hooks,
		services: map[string]*service{}, routes: map[string][]ingress.Route{},
	}, nil
}

// Run adopts the instances an earlier controller left running, then
// reconciles until ctx ends. Services applied before Run start when it
// does. When ctx ends Run stops every loop and returns; the instances
// keep running, for the next controller to adopt.
func (c *Controller) Run(ctx context.Context) error {
	c.mu.Lock()
	if c.ctx != nil {
		c.mu.Unlock()
		return errors.New("rollout: Run called twice")
	}
	c.ctx = ctx
	for _, s := range c.services {
		c.startLoop(s)
	}
	c.mu.Unlock()

	// Each service's loop adopts its own instances (by its id label) when
	// it starts, whether its Apply came before Run or comes later. What
	// no Apply or Delete claims within AdoptGrace is left alone and only
	// logged: the deployments service's store is the source of truth for
	// which services exist, and it re-applies all of them at start-up; a
	// workload it does not claim (yet) may belong to a service whose
	// store is slow to come up, or to another Slipway on the same driver,
	// so the controller never deletes what it cannot attribute. A Delete
	// of the service's id removes such workloads.
	timer := time.NewTimer(c.opts.AdoptGrace)
	defer timer.Stop()
	select {
	case <-ctx.Done():
	case <-timer.C:
		c.reportUnclaimed(ctx)
		<-ctx.Done()
	}
	c.wg.Wait()
	return nil
}

// reportUnclaimed logs the services whose workloads run though nobody
// applied them.
func (c *Controller) reportUnclaimed(ctx context.Context) {
	list, err := c.opts.Driver.List(ctx, map[string]string{LabelOwner: OwnerValue})
	if err != nil {
		if ctx.Err() == nil {
			c.log.Warn("listing workloads", "error", err)
		}
		return
	}
	unclaimed := map[string]int{}
	c.mu.Lock()
	for _, w := range list {
		id := w.Labels[LabelDeployment]
		if _, ok := c.services[id]; !ok {
			unclaimed[id]++
		}
	}
	c.mu.Unlock()
	for _, id := range slices.Sorted(maps.Keys(unclaimed)) {
		c.log.Warn("workloads of a service that was not applied are left alone until it is applied or deleted",
			"service", id, "workloads", unclaimed[id])
	}
}

// startLoop starts s's loop under Run's context; c.mu is held.
func (c *Controller) startLoop(s *service) {
	if s.running {
		return
	}
	s.running = true
	s.ctx = c.ctx
	c.wg.Add(1)
	go s.loop()
}

// service returns the service of id, made (and its loop started, once
// Run has) if new; c.mu is held.
func (c *Controller) service(id string) *service {
	s := c.services[id]
	if s == nil {
		s = newService(c, id)
		c.services[id] = s
		if c.ctx != nil {
			c.startLoop(s)
		}
	}
	return s
}

// Apply sets a service's desired state; the controller converges to it in
// the background and reports through Hooks.
func (c *Controller) Apply(s Service) {
	c.mu.Lock()
	sv := c.service(s.ID)
	sv.desired = cloneService(s)
	sv.deleted = false
	c.mu.Unlock()
	sv.poke()
}

// Delete stops and removes every instance of a service and forgets it.
// It returns at once; the instances drain in the background. A Delete of
// a service that was never applied removes the workloads labelled with
// its id (those an earlier Slipway left running).
func (c *Controller) Delete(serviceID string) {
	c.mu.Lock()
	sv := c.service(serviceID)
	sv.deleted = true
	c.mu.Unlock()
	sv.poke()
}

// forget drops s once it is deleted and has no instance left, unless it
// was applied again meanwhile.
func (c *Controller) forget(s *service) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !s.deleted || c.services[s.id] != s {
		return false
	}
	delete(c.services, s.id)
	s.running = false
	return true
}

// Instances returns a service's instances, oldest first.
func (c *Controller) Instances(serviceID string) []Instance {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.services[serviceID]
	if s == nil {
		return nil
	}
	out := make([]Instance, len(s.snapshot))
	for i, in := range s.snapshot {
		in.Ports = maps.Clone(in.Ports)
		out[i] = in
	}
	return out
}

// pick finds the instance of a service an exec or a log request names:
// runtime.ErrNotFound when the service or the instance does not exist,
// runtime.ErrNotRunning when it has none running (paused, all stopped or
// between restarts).
// Pick returns the running instance of a service a command should run
// in: the one named, or with an empty name the first ready one
// (runtime.ErrNotFound for an unknown service or instance,
// runtime.ErrNotRunning when it does not run).
func (c *Controller) Pick(serviceID, name string) (Instance, error) {
	c.mu.Lock()
	s := c.services[serviceID]
	c.mu.Unlock()
	if s == nil {
		return Instance{}, fmt.Errorf("%w: no such service", runtime.ErrNotFound)
	}
	insts := c.Instances(serviceID)
	if name == "" {
		for _, in := range insts {
			if in.Ready && in.WorkloadID != "" && in.Status == TaskRunning {
				return in, nil
			}
		}
		return Instance{}, fmt.Errorf("%w: the service has no ready instance", runtime.ErrNotRunning)
	}
	for _, in := range insts {
		if in.Name == name {
			if in.WorkloadID == "" || (in.Status != TaskRunning && in.Status != TaskStarting) {
				return Instance{}, fmt.Errorf("%w: instance %s is not running", runtime.ErrNotRunning, name)
			}
			return in, nil
		}
	}
	return Instance{}, fmt.Errorf("%w: the service has no instance %q", runtime.ErrNotFound, name)
}

// Exec runs a command in a running instance of a service (ErrNotFound
// when the service has no instance of that name; an empty name picks the
// first ready instance; ErrNotRunning when the instance, or the service,
// runs none).
func (c *Controller) Exec(ctx context.Context, serviceID, instance string, spec runtime.ExecSpec) (int, error) {
	in, err := c.Pick(serviceID, instance)
	if err != nil {
		return -1, err
	}
	return c.opts.Driver.Exec(ctx, in.WorkloadID, spec)
}

// Usage samples what every running instance of a service uses, by
// instance name. An instance that stops meanwhile is left out; a driver
// that cannot sample fails it (runtime.ErrUnsupported).
func (c *Controller) Usage(ctx context.Context, serviceID string) (map[string]runtime.Usage, error) {
	c.mu.Lock()
	_, known := c.services[serviceID]
	c.mu.Unlock()
	if !known {
		return nil, fmt.Errorf("%w: no such service", runtime.ErrNotFound)
	}
	out := map[string]runtime.Usage{}
	for _, in := range c.Instances(serviceID) {
		if in.WorkloadID == "" || (in.Status != TaskRunning && in.Status != TaskStarting) {
			continue
		}
		u, err := c.opts.Driver.Usage(ctx, in.WorkloadID)
		switch {
		case errors.Is(err, runtime.ErrNotRunning), errors.Is(err, runtime.ErrNotFound):
			continue
		case err != nil:
			return nil, err
		}
		out[in.Name] = u
	}
	return out, nil
}

// setRoutes publishes a service's routes (nil: none) and sets the
// ingress's table of every service's routes, all at once: the ingress
// has one table, replaced whole.
func (c *Controller) setRoutes(serviceID string, routes []ingress.Route) {
	if c.opts.Ingress == nil {
		return
	}
	c.routeMu.Lock()
	defer c.routeMu.Unlock()
	if len(routes) == 0 {
		delete(c.routes, serviceID)
	} else {
		c.routes[serviceID] = routes
	}
	var all []ingress.Route
	seen := map[string]string{}
	for _, id := range slices.Sorted(maps.Keys(c.routes)) {
		for _, r := range c.routes[id] {
			// The ingress refuses a whole table with one bad or duplicate
			// route; one service's must not take every other offline.
			if other, dup := seen[r.Label()]; dup {
				c.log.Warn("two services publish the same host; the second is not routed", "host", r.Label(), "service", id, "other", other)
				continue
			}
			seen[r.Label()] = id
			all = append(all, r)
		}
	}
	if err := c.opts.Ingress.Set(all); err != nil {
		c.log.Error("setting the ingress routes", "error", err)
	}
}

// routable reports whether the ingress accepts a route of these name
// parts (see ingress.Set).
func routable(parts ...string) bool {
	for _, p := range parts {
		if p == "" || strings.ContainsAny(p, ". :/") || strings.Contains(p, "--") {
			return false
		}
	}
	return true
}

// isHTTP reports whether a port's protocol is routed by the ingress.
func isHTTP(protocol string) bool {
	switch strings.ToUpper(protocol) {
	case "HTTP", "HTTP2", "HTTP/2":
		return true
	}
	return false
}

type noHooks struct{}

func (noHooks) Rollout(context.Context, Outcome) {}

func (noHooks) Logs(context.Context, string, Instance, iter.Seq2[runtime.LogLine, error]) {}

func cloneService(s Service) Service {
	s.Release.Ports = slices.Clone(s.Release.Ports)
	s.Release.HealthChecks = slices.Clone(s.Release.HealthChecks)
	w := &s.Release.Workload
	w.Env, w.Labels = maps.Clone(w.Env), maps.Clone(w.Labels)
	w.Entrypoint, w.Command, w.Ports = slices.Clone(w.Entrypoint), slices.Clone(w.Command), slices.Clone(w.Ports)
	return s
}
