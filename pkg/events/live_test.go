package events

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// crafted are ids a caller might smuggle into a live subject to reach
// another subject, a wildcard or the stream.
var crafted = []string{
	"web", "", ".", "*", ">", "a.b", "a.*", "a.>", "slipway.x", "%", "%2E", " ", "a b", "\t", "é", "a\x00b",
}

func TestLiveSubjectsNeverInTheStream(t *testing.T) {
	for _, service := range []string{"jobs", "builds", "x"} {
		for _, a := range crafted {
			for _, b := range crafted {
				subj := LiveSubject(service, a, b)
				if !server.IsValidLiteralSubject(subj) {
					t.Errorf("LiveSubject(%q, %q, %q) = %q is not a valid literal subject", service, a, b, subj)
				}
				if n := strings.Count(subj, "."); n != 3 {
					t.Errorf("LiveSubject(%q, %q, %q) = %q has %d dots, want 3", service, a, b, subj, n)
				}
				for _, filter := range StreamSubjects() {
					if server.SubjectsCollide(subj, filter) {
						t.Errorf("live subject %q is captured by the stream filter %q", subj, filter)
					}
				}
			}
		}
	}
	// The lifecycle subjects, on the other hand, are all captured.
	for _, filter := range StreamSubjects() {
		if !server.SubjectMatchesFilter(SubjectFor("jobs", "run", "started"), filter) {
			t.Errorf("stream filter %q misses lifecycle events", filter)
		}
	}
}

func TestLiveSubjectEscapesInjectively(t *testing.T) {
	seen := map[string]string{}
	for _, id := range crafted {
		subj := LiveSubject("jobs", "logs", id)
		if prev, ok := seen[subj]; ok {
			t.Errorf("ids %q and %q share the subject %q", prev, id, subj)
		}
		seen[subj] = id
	}
	if got := LiveSubject("jobs", "logs", "acme", "my-app_2"); got != "slipway-live.jobs.logs.acme.my-app_2" {
		t.Errorf("plain ids are escaped: %q", got)
	}
	if got := LiveSubject("jobs", "a.b", "*", ">"); got != "slipway-live.jobs.a%2Eb.%2A.%3E" {
		t.Errorf("crafted ids: %q", got)
	}
}

func TestLiveSubjectRejectsABadService(t *testing.T) {
	for _, service := range []string{"", "a.b", "*", ">"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("LiveSubject(%q) did not panic", service)
				}
			}()
			LiveSubject(service)
		}()
	}
}

// TestLiveMessagesStayOutOfTheStream checks the same on a real server: a
// message on a live subject is delivered to a subscriber but not stored.
func TestLiveMessagesStayOutOfTheStream(t *testing.T) {
	_, js := startNATS(t)
	ctx := t.Context()
	if err := EnsureStream(ctx, js); err != nil {
		t.Fatal(err)
	}
	nc := js.Conn()
	subj := LiveSubject("jobs", "logs", "acme", "web", "nightly")
	sub, err := nc.SubscribeSync(subj)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish(subj, []byte("password=hunter2")); err != nil {
		t.Fatal(err)
	}
	if _, err := sub.NextMsg(5 * time.Second); err != nil {
		t.Fatalf("the live message did not arrive: %v", err)
	}
	s, err := js.Stream(ctx, StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 0 {
		t.Errorf("the stream holds %d messages after a live publish, want 0", info.State.Msgs)
	}
}
