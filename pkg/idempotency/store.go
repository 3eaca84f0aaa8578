// Package idempotency keeps what the gateway needs to answer a retried
// request the way it answered the first: for each key a client sent (per
// credential), a fingerprint of the request and, once it has run, its
// response. The gateway's middleware (gateway/idempotency.go) speaks the
// HTTP side; this package is the storage contract and its SQL store, on
// PostgreSQL (shared by every gateway replica) and SQLite alike.
//
// The protocol: the first request claims its key with Begin, which writes
// a pending record leased to it; while it runs it renews the lease, and
// when it ends it either stores the response (Complete) or gives the key
// back (Release), so that a retry runs again. A request that finds a
// record either replays it, is refused (another fingerprint), or waits
// for the pending one. A pending record whose lease ran out belongs to a
// request that will never finish (its process died): Begin lets the next
// request take it over.
package idempotency

import (
	"context"
	"embed"
	"io/fs"
	"time"

	"github.com/slipwayhq/slipway/pkg/sqldb"
)

//go:embed migrations
var migrationsFS embed.FS

// Migrations is the schema of the SQL store, one directory of goose files
// per dialect.
var Migrations = sqldb.Migrations{Name: "idempotency", FS: mustSub(migrationsFS, "migrations")}

func mustSub(f fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(f, dir)
	if err != nil {
		panic(err)
	}
	return sub
}

// Key names one record: the scope of the credential that sent the
// request (a digest of it, never the credential itself) and the key the
// client chose. Two credentials using the same key never meet.
type Key struct {
	Scope string
	ID    string
}

// Claim is a request asking for a key.
type Claim struct {
	Key Key
	// Fingerprint identifies the request (its method, target and body):
	// a retry must match it.
	Fingerprint string
	// Token identifies this claim, unique per request: Renew, Complete
	// and Release act only on the record this claim holds.
	Token string
	// Now is the time of the claim; LeaseUntil how long the pending
	// record is this request's without a Renew; ExpiresAt when the record
	// is forgotten.
	Now, LeaseUntil, ExpiresAt time.Time
}

// Response is what a completed request answered.
type Response struct {
	// Status is the HTTP status, 100 or more.
	Status      int
	ContentType string
	Body        []byte
}

// Record is the live record of a key held by another request: pending
// (that request is still running, with its lease until LeaseUntil) or
// completed with Response.
type Record struct {
	Fingerprint string
	Pending     bool
	LeaseUntil  time.Time
	Response    Response
}

// Store keeps the records. Every method is safe for concurrent use by
// many processes on the same database.
type Store interface {
	// Begin claims c.Key for c when no live record holds it: none, an
	// expired one (ExpiresAt passed), or a pending one whose lease
	// passed. It then writes a pending record held by c.Token and
	// returns claimed. Otherwise it returns the live record, unchanged.
	// Of concurrent claims of one key exactly one is claimed.
	Begin(ctx context.Context, c Claim) (rec Record, claimed bool, err error)
	// Renew extends the lease of the pending record held by token. It
	// returns apierr.ErrConflict when token no longer holds it (taken
	// over after its lease passed, or completed or released).
	Renew(ctx context.Context, k Key, token string, leaseUntil time.Time) error
	// Complete stores the response of the pending record held by token;
	// from then on Begin returns it. apierr.ErrConflict as for Renew.
	Complete(ctx context.Context, k Key, token string, resp Response) error
	// Release deletes the pending record held by token, so that the next
	// request with the key runs again. Releasing a record token no longer
	// holds does nothing.
	Release(ctx context.Context, k Key, token string) error
	// Purge deletes the records expired at now and says how many.
	Purge(ctx context.Context, now time.Time) (int64, error)
}
