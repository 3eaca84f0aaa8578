// Package storetest is the contract of projects.Store written as tests:
// every implementation runs the same suite (OpenFGA and SpiceDB keep their
// datastore tests the same way).
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pkg/paging"

	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/services/projects"
)

// Factory returns an empty, migrated store and a function counting the
// events committed to its outbox.
type Factory func(t *testing.T) (projects.Store, func() int)

// Run runs the whole suite against stores made by newStore.
func Run(t *testing.T, newStore Factory) {
	tests := map[string]func(*testing.T, projects.Store, func() int){
		"CreateGet":                 testCreateGet,
		"CreateDuplicate":           testCreateDuplicate,
		"GetMissing":                testGetMissing,
		"ListPages":                 testListPages,
		"UpdateAndEvents":           testUpdate,
		"UpdateMutateError":         testUpdateMutateError,
		"ConcurrentUpdatesLoseNone": testConcurrentUpdates,
		"DeleteRules":               testDelete,
		"Resources":                 testResources,
		"TeamsAreIsolated":          testTeams,
	}
	for name, test := range tests {
		t.Run(name, func(t *testing.T) {
			s, outbox := newStore(t)
			test(t, s, outbox)
		})
	}
}

// team is the team most tests work in.
const team = "acme"

func project(id string) projects.Project {
	now := time.Now().UTC().Truncate(time.Millisecond)
	return projects.Project{TeamID: team, ID: id, Name: id, Description: "d " + id, Color: "#000000", Region: "local", CreatedAt: now, UpdatedAt: now}
}

func event(t *testing.T, verb, id string) events.Event {
	t.Helper()
	ev, err := events.New("projects", "project", verb, id, map[string]string{"id": id})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func testCreateGet(t *testing.T, s projects.Store, outbox func() int) {
	ctx := context.Background()
	want := project("alpha")
	if err := s.Create(ctx, want, event(t, "created", "alpha")); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, team, "alpha")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != want.ID || got.Name != want.Name || got.Description != want.Description || got.Color != want.Color ||
		got.Region != want.Region || !got.CreatedAt.Equal(want.CreatedAt) || !got.UpdatedAt.Equal(want.UpdatedAt) || got.Version != 1 {
		t.Fatalf("Get = %+v, want %+v (version 1)", got, want)
	}
	if n := outbox(); n != 1 {
		t.Fatalf("outbox has %d events, want 1", n)
	}
}

func testCreateDuplicate(t *testing.T, s projects.Store, outbox func() int) {
	ctx := context.Background()
	if err := s.Create(ctx, project("dup"), event(t, "created", "dup")); err != nil {
		t.Fatal(err)
	}
	err := s.Create(ctx, project("dup"), event(t, "created", "dup"))
	if !errors.Is(err, projects.ErrAlreadyExists) {
		t.Fatalf("second Create = %v, want ErrAlreadyExists", err)
	}
	if n := outbox(); n != 1 {
		t.Fatalf("failed create left %d events, want 1 (no phantom event)", n)
	}
}

func testGetMissing(t *testing.T, s projects.Store, _ func() int) {
	if _, err := s.Get(context.Background(), team, "nope"); !errors.Is(err, projects.ErrNotFound) {
		t.Fatalf("Get = %v, want ErrNotFound", err)
	}
}

func testListPages(t *testing.T, s projects.Store, _ func() int) {
	ctx := context.Background()
	for i := range 25 {
		if err := s.Create(ctx, project(fmt.Sprintf("p-%02d", i))); err != nil {
			t.Fatal(err)
		}
	}
	// Keyset paging visits every project once, in id order; every page
	// counts the whole list, the ones before its cursor included.
	var seen []string
	page := projects.Page{Page: paging.Page{Limit: 10}}
	for round := 0; ; round++ {
		list, more, total, err := s.List(ctx, team, page)
		if err != nil {
			t.Fatal(err)
		}
		if total != 25 {
			t.Fatalf("page %d: total = %d, want 25", round, total)
		}
		for _, p := range list {
			seen = append(seen, p.ID)
		}
		if !more {
			break
		}
		if round > 5 {
			t.Fatal("paging does not end")
		}
		page.After = list[len(list)-1].ID
	}
	if len(seen) != 25 {
		t.Fatalf("paged through %d projects, want 25", len(seen))
	}
	for i, id := range seen {
		if want := fmt.Sprintf("p-%02d", i); id != want {
			t.Fatalf("position %d = %s, want %s", i, id, want)
		}
	}
	// Offset paging.
	list, more, total, err := s.List(ctx, team, projects.Page{Page: paging.Page{Offset: 20, Limit: 10}})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 5 || more || list[0].ID != "p-20" || total != 25 {
		t.Fatalf("offset page = %d items (first %v), more=%v, total=%d; want 5 from p-20, no more, 25", len(list), list[0].ID, more, total)
	}
	list, more, total, err = s.List(ctx, team, projects.Page{Page: paging.Page{Limit: 25}})
	if err != nil || len(list) != 25 || more || total != 25 {
		t.Fatalf("exact page = %d items, more=%v, total=%d, err=%v; want 25, false, 25", len(list), more, total, err)
	}
	// Past the end: no items, the same total.
	if list, _, total, err := s.List(ctx, team, projects.Page{Page: paging.Page{Offset: 40, Limit: 10}}); err != nil || len(list) != 0 || total != 25 {
		t.Fatalf("page past the end = %d items, total=%d, err=%v; want 0, 25", len(list), total, err)
	}
}

func testUpdate(t *testing.T, s projects.Store, outbox func() int) {
	ctx := context.Background()
	if err := s.Create(ctx, project("upd"), event(t, "created", "upd")); err != nil {
		t.Fatal(err)
	}
	got, err := s.Update(ctx, team, "upd", func(p *projects.Project) ([]events.Event, error) {
		p.Description = "new"
		return []events.Event{event(t, "updated", "upd")}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.Description != "new" || got.Version != 2 {
		t.Fatalf("Update = %+v, want description new, version 2", got)
	}
	if again, _ := s.Get(ctx, team, "upd"); again.Description != "new" || again.Version != 2 {
		t.Fatalf("Get after Update = %+v", again)
	}
	if n := outbox(); n != 2 {
		t.Fatalf("outbox has %d events, want 2", n)
	}
	same, err := s.Update(ctx, team, "upd", func(*projects.Project) ([]events.Event, error) { return nil, nil })
	if err != nil || same.Version != 2 {
		t.Fatalf("no-op Update = %+v, %v; want version 2 unchanged", same, err)
	}
	if n := outbox(); n != 2 {
		t.Fatalf("no-op update wrote events: outbox has %d", n)
	}
	if _, err := s.Update(ctx, team, "missing", func(*projects.Project) ([]events.Event, error) { return nil, nil }); !errors.Is(err, projects.ErrNotFound) {
		t.Fatalf("Update(missing) = %v, want ErrNotFound", err)
	}
}

func testUpdateMutateError(t *testing.T, s projects.Store, outbox func() int) {
	ctx := context.Background()
	if err := s.Create(ctx, project("bad")); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	_, err := s.Update(ctx, team, "bad", func(p *projects.Project) ([]events.Event, error) {
		p.Description = "should not persist"
		return nil, boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want mutate's error", err)
	}
	if got, _ := s.Get(ctx, team, "bad"); got.Description == "should not persist" || got.Version != 1 {
		t.Fatalf("failed Update changed the project: %+v", got)
	}
	if n := outbox(); n != 0 {
		t.Fatalf("failed update left %d events", n)
	}
}

// testConcurrentUpdates races writers on different fields of one project:
// with optimistic concurrency every write lands and none is lost.
func testConcurrentUpdates(t *testing.T, s projects.Store, outbox func() int) {
	ctx := context.Background()
	if err := s.Create(ctx, project("race")); err != nil {
		t.Fatal(err)
	}
	const writers, writes = 4, 10
	var wg sync.WaitGroup
	errs := make(chan error, writers*writes)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range writes {
				_, err := s.Update(ctx, team, "race", func(p *projects.Project) ([]events.Event, error) {
					// Each writer appends its own mark: a lost update would
					// drop another writer's mark.
					p.Description += fmt.Sprintf("[%d.%d]", w, i)
					return []events.Event{event(t, "updated", "race")}, nil
				})
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent Update: %v", err)
	}
	got, err := s.Get(ctx, team, "race")
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 1+writers*writes {
		t.Fatalf("version = %d, want %d", got.Version, 1+writers*writes)
	}
	for w := range writers {
		for i := range writes {
			if mark := fmt.Sprintf("[%d.%d]", w, i); !contains(got.Description, mark) {
				t.Fatalf("update %s was lost: %q", mark, got.Description)
			}
		}
	}
	if n := outbox(); n != writers*writes {
		t.Fatalf("outbox has %d events, want %d (one per committed update)", n, writers*writes)
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

func testDelete(t *testing.T, s projects.Store, outbox func() int) {
	ctx := context.Background()
	if err := s.Create(ctx, project("del")); err != nil {
		t.Fatal(err)
	}
	if err := s.PutResource(ctx, projects.Resource{TeamID: team, ProjectID: "del", Kind: projects.KindJob, ID: "j", Name: "J", Type: "manual"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, team, "del", false, event(t, "deleted", "del")); !errors.Is(err, projects.ErrNotEmpty) {
		t.Fatalf("Delete(non-empty) = %v, want ErrNotEmpty", err)
	}
	if n := outbox(); n != 0 {
		t.Fatalf("refused delete left %d events", n)
	}
	if err := s.Delete(ctx, team, "del", true, event(t, "deleted", "del")); err != nil {
		t.Fatalf("Delete(force) = %v", err)
	}
	if _, err := s.Get(ctx, team, "del"); !errors.Is(err, projects.ErrNotFound) {
		t.Fatalf("Get after Delete = %v, want ErrNotFound", err)
	}
	if rs, err := s.Resources(ctx, team, "del"); err != nil || len(rs) != 0 {
		t.Fatalf("resources after delete = %v, %v", rs, err)
	}
	if err := s.Delete(ctx, team, "del", true); !errors.Is(err, projects.ErrNotFound) {
		t.Fatalf("Delete(missing) = %v, want ErrNotFound", err)
	}
	if n := outbox(); n != 1 {
		t.Fatalf("outbox has %d events, want 1", n)
	}
}

func testResources(t *testing.T, s projects.Store, _ func() int) {
	ctx := context.Background()
	if err := s.Create(ctx, project("res")); err != nil {
		t.Fatal(err)
	}
	put := func(r projects.Resource) {
		t.Helper()
		if err := s.PutResource(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	put(projects.Resource{TeamID: team, ProjectID: "res", Kind: projects.KindService, ID: "web", Name: "Web", Type: "combined"})
	put(projects.Resource{TeamID: team, ProjectID: "res", Kind: projects.KindAddon, ID: "db", Name: "DB", Type: "postgresql"})
	put(projects.Resource{TeamID: team, ProjectID: "res", Kind: projects.KindService, ID: "web", Name: "Web 2", Type: "deployment"}) // upsert
	put(projects.Resource{TeamID: team, ProjectID: "ghost", Kind: projects.KindJob, ID: "j", Name: "J"})                             // unknown project: ignored
	rs, err := s.Resources(ctx, team, "res")
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[0].Kind != projects.KindAddon || rs[1].Name != "Web 2" || rs[1].Type != "deployment" {
		t.Fatalf("Resources = %+v", rs)
	}
	if rs, _ := s.Resources(ctx, team, "ghost"); len(rs) != 0 {
		t.Fatalf("resource recorded for a missing project: %+v", rs)
	}
	// GetWithResources reads the same in one go.
	p, withRs, err := s.GetWithResources(ctx, team, "res")
	if want, _ := s.Get(ctx, team, "res"); err != nil || p != want || !reflect.DeepEqual(withRs, rs) {
		t.Fatalf("GetWithResources = %+v, %+v, %v; want %+v, %+v", p, withRs, err, want, rs)
	}
	if _, _, err := s.GetWithResources(ctx, team, "ghost"); !errors.Is(err, projects.ErrNotFound) {
		t.Fatalf("GetWithResources(missing) = %v, want ErrNotFound", err)
	}
	if err := s.Create(ctx, project("bare")); err != nil {
		t.Fatal(err)
	}
	if p, rs, err := s.GetWithResources(ctx, team, "bare"); err != nil || p.ID != "bare" || len(rs) != 0 {
		t.Fatalf("GetWithResources(bare) = %+v, %+v, %v", p, rs, err)
	}
	if err := s.DeleteResource(ctx, team, "res", projects.KindService, "web"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteResource(ctx, team, "res", projects.KindService, "web"); err != nil {
		t.Fatalf("second DeleteResource = %v, want idempotent", err)
	}
	if rs, _ := s.Resources(ctx, team, "res"); len(rs) != 1 || rs[0].ID != "db" {
		t.Fatalf("Resources after delete = %+v", rs)
	}
}

// testTeams: the same id in two teams is two projects, and nothing of one
// team is visible, changeable or deletable through the other.
func testTeams(t *testing.T, s projects.Store, _ func() int) {
	ctx := context.Background()
	mine, theirs := project("shared"), project("shared")
	theirs.TeamID, theirs.Description = "globex", "theirs"
	for _, p := range []projects.Project{mine, theirs, project("other")} {
		if err := s.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := s.Get(ctx, "globex", "shared"); err != nil || got.Description != "theirs" {
		t.Fatalf("Get(globex) = %+v, %v", got, err)
	}
	if _, err := s.Get(ctx, "globex", "other"); !errors.Is(err, projects.ErrNotFound) {
		t.Fatalf("another team's project: %v, want ErrNotFound", err)
	}
	if _, err := s.Update(ctx, "globex", "other", func(*projects.Project) ([]events.Event, error) { return nil, nil }); !errors.Is(err, projects.ErrNotFound) {
		t.Fatalf("Update across teams: %v", err)
	}
	if err := s.Delete(ctx, "globex", "other", true); !errors.Is(err, projects.ErrNotFound) {
		t.Fatalf("Delete across teams: %v", err)
	}
	if err := s.PutResource(ctx, projects.Resource{TeamID: "globex", ProjectID: "other", Kind: projects.KindJob, ID: "j"}); err != nil {
		t.Fatal(err)
	}
	if rs, _ := s.Resources(ctx, team, "other"); len(rs) != 0 {
		t.Fatalf("a resource reported for another team's project landed here: %+v", rs)
	}
	list, _, total, err := s.List(ctx, "globex", projects.Page{Page: paging.Page{Limit: 10}})
	if err != nil || len(list) != 1 || list[0].Description != "theirs" || total != 1 {
		t.Fatalf("List(globex) = %+v, total %d, %v", list, total, err)
	}
	// The total counts what the token may see, as the page does.
	list, _, total, err = s.List(ctx, team, projects.Page{Page: paging.Page{Limit: 10}, Only: []string{"other", "missing"}})
	if err != nil || len(list) != 1 || list[0].ID != "other" || total != 1 {
		t.Fatalf("List restricted = %+v, total %d, %v", list, total, err)
	}
}
