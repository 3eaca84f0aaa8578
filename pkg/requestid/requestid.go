// Package requestid carries the request id that ties a REST call, the gRPC
// calls it makes and their log lines together.
package requestid

import (
	"context"
	"crypto/rand"
	"encoding/hex"
)

// Header is the HTTP header (and, lowercased, the gRPC metadata key) that
// carries the id.
const Header = "X-Request-Id"

// MetadataKey is Header as gRPC metadata spells it.
const MetadataKey = "x-request-id"

type ctxKey struct{}

// New returns a fresh random id.
func New() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Valid reports whether a client-supplied id is safe to echo and log:
// 1 to 128 visible ASCII characters without spaces.
func Valid(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return false
		}
	}
	return true
}

// NewContext returns ctx carrying id.
func NewContext(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// FromContext returns the id in ctx, or "".
func FromContext(ctx context.Context) string {
	id, _ := ctx.Value(ctxKey{}).(string)
	return id
}
