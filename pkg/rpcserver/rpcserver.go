// Package rpcserver builds the gRPC server every Slipway service runs on,
// with one interceptor chain: panic recovery, request id, logging and
// metrics, error mapping, a check of every string (CheckRequest),
// authorization and request validation. Services
// only register their handlers.
package rpcserver

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"buf.build/go/protovalidate"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/requestid"
)

// Authorizer decides whether the caller in ctx may call fullMethod with
// req (which names the team or project the call acts on). It may return a
// context enriched with the caller's identity. Every service runs it on
// every RPC, internal callers included, before the request is validated.
type Authorizer interface {
	Authorize(ctx context.Context, fullMethod string, req any) (context.Context, error)
}

// AllowAll is the Authorizer used until authentication exists: it lets
// every call through.
type AllowAll struct{}

// Authorize implements Authorizer.
func (AllowAll) Authorize(ctx context.Context, _ string, _ any) (context.Context, error) {
	return ctx, nil
}

// Options configure New.
type Options struct {
	// Logger receives one line per RPC and the causes of internal errors.
	Logger *slog.Logger
	// Registerer receives the server's metrics; nil disables them.
	Registerer prometheus.Registerer
	// Authorizer guards every RPC; nil means AllowAll.
	Authorizer Authorizer
}

// Chain is the interceptor chain every RPC runs through, whether it
// arrives over the network (Server) or from a component in the same
// process (Local): the same authentication, authorization,
// validation, metrics and logs either way.
type Chain struct {
	log       *slog.Logger
	metrics   *metrics
	authz     Authorizer
	validator protovalidate.Validator
}

// NewChain builds the chain.
func NewChain(opts Options) (*Chain, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Authorizer == nil {
		opts.Authorizer = AllowAll{}
	}
	validator, err := protovalidate.New()
	if err != nil {
		return nil, fmt.Errorf("rpcserver: validator: %w", err)
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	return &Chain{log: opts.Logger, metrics: m, authz: opts.Authorizer, validator: validator}, nil
}

// Server returns a gRPC server running the chain.
func (c *Chain) Server(extra ...grpc.ServerOption) *grpc.Server {
	return grpc.NewServer(append([]grpc.ServerOption{
		grpc.ChainUnaryInterceptor(c.unary),
		grpc.ChainStreamInterceptor(c.stream),
		grpc.MaxRecvMsgSize(4 << 20),
	}, extra...)...)
}

// New returns a gRPC server with Slipway's interceptor chain.
func New(opts Options, extra ...grpc.ServerOption) (*grpc.Server, error) {
	c, err := NewChain(opts)
	if err != nil {
		return nil, err
	}
	return c.Server(extra...), nil
}

// unary runs the whole chain in one function so the order is plain to see.
func (c *Chain) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	start := time.Now()
	id := incomingRequestID(ctx)
	ctx = requestid.NewContext(ctx, id)
	_ = grpc.SetHeader(ctx, metadata.Pairs(requestid.MetadataKey, id))

	defer func() {
		p := recover()
		if p != nil {
			resp = nil
		}
		err = c.finish(ctx, info.FullMethod, id, start, p, err)
	}()

	// Strings first: the authorizer may look up what the request names.
	if err := CheckRequest(info.FullMethod, req); err != nil {
		return nil, err
	}
	if ctx, err = c.authz.Authorize(ctx, info.FullMethod, req); err != nil {
		return nil, err
	}
	if msg, ok := req.(proto.Message); ok {
		if err := c.validator.Validate(msg); err != nil {
			return nil, validationError(err, bodyField(info.FullMethod))
		}
	}
	return handler(ctx, req)
}

// stream is unary's counterpart for streaming RPCs: the request arrives
// with the first message, so authorization and validation run when the
// handler receives it, and nothing is sent before they have passed.
func (c *Chain) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	start := time.Now()
	id := incomingRequestID(ss.Context())
	w := &guardedStream{ServerStream: ss, ctx: requestid.NewContext(ss.Context(), id), chain: c, method: info.FullMethod}
	_ = ss.SetHeader(metadata.Pairs(requestid.MetadataKey, id))
	defer func() { err = c.finish(w.ctx, info.FullMethod, id, start, recover(), err) }()
	return handler(srv, w)
}

// finish ends every RPC, unary or streaming: a panic (recovered by the
// caller and passed as panicked) becomes an internal error, the error its
// wire status, and the call is counted and logged.
func (c *Chain) finish(ctx context.Context, method, id string, start time.Time, panicked any, err error) error {
	if panicked != nil {
		c.log.ErrorContext(ctx, "panic in RPC handler", "method", method, "request_id", id, "panic", panicked, "stack", string(debug.Stack()))
		err = apierr.Internal
	}
	err = c.toStatus(ctx, method, id, err)
	code := status.Code(err)
	c.metrics.observe(method, code, time.Since(start))
	level := slog.LevelInfo
	if code == codes.Internal || code == codes.Unknown {
		level = slog.LevelError
	}
	if !c.log.Enabled(ctx, level) {
		return err // spares the arguments' allocations on every call
	}
	c.log.Log(ctx, level, "rpc", "method", method, "code", code.String(), "duration_ms", float64(time.Since(start).Microseconds())/1000, "request_id", id)
	return err
}

// guardedStream authorizes a stream's first message and refuses to send
// anything before; it checks the strings of every message and validates
// it, so a handler of a client stream (an exec session's input) never
// sees a message the chain would have refused as a request. The first
// message decides who the caller is and what it acts on; later ones are
// not authorized again, so a handler must ignore (or refuse) what they
// say about it.
type guardedStream struct {
	grpc.ServerStream
	ctx        context.Context
	chain      *Chain
	method     string
	authorized bool
}

func (w *guardedStream) Context() context.Context { return w.ctx }

func (w *guardedStream) RecvMsg(m any) error {
	if err := w.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if err := CheckRequest(w.method, m); err != nil {
		return err
	}
	if w.authorized {
		// Later messages of a client stream: validated, not authorized
		// again, and w left alone (the handler may be sending meanwhile).
		return w.validate(m)
	}
	ctx, err := w.chain.authz.Authorize(w.ctx, w.method, m)
	if err != nil {
		return err
	}
	if err := w.validate(m); err != nil {
		return err
	}
	w.ctx, w.authorized = ctx, true
	return nil
}

func (w *guardedStream) validate(m any) error {
	if msg, ok := m.(proto.Message); ok {
		if err := w.chain.validator.Validate(msg); err != nil {
			return validationError(err, "")
		}
	}
	return nil
}

func (w *guardedStream) SendMsg(m any) error {
	if !w.authorized {
		return &apierr.Error{Code: codes.PermissionDenied, Reason: apierr.ReasonNotAuthorized, Message: "the stream's request was not authorized"}
	}
	return w.ServerStream.SendMsg(m)
}

// bodyFields caches bodyField per method.
var bodyFields sync.Map // full method -> string

// bodyField is the request field an RPC's HTTP body maps to (google.api.http
// body: "spec"), or "" when the body is the whole request. Clients send
// that field's contents as the body, so violation paths drop its name.
func bodyField(fullMethod string) string {
	if v, ok := bodyFields.Load(fullMethod); ok {
		return v.(string)
	}
	body := ""
	name := strings.Replace(strings.TrimPrefix(fullMethod, "/"), "/", ".", 1)
	if d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(name)); err == nil {
		if md, ok := d.(protoreflect.MethodDescriptor); ok {
			if rule, ok := proto.GetExtension(md.Options(), annotations.E_Http).(*annotations.HttpRule); ok && rule.GetBody() != "*" {
				body = rule.GetBody()
			}
		}
	}
	bodyFields.Store(fullMethod, body)
	return body
}

// toStatus is the one place where errors become wire statuses: Slipway
// errors keep their code and details, statuses pass through, and anything
// else is logged and replaced by a bare internal error.
func (c *Chain) toStatus(ctx context.Context, method, id string, err error) error {
	if err == nil {
		return nil
	}
	if e := apierr.From(err); e != nil {
		return e.GRPCStatus().Err()
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch ctx.Err() {
	case context.Canceled:
		return status.Error(codes.Canceled, "request canceled")
	case context.DeadlineExceeded:
		return status.Error(codes.DeadlineExceeded, "request timed out")
	}
	c.log.ErrorContext(ctx, "internal error", "method", method, "request_id", id, "error", err)
	return apierr.Internal.GRPCStatus().Err()
}

func incomingRequestID(ctx context.Context) string {
	if v := metadata.ValueFromIncomingContext(ctx, requestid.MetadataKey); len(v) > 0 && requestid.Valid(v[0]) {
		return v[0]
	}
	return requestid.New()
}

// validationError turns protovalidate's violations into field details
// keyed by the JSON field path the client sent.
func validationError(err error, body string) error {
	verr, ok := err.(*protovalidate.ValidationError)
	if !ok {
		return err
	}
	fields := map[string][]string{}
	for _, v := range verr.Violations {
		path := protovalidate.FieldPathString(v.Proto.GetField())
		if body != "" {
			path = strings.TrimPrefix(path, body+".")
		}
		path = jsonPath(path)
		fields[path] = append(fields[path], v.Proto.GetMessage())
	}
	return apierr.Invalid("request validation failed", fields)
}

// jsonPath rewrites a proto field path ("per_page", "a.b_c[0]") with the
// lowerCamelCase names JSON uses. Subscripts are copied verbatim: a map
// key is the user's own text (an environment variable "pwned_key"), which
// the details must name as sent.
func jsonPath(path string) string {
	var b strings.Builder
	upper := false
	subscript, quoted, escaped := false, false, false
	for _, r := range path {
		switch {
		case subscript:
			b.WriteRune(r)
			switch {
			case escaped:
				escaped = false
			case quoted && r == '\\':
				escaped = true
			case r == '"':
				quoted = !quoted
			case !quoted && r == ']':
				subscript = false
			}
		case r == '[':
			b.WriteRune(r)
			subscript, upper = true, false
		case r == '_':
			upper = true
		case upper && r >= 'a' && r <= 'z':
			b.WriteRune(r - 'a' + 'A')
			upper = false
		default:
			b.WriteRune(r)
			upper = false
		}
	}
	return b.String()
}
