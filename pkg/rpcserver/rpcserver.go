// Package rpcserver builds the gRPC server every Slipway service runs on,
// with one interceptor chain: panic recovery, request id, logging and
// metrics, error mapping, authorization and request validation. Services
// only register their handlers.
package rpcserver

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	"buf.build/go/protovalidate"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

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

// New returns a gRPC server with Slipway's interceptor chain.
func New(opts Options, extra ...grpc.ServerOption) (*grpc.Server, error) {
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
	chain := &chain{log: opts.Logger, metrics: m, authz: opts.Authorizer, validator: validator}
	return grpc.NewServer(append([]grpc.ServerOption{
		grpc.ChainUnaryInterceptor(chain.unary),
		grpc.MaxRecvMsgSize(4 << 20),
	}, extra...)...), nil
}

type chain struct {
	log       *slog.Logger
	metrics   *metrics
	authz     Authorizer
	validator protovalidate.Validator
}

// unary runs the whole chain in one function so the order is plain to see.
func (c *chain) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	start := time.Now()
	id := incomingRequestID(ctx)
	ctx = requestid.NewContext(ctx, id)
	_ = grpc.SetHeader(ctx, metadata.Pairs(requestid.MetadataKey, id))

	defer func() {
		if p := recover(); p != nil {
			c.log.ErrorContext(ctx, "panic in RPC handler", "method", info.FullMethod, "request_id", id, "panic", p, "stack", string(debug.Stack()))
			resp, err = nil, apierr.Internal
		}
		err = c.toStatus(ctx, info.FullMethod, id, err)
		code := status.Code(err)
		c.metrics.observe(info.FullMethod, code, time.Since(start))
		level := slog.LevelInfo
		if code == codes.Internal || code == codes.Unknown {
			level = slog.LevelError
		}
		c.log.Log(ctx, level, "rpc", "method", info.FullMethod, "code", code.String(), "duration_ms", float64(time.Since(start).Microseconds())/1000, "request_id", id)
	}()

	if ctx, err = c.authz.Authorize(ctx, info.FullMethod, req); err != nil {
		return nil, err
	}
	if msg, ok := req.(proto.Message); ok {
		if err := c.validator.Validate(msg); err != nil {
			return nil, validationError(err)
		}
	}
	return handler(ctx, req)
}

// toStatus is the one place where errors become wire statuses: Slipway
// errors keep their code and details, statuses pass through, and anything
// else is logged and replaced by a bare internal error.
func (c *chain) toStatus(ctx context.Context, method, id string, err error) error {
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
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get(requestid.MetadataKey); len(v) > 0 && requestid.Valid(v[0]) {
			return v[0]
		}
	}
	return requestid.New()
}

// validationError turns protovalidate's violations into field details
// keyed by the JSON field path the client sent.
func validationError(err error) error {
	verr, ok := err.(*protovalidate.ValidationError)
	if !ok {
		return err
	}
	fields := map[string][]string{}
	for _, v := range verr.Violations {
		path := jsonPath(protovalidate.FieldPathString(v.Proto.GetField()))
		fields[path] = append(fields[path], v.Proto.GetMessage())
	}
	return apierr.Invalid("request validation failed", fields)
}

// jsonPath rewrites a proto field path ("per_page", "a.b_c[0]") with the
// lowerCamelCase names JSON uses.
func jsonPath(path string) string {
	var b strings.Builder
	upper := false
	for _, r := range path {
		switch {
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
