// Package rpctest serves gRPC services for tests the way Slipway serves
// them in production: on a server built by rpcserver.New, so every call
// goes through the real interceptor chain (authorization, validation,
// error mapping, logging), over a real loopback connection.
package rpctest

import (
	"log/slog"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/slipwayhq/slipway/pkg/rpcserver"
)

// Serve starts a gRPC server with opts' interceptor chain on a free
// loopback port, lets register add the services to it, and returns a
// client connection to it, dialled with dial. The server and the
// connection are closed when t's test ends.
//
// A nil opts.Logger discards the server's logs (a failing test says what
// went wrong; per-call log lines would bury it); a nil Authorizer lets
// every call through, as rpcserver.New does.
func Serve(t testing.TB, opts rpcserver.Options, register func(*grpc.Server), dial ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	srv, err := rpcserver.New(opts)
	if err != nil {
		t.Fatalf("rpctest: %v", err)
	}
	register(srv)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("rpctest: %v", err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(),
		append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, dial...)...)
	if err != nil {
		t.Fatalf("rpctest: %v", err)
	}
	// Registered after srv.Stop, so it runs first: the client goes away
	// before the server it talks to.
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}
