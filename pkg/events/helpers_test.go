package events

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipwayhq/slipway/pkg/sqldb"
	"github.com/slipwayhq/slipway/pkg/sqldb/sqltest"
	"github.com/slipwayhq/slipway/pkg/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// eventually is the deadline for anything asynchronous: generous, because
// the tests assert that things happen, never how fast.
const eventually = 60 * time.Second

// forEachDB runs fn once against a fresh SQLite file and once against a
// fresh PostgreSQL database, both migrated and holding a widgets table
// that stands in for a service's own state.
func forEachDB(t *testing.T, fn func(t *testing.T, db *sqldb.DB)) {
	t.Helper()
	sqltest.EachEngine(t, func(t *testing.T, engine sqldb.Dialect) {
		db := sqltest.Open(t, engine, Migrations)
		if _, err := db.ExecContext(t.Context(), `CREATE TABLE widgets (id TEXT PRIMARY KEY, name TEXT NOT NULL)`); err != nil {
			t.Fatal(err)
		}
		fn(t, db)
	})
}

// startNATS starts a throwaway server and connects to it the way services
// do, with the stream in place.
func startNATS(t *testing.T) (*testenv.NATS, jetstream.JetStream) {
	t.Helper()
	srv := testenv.StartNATS(t)
	return srv, connectJS(t, srv.URL(), nil)
}

func connectJS(t *testing.T, url string, opts ...nats.Option) jetstream.JetStream {
	t.Helper()
	nc, err := Connect(url, nil, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), eventually)
	defer cancel()
	if err := EnsureStream(ctx, js); err != nil {
		t.Fatal(err)
	}
	return js
}

// testRelayOpts make retries quick so outage tests do not idle; they do not
// change what the relay does.
var testRelayOpts = []RelayOption{WithPublishTimeout(time.Second), WithMaxBackoff(300 * time.Millisecond), WithPollInterval(100 * time.Millisecond)}

// runRelay runs r in the background until the test ends.
func runRelay(t *testing.T, r *Relay) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("relay.Run: %v", err)
		}
	})
}

var errRollback = errors.New("rolled back on purpose")

// writeWidget is a service operation: it inserts a widget and enqueues the
// event in one transaction, committing or rolling back as told.
func writeWidget(t *testing.T, db *sqldb.DB, id string, commit bool) Event {
	t.Helper()
	ev, err := New("test", "widget", "created", id, map[string]string{"name": "widget " + id})
	if err != nil {
		t.Fatal(err)
	}
	err = db.InTx(t.Context(), func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(t.Context(), `INSERT INTO widgets (id, name) VALUES ($1, $2)`, id, "widget "+id); err != nil {
			return err
		}
		if err := Enqueue(t.Context(), tx, ev); err != nil {
			return err
		}
		if !commit {
			return errRollback
		}
		return nil
	})
	if commit && err != nil || !commit && !errors.Is(err, errRollback) {
		t.Fatalf("write widget %s (commit=%v): %v", id, commit, err)
	}
	return ev
}

// streamEvents reads the whole stream, in stream order.
func streamEvents(t *testing.T, js jetstream.JetStream) []Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), eventually)
	defer cancel()
	s, err := js.Stream(ctx, StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var evs []Event
	if info.State.Msgs == 0 {
		return nil
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		var ev Event
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			t.Fatalf("stream seq %d: %v", seq, err)
		}
		if m.Header.Get(jetstream.MsgIDHeader) != ev.ID {
			t.Errorf("stream seq %d: Nats-Msg-Id %q, event id %q", seq, m.Header.Get(jetstream.MsgIDHeader), ev.ID)
		}
		if m.Subject != ev.Type {
			t.Errorf("stream seq %d: subject %q, event type %q", seq, m.Subject, ev.Type)
		}
		evs = append(evs, ev)
	}
	return evs
}

// publishRaw puts data on the stream directly, bypassing the outbox.
func publishRaw(t *testing.T, js jetstream.JetStream, subject string, data []byte, opts ...jetstream.PublishOpt) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), eventually)
	defer cancel()
	if _, err := js.Publish(ctx, subject, data, opts...); err != nil {
		t.Fatal(err)
	}
}

func publishEvent(t *testing.T, js jetstream.JetStream, ev Event) {
	t.Helper()
	data, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	publishRaw(t, js, ev.NATSSubject(), data, jetstream.WithMsgID(ev.ID))
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(eventually)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", eventually, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitPending(t *testing.T, r *Relay, want int) {
	t.Helper()
	var last int
	var lastErr error
	deadline := time.Now().Add(eventually)
	for {
		last, lastErr = r.Pending(t.Context())
		if lastErr == nil && last == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %d pending events: have %d (err %v)", want, last, lastErr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// recorder is a handler that counts deliveries per event id and, through
// MarkProcessed, effective (first-time) handlings.
type recorder struct {
	mu        sync.Mutex
	delivered map[string]int
	effective map[string]int
	order     []string
}

func newRecorder() *recorder {
	return &recorder{delivered: map[string]int{}, effective: map[string]int{}}
}

// plain handles without an inbox: every delivery counts as effective.
func (r *recorder) plain(_ context.Context, ev Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.delivered[ev.ID]++
	r.effective[ev.ID]++
	r.order = append(r.order, ev.ID)
	return nil
}

// idempotent handles the way services should: inbox mark and effect in one
// transaction.
func (r *recorder) idempotent(db *sqldb.DB, consumer string) Handler {
	return func(ctx context.Context, ev Event) error {
		var first bool
		err := db.InTx(ctx, func(tx *sql.Tx) error {
			var err error
			first, err = MarkProcessed(ctx, tx, consumer, ev.ID)
			return err
		})
		if err != nil {
			return err
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		r.delivered[ev.ID]++
		if first {
			r.effective[ev.ID]++
			r.order = append(r.order, ev.ID)
		}
		return nil
	}
}

func (r *recorder) effectiveCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.effective)
}

func (r *recorder) snapshot() (delivered, effective map[string]int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delivered, effective = map[string]int{}, map[string]int{}
	for k, v := range r.delivered {
		delivered[k] = v
	}
	for k, v := range r.effective {
		effective[k] = v
	}
	return delivered, effective
}

func consume(t *testing.T, js jetstream.JetStream, cfg ConsumerConfig, h Handler) (stop func()) {
	t.Helper()
	// Not t.Context(): the consumer must outlive it until cleanup stops it.
	stop, err := Consume(context.Background(), js, cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return stop
}
