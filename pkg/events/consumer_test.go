package events

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipwayhq/slipway/pkg/sqldb"
)

func newEvents(t *testing.T, n int, prefix string) []Event {
	t.Helper()
	evs := make([]Event, n)
	for i := range evs {
		ev, err := New("test", "widget", "created", fmt.Sprintf("%s%d", prefix, i), nil)
		if err != nil {
			t.Fatal(err)
		}
		evs[i] = ev
	}
	return evs
}

func consumerInfo(t *testing.T, js jetstream.JetStream, durable string) *jetstream.ConsumerInfo {
	t.Helper()
	c, err := js.Consumer(t.Context(), StreamName, durable)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func TestConsumerResumesWithoutReprocessing(t *testing.T) {
	_, js := startNATS(t)
	cfg := ConsumerConfig{Durable: "resume", Subjects: []string{SubjectFor("test", "widget", "created")}}
	rec := newRecorder()
	first := newEvents(t, 5, "a")
	for _, ev := range first {
		publishEvent(t, js, ev)
	}
	// An event the filter must not let through.
	other, _ := New("test", "gadget", "created", "g", nil)
	publishEvent(t, js, other)

	stop := consume(t, js, cfg, rec.plain)
	waitFor(t, "the first batch", func() bool { return rec.effectiveCount() == len(first) })
	stop()

	second := newEvents(t, 5, "b")
	for _, ev := range second {
		publishEvent(t, js, ev)
	}
	consume(t, js, cfg, rec.plain)
	all := append(first, second...)
	waitFor(t, "the second batch", func() bool { return rec.effectiveCount() == len(all) })
	waitFor(t, "all acks to settle", func() bool {
		info := consumerInfo(t, js, cfg.Durable)
		return info.NumAckPending == 0 && info.NumPending == 0
	})

	delivered, _ := rec.snapshot()
	for _, ev := range all {
		if delivered[ev.ID] != 1 {
			t.Errorf("event %s delivered %d times, want 1", ev.Subject, delivered[ev.ID])
		}
	}
	if delivered[other.ID] != 0 {
		t.Error("an event outside the filter was delivered")
	}
	rec.mu.Lock()
	for i, id := range rec.order {
		if id != all[i].ID {
			t.Errorf("delivery %d was %s, want %s (stream order)", i, id, all[i].ID)
		}
	}
	rec.mu.Unlock()
}

func TestConsumerRedeliversAfterHandlerError(t *testing.T) {
	_, js := startNATS(t)
	evs := newEvents(t, 3, "w")
	failing := evs[1].ID
	var (
		mu       sync.Mutex
		attempts = map[string]int{}
	)
	consume(t, js, ConsumerConfig{Durable: "retry", Subjects: []string{"slipway.test.>"}},
		func(_ context.Context, ev Event) error {
			mu.Lock()
			defer mu.Unlock()
			attempts[ev.ID]++
			if ev.ID == failing && attempts[ev.ID] == 1 {
				return errors.New("transient failure")
			}
			return nil
		})
	for _, ev := range evs {
		publishEvent(t, js, ev)
	}
	waitFor(t, "the failed event to be redelivered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return attempts[failing] == 2 && attempts[evs[0].ID] == 1 && attempts[evs[2].ID] == 1
	})
	waitFor(t, "all acks to settle", func() bool { return consumerInfo(t, js, "retry").NumAckPending == 0 })
	mu.Lock()
	defer mu.Unlock()
	for _, ev := range evs {
		want := 1
		if ev.ID == failing {
			want = 2
		}
		if attempts[ev.ID] != want {
			t.Errorf("event %s attempted %d times, want %d", ev.Subject, attempts[ev.ID], want)
		}
	}
}

func TestConsumerGivesUpAfterMaxDeliver(t *testing.T) {
	_, js := startNATS(t)
	var (
		mu       sync.Mutex
		attempts int
	)
	consume(t, js, ConsumerConfig{Durable: "poison", Subjects: []string{"slipway.test.>"}, MaxDeliver: 2},
		func(context.Context, Event) error {
			mu.Lock()
			defer mu.Unlock()
			attempts++
			return errors.New("permanent failure")
		})
	publishEvent(t, js, newEvents(t, 1, "p")[0])
	waitFor(t, "the poison event to be given up", func() bool {
		info := consumerInfo(t, js, "poison")
		return info.NumAckPending == 0 && info.NumPending == 0 && info.Delivered.Consumer >= 2
	})
	mu.Lock()
	defer mu.Unlock()
	if attempts != 2 {
		t.Errorf("handler ran %d times, want MaxDeliver = 2", attempts)
	}
}

func TestConsumerTerminatesMalformedMessages(t *testing.T) {
	_, js := startNATS(t)
	rec := newRecorder()
	consume(t, js, ConsumerConfig{Durable: "malformed", Subjects: []string{"slipway.test.>"}}, rec.plain)

	publishRaw(t, js, "slipway.test.widget.created", []byte("not json"))
	publishRaw(t, js, "slipway.test.widget.created", []byte(`{"specversion":"0.3","id":"x","source":"s","type":"slipway.test.widget.created"}`))
	publishRaw(t, js, "slipway.test.widget.created", []byte(`{"specversion":"1.0","id":"","source":"s","type":"slipway.test.widget.created"}`))
	good := newEvents(t, 1, "g")[0]
	publishEvent(t, js, good)

	waitFor(t, "the valid event", func() bool { return rec.effectiveCount() == 1 })
	waitFor(t, "malformed messages to be terminated", func() bool {
		info := consumerInfo(t, js, "malformed")
		return info.NumAckPending == 0 && info.NumPending == 0 && info.NumRedelivered == 0
	})
	delivered, _ := rec.snapshot()
	if delivered[good.ID] != 1 || len(delivered) != 1 {
		t.Errorf("handler saw %v, want only %s once", delivered, good.ID)
	}
}

func TestConsumeRejectsBadConfig(t *testing.T) {
	_, js := startNATS(t)
	h := func(context.Context, Event) error { return nil }
	for name, cfg := range map[string]ConsumerConfig{
		"no durable":  {Subjects: []string{"slipway.>"}},
		"no subjects": {Durable: "x"},
	} {
		if _, err := Consume(t.Context(), js, cfg, h); err == nil {
			t.Errorf("%s: Consume succeeded", name)
		}
	}
	if _, err := Consume(t.Context(), js, ConsumerConfig{Durable: "x", Subjects: []string{"slipway.>"}}, nil); err == nil {
		t.Error("nil handler: Consume succeeded")
	}
}

func TestMarkProcessed(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *sqldb.DB) {
		ctx := t.Context()
		mark := func(consumer, id string, commit bool) bool {
			t.Helper()
			var first bool
			err := db.InTx(ctx, func(tx *sql.Tx) error {
				var err error
				if first, err = MarkProcessed(ctx, tx, consumer, id); err != nil {
					return err
				}
				if !commit {
					return errRollback
				}
				return nil
			})
			if commit && err != nil || !commit && !errors.Is(err, errRollback) {
				t.Fatal(err)
			}
			return first
		}
		if !mark("c1", "e1", false) {
			t.Error("first mark (rolled back) reported first=false")
		}
		if !mark("c1", "e1", true) {
			t.Error("mark after a rolled-back mark reported first=false")
		}
		if mark("c1", "e1", true) {
			t.Error("second mark reported first=true")
		}
		if !mark("c2", "e1", true) {
			t.Error("another consumer's first mark reported first=false")
		}
		if !mark("c1", "e2", true) {
			t.Error("another event's first mark reported first=false")
		}
	})
}

// TestConsumerKeepsSlowHandlerAlive checks that a handler running past
// AckWait is not raced by a redelivery of its own event to another replica.
func TestConsumerKeepsSlowHandlerAlive(t *testing.T) {
	_, js := startNATS(t)
	var (
		mu       sync.Mutex
		attempts int
	)
	const ackWait = 2 * time.Second
	slow := func(ctx context.Context, _ Event) error {
		mu.Lock()
		attempts++
		mu.Unlock()
		select {
		case <-time.After(3 * ackWait):
		case <-ctx.Done():
		}
		return nil
	}
	// Two replicas: an expired delivery would go to the idle one.
	cfg := ConsumerConfig{Durable: "slow", Subjects: []string{"slipway.test.>"}, AckWait: ackWait}
	consume(t, js, cfg, slow)
	consume(t, js, cfg, slow)
	publishEvent(t, js, newEvents(t, 1, "s")[0])
	waitFor(t, "the slow event to be acked", func() bool {
		info := consumerInfo(t, js, "slow")
		return info.Delivered.Consumer >= 1 && info.NumAckPending == 0
	})
	if info := consumerInfo(t, js, "slow"); info.NumRedelivered != 0 || info.Delivered.Consumer != 1 {
		t.Errorf("slow event delivered %d times (%d redelivered), want once", info.Delivered.Consumer, info.NumRedelivered)
	}
	mu.Lock()
	defer mu.Unlock()
	if attempts != 1 {
		t.Errorf("handler ran %d times, want 1", attempts)
	}
}
