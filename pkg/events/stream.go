package events

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// StreamName is the JetStream stream holding every lifecycle event.
const StreamName = "SLIPWAY_EVENTS"

const (
	// dedupWindow bounds how late a republished event is still dropped by
	// JetStream. It must outlast a relay's publish-then-crash-then-restart
	// cycle; anything later is caught by consumers' inboxes instead.
	dedupWindow = 2 * time.Hour
	// streamMaxAge is how long a consumer may be down and still catch up.
	streamMaxAge = 7 * 24 * time.Hour
)

// StreamSubjects are the subjects the stream captures: the lifecycle root
// only. Live traffic (LiveSubject) lives under a root these never match.
func StreamSubjects() []string { return []string{subjectRoot + ".>"} }

// EnsureStream creates the event stream or brings an existing one to the
// expected configuration. Every service may call it at start-up; the
// replica count of an existing stream is kept so that an operator can
// scale the stream without services scaling it back.
func EnsureStream(ctx context.Context, js jetstream.JetStream) error {
	cfg := jetstream.StreamConfig{
		Name:        StreamName,
		Description: "Slipway lifecycle events (CloudEvents 1.0, structured JSON)",
		Subjects:    StreamSubjects(),
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      streamMaxAge,
		Duplicates:  dedupWindow,
	}
	s, err := js.Stream(ctx, StreamName)
	switch {
	case err == nil:
		cfg.Replicas = s.CachedInfo().Config.Replicas
	case !errors.Is(err, jetstream.ErrStreamNotFound):
		return fmt.Errorf("events: look up stream %s: %w", StreamName, err)
	}
	if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
		return fmt.Errorf("events: ensure stream %s: %w", StreamName, err)
	}
	return nil
}
