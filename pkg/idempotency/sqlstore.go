package idempotency

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/sqldb"
)

// SQLStore is the Store on PostgreSQL or SQLite (pkg/sqldb), in a database
// migrated with Migrations.
type SQLStore struct {
	db *sqldb.DB
}

// NewSQLStore returns the store over db.
func NewSQLStore(db *sqldb.DB) *SQLStore { return &SQLStore{db: db} }

// beginAttempts bounds Begin's loop: each turn loses a race only to a
// request that inserted, took over or released the same key in between,
// which a handful of turns outlasts.
const beginAttempts = 8

// Begin implements Store. An insert that does nothing on a taken key, then
// a take-over conditional on the token read: both engines serialise them
// on the row, so of concurrent claims exactly one wins, without a
// transaction spanning the read (SQLite would hold its one write lock
// through it).
func (s *SQLStore) Begin(ctx context.Context, c Claim) (Record, bool, error) {
	now, lease, expires := sqldb.Micros(c.Now), sqldb.Micros(c.LeaseUntil), sqldb.Micros(c.ExpiresAt)
	for range beginAttempts {
		res, err := s.db.ExecContext(ctx, `INSERT INTO idempotency_keys
			(scope, key, fingerprint, token, status, content_type, body, lease_until, expires_at)
			VALUES ($1, $2, $3, $4, 0, '', NULL, $5, $6)
			ON CONFLICT (scope, key) DO NOTHING`,
			c.Key.Scope, c.Key.ID, c.Fingerprint, c.Token, lease, expires)
		if err != nil {
			return Record{}, false, fmt.Errorf("idempotency: claim: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return Record{}, false, err
		} else if n == 1 {
			return Record{}, true, nil
		}
		var (
			rec            Record
			token          string
			status         int
			leaseAt, expAt int64
			contentType    string
			body           []byte
		)
		err = s.db.QueryRow(ctx, `SELECT fingerprint, token, status, content_type, body, lease_until, expires_at
			FROM idempotency_keys WHERE scope = $1 AND key = $2`, c.Key.Scope, c.Key.ID).
			Scan(&rec.Fingerprint, &token, &status, &contentType, &body, &leaseAt, &expAt)
		if errors.Is(err, sql.ErrNoRows) {
			continue // released since the insert: insert again
		}
		if err != nil {
			return Record{}, false, fmt.Errorf("idempotency: read: %w", err)
		}
		if expAt > now && (status != 0 || leaseAt > now) {
			rec.Pending = status == 0
			rec.LeaseUntil = sqldb.FromMicros(leaseAt)
			if !rec.Pending {
				rec.Response = Response{Status: status, ContentType: contentType, Body: body}
			}
			return rec, false, nil
		}
		// Expired, or abandoned by a request whose lease ran out: take it
		// over, unless someone else did since the read.
		res, err = s.db.ExecContext(ctx, `UPDATE idempotency_keys
			SET fingerprint = $4, token = $5, status = 0, content_type = '', body = NULL, lease_until = $6, expires_at = $7
			WHERE scope = $1 AND key = $2 AND token = $3`,
			c.Key.Scope, c.Key.ID, token, c.Fingerprint, c.Token, lease, expires)
		if err != nil {
			return Record{}, false, fmt.Errorf("idempotency: take over: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return Record{}, false, err
		} else if n == 1 {
			return Record{}, true, nil
		}
	}
	return Record{}, false, apierr.ErrConflict
}

// Renew implements Store.
func (s *SQLStore) Renew(ctx context.Context, k Key, token string, leaseUntil time.Time) error {
	return held(s.db.ExecContext(ctx, `UPDATE idempotency_keys SET lease_until = $4
		WHERE scope = $1 AND key = $2 AND token = $3 AND status = 0`,
		k.Scope, k.ID, token, sqldb.Micros(leaseUntil)))
}

// Complete implements Store.
func (s *SQLStore) Complete(ctx context.Context, k Key, token string, resp Response) error {
	if resp.Status < 100 {
		return fmt.Errorf("idempotency: status %d is not an HTTP status", resp.Status)
	}
	body := resp.Body
	if body == nil {
		body = []byte{} // NULL only while pending
	}
	return held(s.db.ExecContext(ctx, `UPDATE idempotency_keys SET status = $4, content_type = $5, body = $6
		WHERE scope = $1 AND key = $2 AND token = $3 AND status = 0`,
		k.Scope, k.ID, token, resp.Status, resp.ContentType, body))
}

// Release implements Store.
func (s *SQLStore) Release(ctx context.Context, k Key, token string) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM idempotency_keys
		WHERE scope = $1 AND key = $2 AND token = $3 AND status = 0`, k.Scope, k.ID, token)
	return err
}

// Purge implements Store.
func (s *SQLStore) Purge(ctx context.Context, now time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE expires_at <= $1`, sqldb.Micros(now))
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// held turns an update of the record a token holds into the contract's
// answer: apierr.ErrConflict when the token holds no pending record.
func held(res sql.Result, err error) error {
	if err := sqldb.NotFoundIfNoneAffected(res, err); errors.Is(err, apierr.ErrNotFound) {
		return apierr.ErrConflict
	} else if err != nil {
		return err
	}
	return nil
}
