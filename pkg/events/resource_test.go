package events

import (
	"testing"

	"github.com/nats-io/nats-server/v2/server"
)

func TestProjectResourceRoundTrip(t *testing.T) {
	want := ProjectResource{TeamID: "acme", ProjectID: "web", Kind: ResourceJob, ID: "nightly", Name: "Nightly", Type: "cron"}
	for _, verb := range []ResourceVerb{ResourceCreated, ResourceUpdated, ResourceDeleted} {
		ev, err := NewProjectResource("jobs", verb, want)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Type != "slipway.jobs.resource."+string(verb) || ev.Subject != "acme/web/job/nightly" {
			t.Errorf("%s: type %q subject %q", verb, ev.Type, ev.Subject)
		}
		matched := false
		for _, filter := range ProjectResourceSubjects() {
			matched = matched || server.SubjectMatchesFilter(ev.NATSSubject(), filter)
		}
		if !matched {
			t.Errorf("%s is not selected by %v", ev.NATSSubject(), ProjectResourceSubjects())
		}
		gotVerb, got, ok, err := ParseProjectResource(ev)
		if err != nil || !ok || gotVerb != verb || got != want {
			t.Errorf("parse %s = %s %+v %v %v", ev.Type, gotVerb, got, ok, err)
		}
	}
}

// TestSecretGroupIsAProjectResource: secret groups are reported like
// the other kinds, so a project lists them and keeps them from being
// deleted under it.
func TestSecretGroupIsAProjectResource(t *testing.T) {
	want := ProjectResource{TeamID: "acme", ProjectID: "web", Kind: ResourceSecret, ID: "db-creds", Name: "DB creds", Type: "secret"}
	ev, err := NewProjectResource("addons", ResourceCreated, want)
	if err != nil {
		t.Fatal(err)
	}
	if _, got, ok, err := ParseProjectResource(ev); err != nil || !ok || got != want {
		t.Fatalf("parse = %+v %v %v", got, ok, err)
	}
}

func TestProjectResourceRejects(t *testing.T) {
	good := ProjectResource{TeamID: "acme", ProjectID: "web", Kind: ResourceAddon, ID: "db"}
	if _, err := NewProjectResource("addons", "renamed", good); err == nil {
		t.Error("an unknown verb was accepted")
	}
	for name, r := range map[string]ProjectResource{
		"no team":      {ProjectID: "web", Kind: ResourceJob, ID: "x"},
		"no project":   {TeamID: "acme", Kind: ResourceJob, ID: "x"},
		"no id":        {TeamID: "acme", ProjectID: "web", Kind: ResourceJob},
		"unknown kind": {TeamID: "acme", ProjectID: "web", Kind: "volume", ID: "x"},
		"no kind":      {TeamID: "acme", ProjectID: "web", ID: "x"},
	} {
		if _, err := NewProjectResource("jobs", ResourceCreated, r); err == nil {
			t.Errorf("%s: accepted", name)
		}
		// The same data arriving from elsewhere is skipped, not retried.
		ev, err := New("jobs", "resource", "created", "x", r)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, ok, err := ParseProjectResource(ev); ok || err != nil {
			t.Errorf("%s: parse ok=%v err=%v, want skipped", name, ok, err)
		}
	}
	// Other events are not project-resource events.
	for _, typ := range [][3]string{{"jobs", "job", "created"}, {"jobs", "resource", "started"}} {
		ev, err := New(typ[0], typ[1], typ[2], "x", good)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, ok, err := ParseProjectResource(ev); ok || err != nil {
			t.Errorf("%s: parse ok=%v err=%v", ev.Type, ok, err)
		}
	}
	ev, err := New("jobs", "resource", "created", "x", []int{1})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := ParseProjectResource(ev); err == nil {
		t.Error("data of the wrong shape parsed")
	}
}
