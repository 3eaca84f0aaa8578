package gateway

import (
	"context"

	"google.golang.org/grpc"

	"github.com/slipwayhq/slipway/pkg/rpcserver"
)

// checkedConn is a backend connection that refuses, before it leaves, a
// request holding a string no service accepts (rpcserver.CheckRequest):
// one that is not UTF-8 would otherwise fail to marshal on its way to a
// service running apart and come back as an internal error, while the
// services' chain answers the same 400 for the requests it does receive.
type checkedConn struct {
	grpc.ClientConnInterface
}

// Invoke implements grpc.ClientConnInterface.
func (c checkedConn) Invoke(ctx context.Context, method string, req, resp any, opts ...grpc.CallOption) error {
	if err := rpcserver.CheckRequest(method, req); err != nil {
		return err
	}
	return c.ClientConnInterface.Invoke(ctx, method, req, resp, opts...)
}

// NewStream implements grpc.ClientConnInterface.
func (c checkedConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	s, err := c.ClientConnInterface.NewStream(ctx, desc, method, opts...)
	if err != nil {
		return nil, err
	}
	return checkedStream{ClientStream: s, method: method}, nil
}

// checkedStream checks every message a stream sends.
type checkedStream struct {
	grpc.ClientStream
	method string
}

// SendMsg implements grpc.ClientStream.
func (s checkedStream) SendMsg(m any) error {
	if err := rpcserver.CheckRequest(s.method, m); err != nil {
		return err
	}
	return s.ClientStream.SendMsg(m)
}
