package authz

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipwayhq/slipway/pkg/events"
)

// RevokedSubject is the event the auth service emits when a token is
// revoked.
var RevokedSubject = events.SubjectFor("auth", "token", "revoked")

// WatchRevocations clears a's cache of every token revoked from now on,
// until ctx ends. Every process needs every revocation, so this is an
// ephemeral ordered consumer per process rather than a shared durable one.
func WatchRevocations(ctx context.Context, js jetstream.JetStream, a *Authorizer, log *slog.Logger) error {
	cons, err := js.OrderedConsumer(ctx, events.StreamName, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{RevokedSubject},
		DeliverPolicy:  jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return err
	}
	go func() {
		for ctx.Err() == nil {
			msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
			if err != nil {
				continue // timeouts and reconnects; the ordered consumer recovers
			}
			var ev events.Event
			var data struct {
				ID string `json:"id"`
			}
			if json.Unmarshal(msg.Data(), &ev) != nil || ev.Decode(&data) != nil || data.ID == "" {
				log.Warn("malformed token revocation event", "subject", msg.Subject())
				continue
			}
			a.Revoked(data.ID)
		}
	}()
	return nil
}
