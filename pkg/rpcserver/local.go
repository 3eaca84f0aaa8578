package rpcserver

import (
	"context"
	"sync"

	"github.com/fullstorydev/grpchan/inprocgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Local connects the components of one process: services are registered
// on it like on a server, and it is called like a client connection. Every
// call runs through the chain, with what crossing the network would give
// the handler and nothing more: the request and the response are copies
// (caller and handler never share a message), the caller's outgoing
// metadata is the handler's incoming metadata, deadlines and cancellation
// carry over, the caller's context values do not.
//
// Unary calls, almost all of the API, run in the caller's goroutine.
// Streaming calls go through grpchan's in-process channel (a maintained
// implementation of the same contract), which runs each call on a
// goroutine of its own: for unary calls that goroutine cost a tenth of the
// read path's CPU in BenchmarkReadPath, mostly growing its fresh stack to
// the depth of the handler.
type Local struct {
	chain   *Chain
	streams *inprocgrpc.Channel
	unary   map[string]localMethod // by full method name
}

type localMethod struct {
	handler func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error)
	impl    any
}

var (
	_ grpc.ClientConnInterface = (*Local)(nil)
	_ grpc.ServiceRegistrar    = (*Local)(nil)
)

// NewLocal returns a Local without services. It may be handed out as a
// connection before Bind (the authorizer behind the chain resolves tokens
// through it), but not called.
func NewLocal() *Local {
	return &Local{streams: new(inprocgrpc.Channel), unary: map[string]localMethod{}}
}

// Bind makes every call on l run through c.
func (c *Chain) Bind(l *Local) {
	l.chain = c
	l.streams.WithServerUnaryInterceptor(c.unary).WithServerStreamInterceptor(c.stream)
}

// RegisterService implements grpc.ServiceRegistrar.
func (l *Local) RegisterService(desc *grpc.ServiceDesc, impl any) {
	l.streams.RegisterService(desc, impl)
	for _, m := range desc.Methods {
		l.unary["/"+desc.ServiceName+"/"+m.MethodName] = localMethod{handler: m.Handler, impl: impl}
	}
}

// Invoke implements grpc.ClientConnInterface. What the handler sets with
// grpc.SetHeader, SendHeader and SetTrailer reaches the caller's
// grpc.Header and grpc.Trailer options, as over the network.
func (l *Local) Invoke(ctx context.Context, method string, req, resp any, opts ...grpc.CallOption) error {
	m, ok := l.unary[method]
	if !ok {
		return status.Errorf(codes.Unimplemented, "method %s is not served in this process", method)
	}
	in, ok := req.(proto.Message)
	if !ok {
		return status.Errorf(codes.Internal, "request %T is not a proto message", req)
	}
	dec := func(v any) error {
		dst, ok := v.(proto.Message)
		if !ok {
			return status.Errorf(codes.Internal, "request %T is not a proto message", v)
		}
		proto.Merge(dst, in)
		return nil
	}
	call := &callStream{method: method}
	out, err := m.handler(m.impl, grpc.NewContextWithServerTransportStream(serverContext(ctx), call), dec, l.chain.unary)
	call.deliver(opts)
	if err != nil {
		return err
	}
	dst, ok := resp.(proto.Message)
	src, ok2 := out.(proto.Message)
	if !ok || !ok2 {
		return status.Errorf(codes.Internal, "response %T is not a proto message", out)
	}
	proto.Reset(dst)
	proto.Merge(dst, src)
	return nil
}

// NewStream implements grpc.ClientConnInterface.
func (l *Local) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return l.streams.NewStream(ctx, desc, method, opts...)
}

// callStream is a unary call's transport in memory: it keeps the header
// and trailer metadata the handler sets. Without one in the context,
// grpc.SetHeader fails, and formats the whole context into its error
// (2 % of the read path's CPU when the chain set the request id).
type callStream struct {
	method          string
	mu              sync.Mutex
	header, trailer metadata.MD
}

var _ grpc.ServerTransportStream = (*callStream)(nil)

// Method implements grpc.ServerTransportStream.
func (s *callStream) Method() string { return s.method }

// SetHeader implements grpc.ServerTransportStream.
func (s *callStream) SetHeader(md metadata.MD) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.header = metadata.Join(s.header, md)
	return nil
}

// SendHeader implements grpc.ServerTransportStream: in memory, headers
// are sent with the response.
func (s *callStream) SendHeader(md metadata.MD) error { return s.SetHeader(md) }

// SetTrailer implements grpc.ServerTransportStream.
func (s *callStream) SetTrailer(md metadata.MD) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.trailer = metadata.Join(s.trailer, md)
	return nil
}

// deliver hands the header and trailer to the caller's grpc.Header and
// grpc.Trailer options, which a network call fills on success and error
// alike.
func (s *callStream) deliver(opts []grpc.CallOption) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range opts {
		switch o := o.(type) {
		case grpc.HeaderCallOption:
			*o.HeaderAddr = s.header.Copy()
		case grpc.TrailerCallOption:
			*o.TrailerAddr = s.trailer.Copy()
		}
	}
}

// serverContext is the handler's side of a call: the caller's deadline and
// cancellation, its outgoing metadata as incoming metadata, none of its
// values.
func serverContext(ctx context.Context) context.Context {
	server := context.Context(noValues{ctx})
	if md, ok := metadata.FromOutgoingContext(ctx); ok {
		server = metadata.NewIncomingContext(server, md)
	}
	return server
}

// noValues keeps a context's deadline and cancellation, not its values.
type noValues struct{ context.Context }

func (noValues) Value(any) any { return nil }
