// Package gen is the root of Slipway's generated API code: Go types, gRPC
// stubs and grpc-gateway handlers produced from proto/ by `make generate`.
// It is a module of its own so that API clients can depend on it without
// pulling in the servers.
package gen
