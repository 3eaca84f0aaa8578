package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// SpecVersion is the CloudEvents specification version of every Event.
const SpecVersion = "1.0"

// subjectRoot prefixes every event type and NATS subject, so that the one
// stream can claim "slipway.>" without colliding with other traffic. Live
// traffic, which must not be kept, has a root of its own (liveRoot).
const subjectRoot = "slipway"

// Event is a CloudEvents 1.0 envelope in structured JSON mode. It is what
// the outbox stores and what travels over NATS, byte for byte.
type Event struct {
	// SpecVersion is always "1.0".
	SpecVersion string `json:"specversion"`
	// ID is unique per event; it is also the JetStream message id and the
	// inbox key, which is what makes redelivery harmless.
	ID string `json:"id"`
	// Source names the producing service, "slipway/<service>".
	Source string `json:"source"`
	// Type is "slipway.<service>.<resource>.<verb>" and doubles as the NATS
	// subject, so consumers filter on exactly what they switch on.
	Type string `json:"type"`
	// Subject identifies the affected resource instance (e.g. a project
	// id); it is the CloudEvents attribute, not the NATS subject.
	Subject string `json:"subject,omitempty"`
	// Time is when the change happened, in UTC.
	Time time.Time `json:"time"`
	// DataContentType is "application/json" whenever Data is set.
	DataContentType string `json:"datacontenttype,omitempty"`
	// Data is the JSON payload; see Decode.
	Data json.RawMessage `json:"data,omitempty"`
}

// New builds an event of type "slipway.<service>.<resource>.<verb>" about
// the resource instance subject, with data marshalled to JSON (nil data
// leaves the event without a payload). The id is a UUIDv7, so ids sort
// roughly by creation time, which keeps index inserts local.
func New(service, resource, verb, subject string, data any) (Event, error) {
	for _, tok := range [...]struct{ name, val string }{{"service", service}, {"resource", resource}, {"verb", verb}} {
		if err := checkToken(tok.val); err != nil {
			return Event{}, fmt.Errorf("events: %s %q: %w", tok.name, tok.val, err)
		}
	}
	id, err := uuid.NewV7()
	if err != nil {
		return Event{}, fmt.Errorf("events: event id: %w", err)
	}
	ev := Event{
		SpecVersion: SpecVersion,
		ID:          id.String(),
		Source:      subjectRoot + "/" + service,
		Type:        SubjectFor(service, resource, verb),
		Subject:     subject,
		Time:        time.Now().UTC(),
	}
	if data != nil {
		raw, err := json.Marshal(data)
		if err != nil {
			return Event{}, fmt.Errorf("events: marshal %s data: %w", ev.Type, err)
		}
		ev.Data = raw
		ev.DataContentType = "application/json"
	}
	return ev, nil
}

// SubjectFor returns the NATS subject "slipway.<service>.<resource>.<verb>".
// Any part may be the wildcard "*" (and verb may be ">"), which is how a
// consumer names the events it wants in ConsumerConfig.Subjects.
func SubjectFor(service, resource, verb string) string {
	return subjectRoot + "." + service + "." + resource + "." + verb
}

// NATSSubject is the subject the event is published on: its type.
func (e Event) NATSSubject() string { return e.Type }

// Decode unmarshals the event's data into v.
func (e Event) Decode(v any) error {
	if len(e.Data) == 0 {
		return fmt.Errorf("events: %s %s has no data", e.Type, e.ID)
	}
	if err := json.Unmarshal(e.Data, v); err != nil {
		return fmt.Errorf("events: decode %s %s: %w", e.Type, e.ID, err)
	}
	return nil
}

// validate rejects envelopes that could not have come from New, so that
// neither the outbox nor a consumer handler ever sees one.
func (e Event) validate() error {
	switch {
	case e.SpecVersion != SpecVersion:
		return fmt.Errorf("specversion %q, want %q", e.SpecVersion, SpecVersion)
	case e.ID == "":
		return errors.New("empty id")
	case e.Source == "":
		return errors.New("empty source")
	}
	parts := strings.Split(e.Type, ".")
	if len(parts) != 4 || parts[0] != subjectRoot {
		return fmt.Errorf("type %q is not %s.<service>.<resource>.<verb>", e.Type, subjectRoot)
	}
	for _, p := range parts[1:] {
		if err := checkToken(p); err != nil {
			return fmt.Errorf("type %q: %w", e.Type, err)
		}
	}
	return nil
}

// checkToken keeps subject tokens to a conservative alphabet: anything
// else (dots, wildcards, spaces) would change which consumers match.
func checkToken(s string) error {
	if s == "" {
		return errors.New("empty subject token")
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return fmt.Errorf("subject token %q may only contain letters, digits, '-' and '_'", s)
		}
	}
	return nil
}
