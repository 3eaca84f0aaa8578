package gateway

import (
	"time"

	"github.com/slipwayhq/slipway/pkg/idempotency"
	"github.com/slipwayhq/slipway/pkg/secret"
)

// SetTailInitTimeout sets how long gateways built afterwards wait for a
// log tail's init message, and returns a function restoring the default.
func SetTailInitTimeout(d time.Duration) (restore func()) {
	old := tailInitTimeout
	tailInitTimeout = d
	return func() { tailInitTimeout = old }
}

// SetIdempotencyWait sets how long a retry waits for the first request
// with its key, and returns a function restoring the default.
func SetIdempotencyWait(d time.Duration) (restore func()) {
	old := idempotencyWait
	idempotencyWait = d
	return func() { idempotencyWait = old }
}

// IdempotencyRecordKey is the store's key of a client's Idempotency-Key
// sent with the Authorization header value credential.
func IdempotencyRecordKey(credential, key string) idempotency.Key {
	return idempotency.Key{Scope: secret.Hash(credential), ID: key}
}

// IdempotencyFingerprint is the fingerprint of a request with that method,
// target (path and query) and body.
func IdempotencyFingerprint(method, target, body string) string {
	return fingerprint(method, target, []byte(body))
}
