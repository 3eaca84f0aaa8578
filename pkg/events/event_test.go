package events

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
)

func TestNew(t *testing.T) {
	type payload struct {
		Name string `json:"name"`
	}
	before := time.Now()
	ev, err := New("projects", "project", "created", "prj_1", payload{Name: "web"})
	if err != nil {
		t.Fatal(err)
	}
	if ev.SpecVersion != "1.0" || ev.Source != "slipway/projects" || ev.Type != "slipway.projects.project.created" ||
		ev.Subject != "prj_1" || ev.DataContentType != "application/json" {
		t.Errorf("unexpected envelope: %+v", ev)
	}
	if ev.NATSSubject() != "slipway.projects.project.created" {
		t.Errorf("NATSSubject = %q", ev.NATSSubject())
	}
	if _, err := uuid.Parse(ev.ID); err != nil {
		t.Errorf("id %q is not a UUID: %v", ev.ID, err)
	}
	if ev.Time.Location() != time.UTC || ev.Time.Before(before.Add(-time.Second)) {
		t.Errorf("time %v is not a current UTC time", ev.Time)
	}

	raw, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	var attrs map[string]json.RawMessage
	if err := json.Unmarshal(raw, &attrs); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"specversion", "id", "source", "type", "subject", "time", "datacontenttype", "data"} {
		if _, ok := attrs[k]; !ok {
			t.Errorf("JSON lacks CloudEvents attribute %q: %s", k, raw)
		}
	}
	if len(attrs) != 8 {
		t.Errorf("JSON has extra attributes: %s", raw)
	}
	var ts string
	_ = json.Unmarshal(attrs["time"], &ts)
	if parsed, err := time.Parse(time.RFC3339Nano, ts); err != nil || !parsed.Equal(ev.Time) || !strings.HasSuffix(ts, "Z") {
		t.Errorf("time %q is not UTC RFC 3339 (err %v)", ts, err)
	}

	var back Event
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	var p payload
	if err := back.Decode(&p); err != nil || p.Name != "web" {
		t.Errorf("Decode = %+v, %v", p, err)
	}

	other, _ := New("projects", "project", "created", "prj_1", nil)
	if other.ID == ev.ID {
		t.Error("two events share an id")
	}
	if other.Data != nil || other.DataContentType != "" {
		t.Errorf("nil data produced %q / %q", other.Data, other.DataContentType)
	}
	if err := other.Decode(&p); err == nil {
		t.Error("Decode of an event without data succeeded")
	}
}

func TestNewRejectsBadTokens(t *testing.T) {
	for _, parts := range [][3]string{
		{"", "project", "created"},
		{"projects", "pro.ject", "created"},
		{"projects", "project", "*"},
		{"projects", "project", ">"},
		{"pro jects", "project", "created"},
	} {
		if _, err := New(parts[0], parts[1], parts[2], "x", nil); err == nil {
			t.Errorf("New(%q, %q, %q) succeeded", parts[0], parts[1], parts[2])
		}
	}
	if _, err := New("projects", "project", "created", "x", func() {}); err == nil {
		t.Error("New with unmarshalable data succeeded")
	}
}

func TestSubjectFor(t *testing.T) {
	if got := SubjectFor("projects", "*", ">"); got != "slipway.projects.*.>" {
		t.Errorf("SubjectFor = %q", got)
	}
}

func TestEnsureStream(t *testing.T) {
	_, js := startNATS(t) // already ensured once
	ctx, cancel := context.WithTimeout(t.Context(), eventually)
	defer cancel()
	if err := EnsureStream(ctx, js); err != nil {
		t.Fatalf("second EnsureStream: %v", err)
	}
	s, err := js.Stream(ctx, StreamName)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	if len(cfg.Subjects) != 1 || cfg.Subjects[0] != "slipway.>" || cfg.Storage != jetstream.FileStorage ||
		cfg.Duplicates < time.Hour || cfg.MaxAge != 7*24*time.Hour {
		t.Errorf("stream config: subjects %v storage %v duplicates %v max age %v",
			cfg.Subjects, cfg.Storage, cfg.Duplicates, cfg.MaxAge)
	}
}
