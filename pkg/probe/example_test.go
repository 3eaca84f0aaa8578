package probe_test

import (
	"context"
	"time"

	"github.com/slipwayhq/slipway/pkg/probe"
)

// How a deployments service is meant to use the package for one
// instance: validate on write, probe while the instance runs, gate
// traffic on Ready and restart with back-off on Dead. (Compiled, not
// run: it needs a runtime driver.)
func Example() {
	checks := []probe.HealthCheck{
		{Protocol: probe.HTTP, Type: probe.Readiness, Path: "/ready", Port: 8080, PeriodSeconds: 5, TimeoutSeconds: 1, FailureThreshold: 3},
		{Protocol: probe.CMD, Type: probe.Liveness, Cmd: "pg_isready -q", InitialDelaySeconds: 10, PeriodSeconds: 10, TimeoutSeconds: 2, FailureThreshold: 3},
	}
	// On POST …/health-checks: a VALIDATION_FAILED error naming the fields.
	if err := probe.Validate("healthChecks", checks, []int{8080}); err != nil {
		return
	}
	exec := func(ctx context.Context, argv []string) (int, error) {
		return 0, nil // the runtime driver's exec in the instance
	}
	p, err := probe.NewProber(checks, exec)
	if err != nil {
		return
	}
	defer p.Stop()
	backoff := probe.NewBackoff(probe.DefaultBackoffPolicy())
	startedAt := time.Now()
	for ev := range p.Events() {
		switch ev.Kind {
		case probe.Ready:
			// add the instance to the ingress's targets
		case probe.NotReady:
			// take it out
		case probe.Dead:
			wait := backoff.Next(startedAt, ev.At)
			_ = wait // restart the instance after wait, then:
			startedAt = time.Now()
			p.Reset()
		}
	}
}
