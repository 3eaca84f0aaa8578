package events

import (
	"context"
	"errors"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
)

// TestProjectDeletedHandler: the handler passes a deleted project's team
// and id to the service, skips events that name neither, refuses data of
// the wrong shape and hands back the service's error, so the event is
// redelivered.
func TestProjectDeletedHandler(t *testing.T) {
	type call struct{ team, project string }
	var calls []call
	fail := errors.New("store down")
	var result error
	handle := ProjectDeletedHandler(func(ctx context.Context, teamID, projectID string) error {
		calls = append(calls, call{teamID, projectID})
		return result
	})
	deleted := func(data any) Event {
		t.Helper()
		ev, err := New("projects", "project", "deleted", "acme/web", data)
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}

	ev := deleted(map[string]any{"teamId": "acme", "id": "web", "name": "Web", "deleteChildObjects": true})
	matched := false
	for _, filter := range ProjectDeletedSubjects() {
		matched = matched || server.SubjectMatchesFilter(ev.NATSSubject(), filter)
	}
	if !matched {
		t.Fatalf("%s is not selected by %v", ev.NATSSubject(), ProjectDeletedSubjects())
	}
	if err := handle(t.Context(), ev); err != nil || len(calls) != 1 || calls[0] != (call{"acme", "web"}) {
		t.Fatalf("deleted project: %v, calls %v", err, calls)
	}

	result = fail
	if err := handle(t.Context(), ev); !errors.Is(err, fail) {
		t.Fatalf("the service's error: got %v", err)
	}

	calls = nil
	for _, data := range []any{map[string]string{"teamId": "acme"}, map[string]string{"id": "web"}, map[string]string{}} {
		if err := handle(t.Context(), deleted(data)); err != nil {
			t.Errorf("%v: %v, want it skipped", data, err)
		}
	}
	if err := handle(t.Context(), deleted([]string{"not", "an", "object"})); err == nil {
		t.Error("data of the wrong shape was acknowledged")
	}
	if err := handle(t.Context(), deleted(nil)); err == nil {
		t.Error("an event without data was acknowledged")
	}
	if len(calls) != 0 {
		t.Fatalf("the service was called for %v", calls)
	}
}
