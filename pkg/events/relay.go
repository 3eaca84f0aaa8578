package events

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipwayhq/slipway/pkg/sqldb"
)

const (
	defaultPollInterval   = 500 * time.Millisecond
	defaultRetention      = 24 * time.Hour
	defaultPublishTimeout = 5 * time.Second
	defaultMaxBackoff     = 5 * time.Second
	minBackoff            = 100 * time.Millisecond
	batchSize             = 100
	// purgeEvery bounds how often the relay trims the tables; retention is
	// measured in hours, so a minute of slack is irrelevant.
	purgeEvery = time.Minute
	// inboxRetention outlives the stream's max age: once an event has aged
	// out of the stream it can no longer be redelivered, so its inbox row
	// has nothing left to guard against.
	inboxRetention = streamMaxAge + 24*time.Hour
	// finishTimeout bounds recording a published batch, which is allowed
	// to outlive Run's context so that a shutdown does not throw away
	// acknowledgements JetStream already gave.
	finishTimeout = 10 * time.Second
	// relayLockKey is the PostgreSQL advisory lock ("SlipwayE" in ASCII)
	// that lets only one relay per database publish at a time.
	relayLockKey int64 = 0x536c697077617945
	// cloudEventsJSON is the structured-mode content type of the CloudEvents
	// NATS binding, sent so that generic tooling can recognise the payload.
	cloudEventsJSON = "application/cloudevents+json"
)

// errBusy means another relay holds the PostgreSQL lock, so there is
// nothing for this one to do right now.
var errBusy = errors.New("events: another relay is publishing")

// Relay moves committed events from the outbox to JetStream. Every service
// that enqueues events runs one (several replicas may each run one on the
// same database). It never drops an event: rows stay in the outbox until
// JetStream has acknowledged them, across NATS outages and restarts.
type Relay struct {
	db  *sqldb.DB
	js  jetstream.JetStream
	log *slog.Logger

	pollInterval   time.Duration
	retention      time.Duration
	publishTimeout time.Duration
	maxBackoff     time.Duration

	wake    chan struct{}
	running atomic.Bool
	// streamOK is only touched by the goroutine inside Run.
	streamOK bool

	// beforeMark lets tests stop the relay in its most delicate spot: after
	// JetStream acknowledged a batch and before the batch is marked sent.
	// A non-nil error makes Run return it at once, as if the process died.
	beforeMark func() error
}

// RelayOption tunes a Relay; the defaults suit production.
type RelayOption func(*Relay)

// WithPollInterval sets how often the relay looks for rows nobody
// announced with Notify (default 500ms). It bounds the latency of events
// committed by another replica or before a restart.
func WithPollInterval(d time.Duration) RelayOption {
	return func(r *Relay) {
		if d > 0 {
			r.pollInterval = d
		}
	}
}

// WithRetention sets how long sent rows are kept for inspection before
// they are purged (default 24h).
func WithRetention(d time.Duration) RelayOption {
	return func(r *Relay) {
		if d > 0 {
			r.retention = d
		}
	}
}

// WithPublishTimeout bounds the wait for one JetStream acknowledgement
// (default 5s); past it the batch is retried after a back-off.
func WithPublishTimeout(d time.Duration) RelayOption {
	return func(r *Relay) {
		if d > 0 {
			r.publishTimeout = d
		}
	}
}

// WithMaxBackoff caps the pause between retries while NATS or the
// database fails (default 5s), and so the extra delay after they recover.
func WithMaxBackoff(d time.Duration) RelayOption {
	return func(r *Relay) {
		if d > 0 {
			r.maxBackoff = d
		}
	}
}

// WithLogger sets where the relay reports failures (default slog.Default).
// Only event ids and subjects are logged, never payloads.
func WithLogger(l *slog.Logger) RelayOption {
	return func(r *Relay) {
		if l != nil {
			r.log = l
		}
	}
}

// NewRelay returns a relay for the outbox in db publishing through js. It
// does nothing until Run.
func NewRelay(db *sqldb.DB, js jetstream.JetStream, opts ...RelayOption) *Relay {
	r := &Relay{
		db:             db,
		js:             js,
		log:            slog.Default(),
		pollInterval:   defaultPollInterval,
		retention:      defaultRetention,
		publishTimeout: defaultPublishTimeout,
		maxBackoff:     defaultMaxBackoff,
		wake:           make(chan struct{}, 1),
	}
	for _, o := range opts {
		o(r)
	}
	return r
}

// Notify wakes the relay after the caller committed events, so they go out
// immediately rather than at the next poll. It never blocks; wake-ups that
// arrive while the relay is busy coalesce into one extra pass.
func (r *Relay) Notify() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Pending counts events committed but not yet acknowledged by JetStream; a
// steadily growing value means events are not leaving the service.
func (r *Relay) Pending(ctx context.Context) (int, error) {
	var n int
	if err := r.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM event_outbox WHERE sent_at IS NULL`).Scan(&n); err != nil {
		return 0, fmt.Errorf("events: count pending: %w", err)
	}
	return n, nil
}

// Run publishes outbox rows until ctx is done, then returns nil. Failures
// of NATS or the database are retried with capped exponential back-off,
// never skipped; Run returns an error only if the relay is already running.
func (r *Relay) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return errors.New("events: relay is already running")
	}
	defer r.running.Store(false)

	var (
		failures  int
		nextPurge time.Time
	)
	for {
		n, err := r.relayBatch(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var abort abortError
		switch {
		case errors.As(err, &abort):
			return abort.err
		case errors.Is(err, errBusy):
			// The lock holder drains the outbox; Notify or the poll brings
			// this relay back in case it stops just before our rows commit.
			r.wait(ctx, r.pollInterval, true)
			continue
		case err != nil:
			failures++
			delay := r.backoff(failures)
			r.log.Warn("events: relay cannot publish, retrying",
				"err", err, "attempt", failures, "retry_in", delay)
			// Notify must not cut the back-off short, or a busy service
			// would hammer a NATS server that is down.
			r.wait(ctx, delay, false)
			continue
		}
		if failures > 0 {
			r.log.Info("events: relay recovered", "failed_attempts", failures)
			failures = 0
		}
		if n == batchSize {
			continue // likely more rows waiting
		}
		if now := time.Now(); now.After(nextPurge) {
			if err := r.purge(ctx); err != nil && ctx.Err() == nil {
				r.log.Warn("events: relay cannot purge sent events", "err", err)
			}
			nextPurge = now.Add(min(purgeEvery, r.retention))
		}
		r.wait(ctx, r.pollInterval, true)
	}
}

// abortError carries a beforeMark failure out of Run.
type abortError struct{ err error }

func (e abortError) Error() string { return e.err.Error() }

func (r *Relay) wait(ctx context.Context, d time.Duration, wakeable bool) {
	t := time.NewTimer(d)
	defer t.Stop()
	var wake chan struct{}
	if wakeable {
		wake = r.wake
	}
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-wake:
	}
}

// backoff doubles from minBackoff up to maxBackoff, with jitter so that
// relays of many replicas do not retry in lockstep.
func (r *Relay) backoff(failures int) time.Duration {
	d := r.maxBackoff
	if failures < 30 {
		d = min(minBackoff<<(failures-1), r.maxBackoff)
	}
	return d/2 + rand.N(d/2+1)
}

type outboxRow struct {
	seq     int64
	id      string
	subject string
	payload []byte
}

// queryExecer is what both *sql.DB and *sql.Tx offer.
type queryExecer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// relayBatch publishes up to batchSize unsent rows in sequence order and
// marks those JetStream acknowledged; it returns how many it marked.
//
// Several relays may share a database. On PostgreSQL the batch runs in a
// transaction holding an advisory lock, so exactly one relay publishes at a
// time: that keeps stream order equal to outbox order and avoids needless
// duplicates. Row locks with FOR UPDATE SKIP LOCKED were rejected because
// they let a second relay publish the next batch while the first is still
// at work, interleaving the two. The transaction takes no row locks
// writers need, so holding it across the (bounded) publishes blocks only
// other relays. On SQLite, where a write transaction would block every
// writer of the service, rows are read without one; concurrent relays
// (rare: SQLite means one process) then publish duplicates, which the
// JetStream de-duplication window drops by message id.
func (r *Relay) relayBatch(ctx context.Context) (int, error) {
	if !r.streamOK {
		sctx, cancel := context.WithTimeout(ctx, r.publishTimeout)
		err := EnsureStream(sctx, r.js)
		cancel()
		if err != nil {
			return 0, err
		}
		r.streamOK = true
	}
	if r.db.Dialect == sqldb.Postgres {
		return r.relayLocked(ctx)
	}
	return r.relayUnlocked(ctx)
}

func (r *Relay) relayLocked(ctx context.Context) (int, error) {
	// The transaction must survive ctx: if shutdown interrupts the batch,
	// the rows already acknowledged are still marked on the way out.
	tx, err := r.db.BeginTx(context.WithoutCancel(ctx), nil)
	if err != nil {
		return 0, fmt.Errorf("events: begin relay transaction: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	var locked bool
	if err := tx.QueryRowContext(ctx, `SELECT pg_try_advisory_xact_lock($1)`, relayLockKey).Scan(&locked); err != nil {
		return 0, fmt.Errorf("events: take relay lock: %w", err)
	}
	if !locked {
		return 0, errBusy
	}
	rows, err := unsent(ctx, tx)
	if err != nil {
		return 0, err
	}
	sent, pubErr := r.publish(ctx, rows)
	if err := r.hook(); err != nil {
		return 0, err
	}
	if len(sent) > 0 {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
		defer cancel()
		if err := markSent(fctx, tx, sent); err != nil {
			return 0, err
		}
		if err := tx.Commit(); err != nil {
			return 0, fmt.Errorf("events: commit sent marks: %w", err)
		}
	}
	return len(sent), pubErr
}

func (r *Relay) relayUnlocked(ctx context.Context) (int, error) {
	rows, err := unsent(ctx, r.db.DB)
	if err != nil {
		return 0, err
	}
	sent, pubErr := r.publish(ctx, rows)
	if err := r.hook(); err != nil {
		return 0, err
	}
	if len(sent) > 0 {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
		defer cancel()
		if err := r.db.InTx(fctx, func(tx *sql.Tx) error { return markSent(fctx, tx, sent) }); err != nil {
			return 0, err
		}
	}
	return len(sent), pubErr
}

func (r *Relay) hook() error {
	if r.beforeMark == nil {
		return nil
	}
	if err := r.beforeMark(); err != nil {
		return abortError{err}
	}
	return nil
}

func unsent(ctx context.Context, q queryExecer) ([]outboxRow, error) {
	rs, err := q.QueryContext(ctx,
		`SELECT seq, event_id, subject, payload FROM event_outbox WHERE sent_at IS NULL ORDER BY seq LIMIT $1`, batchSize)
	if err != nil {
		return nil, fmt.Errorf("events: read outbox: %w", err)
	}
	defer rs.Close()
	var rows []outboxRow
	for rs.Next() {
		var row outboxRow
		if err := rs.Scan(&row.seq, &row.id, &row.subject, &row.payload); err != nil {
			return nil, fmt.Errorf("events: read outbox: %w", err)
		}
		rows = append(rows, row)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("events: read outbox: %w", err)
	}
	return rows, nil
}

// publish sends rows in order, each only after the previous one was
// acknowledged, and returns the seqs acknowledged before the first failure.
// A publish that timed out may still reach the stream (for instance from
// the client's reconnect buffer); the message id makes the retry a no-op.
func (r *Relay) publish(ctx context.Context, rows []outboxRow) ([]int64, error) {
	sent := make([]int64, 0, len(rows))
	for _, row := range rows {
		pctx, cancel := context.WithTimeout(ctx, r.publishTimeout)
		_, err := r.js.PublishMsg(pctx,
			&nats.Msg{Subject: row.subject, Data: row.payload, Header: nats.Header{"Content-Type": {cloudEventsJSON}}},
			jetstream.WithMsgID(row.id), jetstream.WithExpectStream(StreamName))
		cancel()
		if err != nil {
			if errors.Is(err, jetstream.ErrNoStreamResponse) {
				r.streamOK = false // deleted or never created: recreate on retry
			}
			return sent, fmt.Errorf("events: publish %s %s: %w", row.subject, row.id, err)
		}
		sent = append(sent, row.seq)
	}
	return sent, nil
}

// markSent lists the seqs explicitly rather than marking a range: a row
// with a lower seq can commit after a higher one was read, and a range
// would mark it sent without it ever being published.
func markSent(ctx context.Context, q queryExecer, seqs []int64) error {
	var b strings.Builder
	b.WriteString(`UPDATE event_outbox SET sent_at = $1 WHERE sent_at IS NULL AND seq IN (`)
	args := make([]any, 0, len(seqs)+1)
	args = append(args, time.Now().UTC())
	for i, s := range seqs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("$" + strconv.Itoa(i+2))
		args = append(args, s)
	}
	b.WriteByte(')')
	if _, err := q.ExecContext(ctx, b.String(), args...); err != nil {
		return fmt.Errorf("events: mark %d events sent: %w", len(seqs), err)
	}
	return nil
}

// purge keeps both tables small. Timestamps are always written by this
// package in UTC, so on SQLite (which stores them as text) they compare
// correctly as strings.
func (r *Relay) purge(ctx context.Context) error {
	now := time.Now().UTC()
	if _, err := r.db.ExecContext(ctx,
		`DELETE FROM event_outbox WHERE sent_at IS NOT NULL AND sent_at < $1`, now.Add(-r.retention)); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	if _, err := r.db.ExecContext(ctx,
		`DELETE FROM event_inbox WHERE processed_at < $1`, now.Add(-inboxRetention)); err != nil {
		return fmt.Errorf("inbox: %w", err)
	}
	return nil
}
