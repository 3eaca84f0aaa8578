// Package eventstest reads the lifecycle stream in tests: what a service
// published, as its consumers will see it.
package eventstest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipwayhq/slipway/pkg/events"
)

// Wait bounds how long Collect waits for the events it wants: the relay
// publishes shortly after each commit, so this only matters when a test
// fails.
const Wait = 15 * time.Second

// Collect reads the events on subjects that the stream holds, from its
// start, keeping those keep accepts (every one when keep is nil). It waits
// up to Wait for want of them, then settle longer so that an extra event
// shows up too (settle 0 stops at want), and returns what it kept: the
// caller checks it.
func Collect(t testing.TB, js jetstream.JetStream, subjects []string, want int, settle time.Duration, keep func(events.Event) bool) []events.Event {
	t.Helper()
	cons, err := js.OrderedConsumer(context.Background(), events.StreamName, jetstream.OrderedConsumerConfig{FilterSubjects: subjects})
	if err != nil {
		t.Fatal(err)
	}
	var out []events.Event
	deadline := time.Now().Add(Wait)
	for time.Now().Before(deadline) {
		if len(out) >= want {
			if settle == 0 {
				break
			}
			if until := time.Now().Add(settle); deadline.After(until) {
				deadline = until
			}
		}
		msg, err := cons.Next(jetstream.FetchMaxWait(min(200*time.Millisecond, time.Until(deadline))))
		if err != nil {
			continue // nothing yet
		}
		var ev events.Event
		if err := json.Unmarshal(msg.Data(), &ev); err != nil {
			t.Fatalf("%s: not an event: %v", msg.Subject(), err)
		}
		if keep == nil || keep(ev) {
			out = append(out, ev)
		}
	}
	return out
}

// DataField returns a top-level string field of ev's data ("" when it has
// none), for keep functions.
func DataField(ev events.Event, field string) string {
	var data map[string]any
	if ev.Decode(&data) != nil {
		return ""
	}
	s, _ := data[field].(string)
	return s
}
