package events

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipwayhq/slipway/pkg/sqldb"
)

// checkStream asserts that the stream holds each committed event exactly
// once, in the given order when ordered, and none of the rolled-back ones.
func checkStream(t *testing.T, js jetstream.JetStream, committed, rolledBack []Event, ordered bool) {
	t.Helper()
	got := streamEvents(t, js)
	seen := map[string]int{}
	var ids []string
	for _, ev := range got {
		seen[ev.ID]++
		ids = append(ids, ev.ID)
	}
	for _, ev := range committed {
		if seen[ev.ID] != 1 {
			t.Errorf("committed event %s (%s) is in the stream %d times, want 1", ev.ID, ev.Subject, seen[ev.ID])
		}
	}
	for _, ev := range rolledBack {
		if seen[ev.ID] != 0 {
			t.Errorf("phantom: rolled-back event %s (%s) is in the stream", ev.ID, ev.Subject)
		}
	}
	if len(got) != len(committed) {
		t.Errorf("stream holds %d messages, want %d", len(got), len(committed))
	}
	if ordered {
		want := make([]string, len(committed))
		for i, ev := range committed {
			want[i] = ev.ID
		}
		if !slices.Equal(ids, want) {
			t.Errorf("stream order differs from commit order:\n got %v\nwant %v", ids, want)
		}
	}
}

func TestRelayPublishesCommittedOnly(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *sqldb.DB) {
		_, js := startNATS(t)
		r := NewRelay(db, js, testRelayOpts...)
		runRelay(t, r)

		var committed, rolledBack []Event
		for i := range 6 {
			commit := i%3 != 1
			ev := writeWidget(t, db, fmt.Sprintf("w%d", i), commit)
			if commit {
				committed = append(committed, ev)
			} else {
				rolledBack = append(rolledBack, ev)
			}
			r.Notify()
		}
		waitPending(t, r, 0)
		checkStream(t, js, committed, rolledBack, true)

		var outboxRows int
		if err := db.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM event_outbox`).Scan(&outboxRows); err != nil {
			t.Fatal(err)
		}
		if outboxRows != len(committed) {
			t.Errorf("outbox holds %d rows, want %d (rolled-back rows must not exist)", outboxRows, len(committed))
		}
	})
}

func TestEnqueueRejectsInvalidEvent(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *sqldb.DB) {
		err := db.InTx(t.Context(), func(tx *sql.Tx) error {
			return Enqueue(t.Context(), tx, Event{ID: "x", Type: "not-a-slipway-type"})
		})
		if err == nil {
			t.Fatal("Enqueue accepted an invalid event")
		}
		ev, _ := New("test", "widget", "created", "w", nil)
		err = db.InTx(t.Context(), func(tx *sql.Tx) error { return Enqueue(t.Context(), tx, ev, ev) })
		if !sqldb.IsUniqueViolation(err) {
			t.Fatalf("enqueuing one event twice: %v, want a unique violation", err)
		}
	})
}

// TestRelayOutage is the reason the outbox exists: writes keep committing
// while NATS is down, and once it is back every committed event arrives,
// each exactly once after de-duplication, and no rolled-back one does.
func TestRelayOutage(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *sqldb.DB) {
		srv, js := startNATS(t)
		r := NewRelay(db, js, testRelayOpts...)
		runRelay(t, r)
		rec := newRecorder()
		consume(t, js, ConsumerConfig{Durable: "outage", Subjects: []string{SubjectFor("test", "widget", "*")}},
			rec.idempotent(db, "outage"))

		before := writeWidget(t, db, "before", true)
		r.Notify()
		waitPending(t, r, 0)

		srv.Shutdown()

		const writers, perWriter = 4, 15
		var (
			mu                    sync.Mutex
			committed, rolledBack = []Event{before}, []Event(nil)
			wg                    sync.WaitGroup
		)
		for w := range writers {
			wg.Go(func() {
				for i := range perWriter {
					commit := i%5 != 0
					ev := writeWidget(t, db, fmt.Sprintf("w%d-%d", w, i), commit)
					r.Notify()
					mu.Lock()
					if commit {
						committed = append(committed, ev)
					} else {
						rolledBack = append(rolledBack, ev)
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		// Nothing can be acknowledged without a server, so nothing may be
		// marked sent.
		if n, err := r.Pending(t.Context()); err != nil || n != len(committed)-1 {
			t.Fatalf("pending during outage = %d, %v; want %d", n, err, len(committed)-1)
		}
		// Let the relay fail against the dead server for a while, so
		// publishes sit in the client's reconnect buffer and in back-off.
		time.Sleep(2 * time.Second)

		srv.Restart(t)
		waitPending(t, r, 0)
		waitFor(t, "the consumer to handle every committed event", func() bool {
			return rec.effectiveCount() >= len(committed)
		})

		checkStream(t, js, committed, rolledBack, false)
		_, effective := rec.snapshot()
		for _, ev := range committed {
			if effective[ev.ID] != 1 {
				t.Errorf("committed event %s handled %d times, want 1", ev.Subject, effective[ev.ID])
			}
		}
		for _, ev := range rolledBack {
			if effective[ev.ID] != 0 {
				t.Errorf("phantom: rolled-back event %s was handled", ev.Subject)
			}
		}
		if len(effective) != len(committed) {
			t.Errorf("handled %d distinct events, want %d", len(effective), len(committed))
		}
	})
}

// TestRelayCrashBeforeMark kills a relay between JetStream's ack and the
// sent mark. The next relay republishes; JetStream drops the duplicates by
// message id, and when it cannot (simulated: a republish under another
// message id, as if the de-duplication window had passed), the consumer's
// inbox still applies each event once.
func TestRelayCrashBeforeMark(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *sqldb.DB) {
		_, js := startNATS(t)
		var committed []Event
		for i := range 5 {
			committed = append(committed, writeWidget(t, db, fmt.Sprintf("w%d", i), true))
		}

		crash := errors.New("crash")
		crashing := NewRelay(db, js, testRelayOpts...)
		crashing.beforeMark = func() error { return crash }
		ctx, cancel := context.WithTimeout(t.Context(), eventually)
		defer cancel()
		if err := crashing.Run(ctx); !errors.Is(err, crash) {
			t.Fatalf("crashing relay returned %v", err)
		}
		if n, err := crashing.Pending(ctx); err != nil || n != len(committed) {
			t.Fatalf("pending after crash = %d, %v; want %d (nothing marked)", n, err, len(committed))
		}
		checkStream(t, js, committed, nil, true) // published, though unmarked

		r := NewRelay(db, js, testRelayOpts...)
		runRelay(t, r)
		waitPending(t, r, 0)
		checkStream(t, js, committed, nil, true) // republished, de-duplicated

		for _, ev := range committed {
			data, err := json.Marshal(ev)
			if err != nil {
				t.Fatal(err)
			}
			publishRaw(t, js, ev.NATSSubject(), data, jetstream.WithMsgID("late-"+ev.ID))
		}
		rec := newRecorder()
		consume(t, js, ConsumerConfig{Durable: "crash", Subjects: []string{"slipway.test.>"}},
			rec.idempotent(db, "crash"))
		waitFor(t, "every copy to be delivered", func() bool {
			delivered, _ := rec.snapshot()
			for _, ev := range committed {
				if delivered[ev.ID] < 2 {
					return false
				}
			}
			return true
		})
		_, effective := rec.snapshot()
		for _, ev := range committed {
			if effective[ev.ID] != 1 {
				t.Errorf("event %s applied %d times, want 1", ev.Subject, effective[ev.ID])
			}
		}
	})
}

// TestRelaysShareDatabase runs two relays on one outbox, as two replicas
// of a service would: every event is published once and in commit order.
func TestRelaysShareDatabase(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *sqldb.DB) {
		_, js := startNATS(t)
		a, b := NewRelay(db, js, testRelayOpts...), NewRelay(db, js, testRelayOpts...)
		runRelay(t, a)
		runRelay(t, b)
		var committed []Event
		for i := range 60 {
			committed = append(committed, writeWidget(t, db, fmt.Sprintf("w%d", i), true))
			a.Notify()
			b.Notify()
		}
		waitPending(t, a, 0)
		checkStream(t, js, committed, nil, true)
	})
}

func TestRelayPurgesSentRows(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *sqldb.DB) {
		_, js := startNATS(t)
		r := NewRelay(db, js, append(testRelayOpts, WithRetention(time.Millisecond))...)
		runRelay(t, r)
		for i := range 3 {
			writeWidget(t, db, fmt.Sprintf("w%d", i), true)
		}
		r.Notify()
		waitFor(t, "sent rows to be purged", func() bool {
			var n int
			err := db.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM event_outbox`).Scan(&n)
			return err == nil && n == 0
		})
		if got := len(streamEvents(t, js)); got != 3 {
			t.Errorf("stream holds %d events, want 3", got)
		}
		// seq must keep growing after the table was emptied, or ordering
		// would break on SQLite.
		ev, _ := New("test", "widget", "created", "after", nil)
		var seq int64
		err := db.InTx(t.Context(), func(tx *sql.Tx) error {
			if err := Enqueue(t.Context(), tx, ev); err != nil {
				return err
			}
			return tx.QueryRowContext(t.Context(), `SELECT seq FROM event_outbox WHERE event_id = $1`, ev.ID).Scan(&seq)
		})
		if err != nil || seq <= 3 {
			t.Errorf("seq after purge = %d, %v; want > 3", seq, err)
		}
	})
}

func TestRelayRunTwice(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *sqldb.DB) {
		_, js := startNATS(t)
		r := NewRelay(db, js, testRelayOpts...)
		runRelay(t, r)
		waitFor(t, "the relay to start", r.running.Load)
		if err := r.Run(t.Context()); err == nil {
			t.Error("a second concurrent Run succeeded")
		}
	})
}
