package webhook

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary bodies, as every provider's events, through
// Receive with a valid signature, so the parser itself is what is
// explored: it never panics, fails only with this package's errors, and
// what it accepts keeps the Event's promises. The seeds (every fixture
// under testdata, as every event) run in every `go test`; `go test -fuzz
// FuzzParse ./services/builds/webhook` explores.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no fixtures: %v", err)
	}
	for _, name := range files {
		body, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		for i := range fuzzEvents {
			f.Add(uint8(i), body)
		}
	}
	f.Add(uint8(0), []byte(`{"ref":"refs/heads/x","after":"`+strings.Repeat("0", 64)+`","repository":{}}`))
	f.Add(uint8(6), []byte(`{"object_attributes":{"iid":1,"source_branch":"a","target_branch":"b","state":"merged","last_commit":{"id":"`+strings.Repeat("a", 40)+`"}},"project":{}}`))
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		ev := fuzzEvents[int(which)%len(fuzzEvents)]
		e, err := Receive(headers(ev[0], ev[1], body, secret), body, secret)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupportedEvent) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("%s %s: unexpected error %v", ev[0], ev[1], err)
			}
			if e != nil {
				t.Fatalf("%s %s: an event with an error", ev[0], ev[1])
			}
			return
		}
		checkEvent(t, e)
	})
}

// fuzzEvents are the provider and event header pairs FuzzParse tries.
var fuzzEvents = [][2]string{
	{"github", "push"}, {"github", "pull_request"}, {"github", "ping"},
	{"gitea", "push"}, {"gitea", "pull_request"},
	{"gitlab", "Push Hook"}, {"gitlab", "Merge Request Hook"}, {"gitlab", "Tag Push Hook"},
}

// checkEvent fails t when e breaks a promise of Event's documentation.
func checkEvent(t *testing.T, e *Event) {
	t.Helper()
	if e.DeliveryID == "" {
		t.Fatal("no delivery id")
	}
	for _, u := range e.RepoURLs {
		if u == "" {
			t.Fatal("an empty repository URL")
		}
	}
	switch e.Kind {
	case Push:
		if e.PullRequest != nil || !strings.HasPrefix(e.Ref, "refs/") {
			t.Fatalf("push: pull request %v, ref %q", e.PullRequest, e.Ref)
		}
		if e.Branch != "" && e.Tag != "" {
			t.Fatalf("push to both branch %q and tag %q", e.Branch, e.Tag)
		}
		if e.Branch != "" && (e.Ref != "refs/heads/"+e.Branch || !validRefName(e.Branch)) {
			t.Fatalf("branch %q from ref %q", e.Branch, e.Ref)
		}
		if e.Deleted != (e.SHA == "") || (!e.Deleted && !validSHA(e.SHA)) {
			t.Fatalf("deleted %v with sha %q", e.Deleted, e.SHA)
		}
		if e.Before != "" && !validSHA(e.Before) {
			t.Fatalf("before %q", e.Before)
		}
	case PullRequest:
		pr := e.PullRequest
		if pr == nil || pr.ID <= 0 || !validSHA(pr.SHA) || e.SHA != pr.SHA || e.Branch != pr.Source {
			t.Fatalf("pull request %+v in event %+v", pr, e)
		}
		if !validRefName(pr.Source) || !validRefName(pr.Destination) || pr.HeadRef == "" {
			t.Fatalf("pull request branches %q → %q, head ref %q", pr.Source, pr.Destination, pr.HeadRef)
		}
		if pr.State != "open" && pr.State != "closed" && pr.State != "merged" {
			t.Fatalf("pull request state %q", pr.State)
		}
	case Ping:
		if e.PullRequest != nil || e.SHA != "" {
			t.Fatalf("ping with content: %+v", e)
		}
	default:
		t.Fatalf("kind %q", e.Kind)
	}
	for _, c := range e.Commits {
		if !validSHA(c.SHA) {
			t.Fatalf("commit id %q", c.SHA)
		}
	}
	paths := e.ChangedPaths()
	if (e.CommitsTruncated || len(e.Commits) == 0) && paths != nil {
		t.Fatalf("changed paths %q though the commits are not all listed", paths)
	}
	for _, p := range paths {
		if p == "" || strings.ContainsRune(p, 0) {
			t.Fatalf("changed path %q", p)
		}
	}
	if m := e.Messages(); e.HeadCommitMessage != "" && (len(m) == 0 || m[len(m)-1] != e.HeadCommitMessage) {
		t.Fatalf("messages %q do not end with the head commit's %q", m, e.HeadCommitMessage)
	}
}
