package authz

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipwayhq/slipway/pkg/events"
)

// The events after which cached principals are stale: a token revoked
// (data {"id"}), a user's memberships changed (data {"userId"}), or a role
// changed (data {"teamId", "roleId"}).
var (
	RevokedSubject = events.SubjectFor("auth", "token", "revoked")
	MemberSubject  = events.SubjectFor("auth", "member", "*")
	RoleSubject    = events.SubjectFor("auth", "role", "*")
)

// WatchRevocations keeps a's cache honest until ctx ends: it drops revoked
// tokens and the principals of users whose memberships changed. Every
// process needs every such event, so this is an ephemeral ordered consumer
// per process rather than a shared durable one.
func WatchRevocations(ctx context.Context, js jetstream.JetStream, a *Authorizer, log *slog.Logger) error {
	cons, err := js.OrderedConsumer(ctx, events.StreamName, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{RevokedSubject, MemberSubject, RoleSubject},
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
				ID     string `json:"id"`
				UserID string `json:"userId"`
				TeamID string `json:"teamId"`
				RoleID string `json:"roleId"`
			}
			if json.Unmarshal(msg.Data(), &ev) != nil || ev.Decode(&data) != nil {
				log.Warn("malformed auth event", "subject", msg.Subject())
				continue
			}
			switch {
			case msg.Subject() == RevokedSubject:
				a.Revoked(data.ID)
			case data.RoleID != "" && data.UserID == "":
				a.RoleChanged(data.TeamID, data.RoleID)
			default:
				a.UserChanged(data.UserID)
			}
		}
	}()
	return nil
}
