package events

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"time"

	"github.com/slipwayhq/slipway/pkg/sqldb"
)

//go:embed migrations
var migrationsFS embed.FS

// Migrations creates the event_outbox and event_inbox tables. A service
// passes it to sqldb.DB.Migrate next to its own set; it is versioned in
// its own table (events_schema) so it evolves independently of the
// service's schema.
var Migrations = sqldb.Migrations{Name: "events", FS: mustSub(migrationsFS, "migrations")}

func mustSub(fsys fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		panic(err) // dir is a literal embedded above; this cannot fail
	}
	return sub
}

// Enqueue stores events in the outbox as part of tx, the transaction that
// makes the state change they describe: they become visible to the relay
// exactly when, and only if, that change commits. Call it after the
// change's own writes, so that row locks taken by those writes also order
// the events of one resource; call Relay.Notify after committing.
func Enqueue(ctx context.Context, tx *sql.Tx, events ...Event) error {
	now := time.Now().UTC()
	for _, ev := range events {
		if err := ev.validate(); err != nil {
			return fmt.Errorf("events: enqueue %s: %w", ev.ID, err)
		}
		payload, err := json.Marshal(ev)
		if err != nil {
			return fmt.Errorf("events: enqueue %s: %w", ev.ID, err)
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO event_outbox (event_id, subject, payload, created_at) VALUES ($1, $2, $3, $4)`,
			ev.ID, ev.NATSSubject(), payload, now); err != nil {
			return fmt.Errorf("events: enqueue %s %s: %w", ev.Type, ev.ID, err)
		}
	}
	return nil
}

// MarkProcessed records in tx that consumer has handled eventID and
// reports whether this is the first time. A handler calls it in the same
// transaction as its state change and skips the change when first is
// false, which turns at-least-once delivery into exactly-once effects.
// On PostgreSQL a concurrent delivery of the same event blocks on the
// primary key until this transaction ends, so the two cannot both see
// first == true.
func MarkProcessed(ctx context.Context, tx *sql.Tx, consumer, eventID string) (first bool, err error) {
	res, err := tx.ExecContext(ctx,
		`INSERT INTO event_inbox (consumer, event_id, processed_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
		consumer, eventID, time.Now().UTC())
	if err != nil {
		return false, fmt.Errorf("events: mark %s processed by %s: %w", eventID, consumer, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("events: mark %s processed by %s: %w", eventID, consumer, err)
	}
	return n == 1, nil
}

// Write runs fn and enqueues the events evs returns in one transaction of
// db: the transactional outbox, so an event is published if and only if
// its change was committed. evs is called after fn, so fn can decide what
// to announce. committed, when not nil, is called after a commit that
// enqueued events (to wake the relay).
func Write(ctx context.Context, db *sqldb.DB, committed func(), fn func(*sql.Tx) error, evs func() []Event) error {
	var n int
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		list := evs()
		n = len(list)
		return Enqueue(ctx, tx, list...)
	})
	if err == nil && n > 0 && committed != nil {
		committed()
	}
	return err
}
