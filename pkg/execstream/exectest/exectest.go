// Package exectest declares, for tests, a gRPC service with one exec RPC
// and a real access rule, so that tests of exec sessions run the real
// interceptor chain and authorizer without a component that runs
// workloads. The service's descriptor is built at run time and registered
// in the global registry (where permissions.ForMethod finds access rules);
// no production binary links this package.
package exectest

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	apiv1 "github.com/slipwayhq/slipway/gen/slipway/api/v1"
	execv1 "github.com/slipwayhq/slipway/gen/slipway/exec/v1"
	"github.com/slipwayhq/slipway/pkg/execstream"
	"github.com/slipwayhq/slipway/pkg/runtime"
)

const (
	// ServiceName is the test service's full name.
	ServiceName = "slipway.exectest.v1.ExecTestService"
	// Method is its exec RPC's full method name.
	Method = "/" + ServiceName + "/Exec"
	// Permission is what the RPC's access rule requires: what a
	// component's exec would (a viewer lacks it, a developer holds it).
	Permission = "Project > Services > Deployment > Update Deployment"
)

func init() {
	opts := &descriptorpb.MethodOptions{}
	proto.SetExtension(opts, apiv1.E_Access, &apiv1.Access{Authenticated: true, Permission: Permission})
	fd := &descriptorpb.FileDescriptorProto{
		Name:       proto.String("slipway/exectest/v1/exectest.proto"),
		Package:    proto.String("slipway.exectest.v1"),
		Syntax:     proto.String("proto3"),
		Dependency: []string{"slipway/api/v1/annotations.proto", "slipway/exec/v1/exec.proto"},
		Service: []*descriptorpb.ServiceDescriptorProto{{
			Name: proto.String("ExecTestService"),
			Method: []*descriptorpb.MethodDescriptorProto{{
				Name:            proto.String("Exec"),
				InputType:       proto.String(".slipway.exec.v1.ExecInput"),
				OutputType:      proto.String(".slipway.exec.v1.ExecOutput"),
				ClientStreaming: proto.Bool(true),
				ServerStreaming: proto.Bool(true),
				Options:         opts,
			}},
		}},
	}
	// The generated packages register their files when linked.
	_ = execv1.File_slipway_exec_v1_exec_proto
	_ = apiv1.File_slipway_api_v1_annotations_proto
	f, err := protodesc.NewFile(fd, protoregistry.GlobalFiles)
	if err == nil {
		err = protoregistry.GlobalFiles.RegisterFile(f)
	}
	if err != nil {
		panic("exectest: " + err.Error())
	}
}

// Desc is the test service, its Exec served by handler. Register it with
// any impl (the service has no handler interface).
func Desc(handler func(execstream.Stream) error) *grpc.ServiceDesc {
	return &grpc.ServiceDesc{
		ServiceName: ServiceName,
		HandlerType: (*any)(nil),
		Streams: []grpc.StreamDesc{{
			StreamName: "Exec", ClientStreams: true, ServerStreams: true,
			Handler: func(_ any, stream grpc.ServerStream) error {
				return handler(&grpc.GenericServerStream[execv1.ExecInput, execv1.ExecOutput]{ServerStream: stream})
			},
		}},
	}
}

// Local runs spec's command as a local process in dir, the way a driver
// runs it in a workload, for tests of what surrounds the driver: its
// standard streams are spec's and cancelling ctx kills it. It has no
// terminal: a spec with TTY is refused.
func Local(dir string) func(ctx context.Context, spec runtime.ExecSpec) (int, error) {
	return func(ctx context.Context, spec runtime.ExecSpec) (int, error) {
		if spec.TTY {
			return -1, runtime.ErrUnsupported
		}
		cmd := exec.CommandContext(ctx, spec.Command[0], spec.Command[1:]...)
		cmd.Dir = dir
		cmd.Stdout, cmd.Stderr = spec.Stdout, spec.Stderr
		// Standard input is copied by a goroutine of ours, which Wait does
		// not wait for: the input may never end.
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return -1, err
		}
		go func() {
			if spec.Stdin != nil {
				_, _ = io.Copy(stdin, spec.Stdin)
			}
			_ = stdin.Close()
		}()
		cmd.Env = os.Environ()
		for k, v := range spec.Env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		// A child the command left behind may hold its output open: do not
		// wait for it long once the command has exited.
		cmd.WaitDelay = 100 * time.Millisecond
		err = cmd.Run()
		var exit *exec.ExitError
		switch {
		case errors.As(err, &exit):
			return exit.ExitCode(), nil
		case err != nil && ctx.Err() == nil && errors.Is(err, exec.ErrWaitDelay):
			return cmd.ProcessState.ExitCode(), nil
		case err != nil:
			return -1, err
		}
		return 0, nil
	}
}
