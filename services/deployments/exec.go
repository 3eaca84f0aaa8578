package deployments

import (
	"context"
	"errors"

	deploymentsv1 "github.com/slipwayhq/slipway/gen/slipway/deployments/v1"
	execv1 "github.com/slipwayhq/slipway/gen/slipway/exec/v1"
	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/execstream"
	"github.com/slipwayhq/slipway/pkg/runtime"
)

// ExecService runs a command in a running instance of a service: the
// gateway's command-exec WebSocket (`northflank exec`, the JS client's
// exec.execServiceCommand) bridged by pkg/execstream.
func (s *Server) ExecService(stream deploymentsv1.DeploymentsService_ExecServiceServer) error {
	return execstream.Serve(stream, s.execTarget)
}

// execTarget finds the instance the session's first message names (any
// ready one when it names none) of a service the caller can see.
func (s *Server) execTarget(ctx context.Context, first *execv1.ExecInput) (execstream.Target, error) {
	start := first.GetStart()
	sv, err := s.service(ctx, first, start.GetResourceId())
	if err != nil {
		return execstream.Target{}, err
	}
	if sv.Paused {
		return execstream.Target{}, apierr.Conflict(apierr.ReasonNotRunning,
			"service %q is paused: resume it to run commands in its instances", sv.ID)
	}
	key := controllerID(sv.TeamID, sv.ProjectID, sv.ID)
	in, err := s.ctl.Pick(key, start.GetInstance())
	switch {
	case errors.Is(err, runtime.ErrNotFound):
		return execstream.Target{}, apierr.NotFound("instance", start.GetInstance())
	case errors.Is(err, runtime.ErrNotRunning):
		if start.GetInstance() == "" {
			return execstream.Target{}, apierr.Conflict(apierr.ReasonNotRunning,
				"service %q has no ready instance to run the command in", sv.ID)
		}
		return execstream.Target{}, apierr.Conflict(apierr.ReasonNotRunning,
			"instance %q of service %q is not running", start.GetInstance(), sv.ID)
	case err != nil:
		return execstream.Target{}, err
	}
	// An instance has one container, named after the service, as the
	// clients expect a container name next to the instance's.
	if c := start.GetContainer(); c != "" && c != sv.ID && c != in.Name {
		return execstream.Target{}, apierr.NotFound("container", c)
	}
	return execstream.Target{
		Instance: in.Name, Container: sv.ID,
		Run: func(ctx context.Context, spec runtime.ExecSpec) (int, error) {
			return s.ctl.Exec(ctx, key, in.Name, spec)
		},
	}, nil
}
