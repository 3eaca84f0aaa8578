package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/paging"
	"github.com/slipwayhq/slipway/services/addons"
)

// SecretFactory returns an empty, migrated SecretStore and a function
// counting the events committed to its outbox.
type SecretFactory func(t *testing.T) (addons.SecretStore, func() int)

// RunSecrets runs the SecretStore suite against stores made by newStore.
func RunSecrets(t *testing.T, newStore SecretFactory) {
	tests := map[string]func(*testing.T, addons.SecretStore, func() int){
		"GroupRoundTrip":        testSecretGroupRoundTrip,
		"GroupDuplicate":        testSecretGroupDuplicate,
		"GroupMissing":          testSecretGroupMissing,
		"GroupIsolation":        testSecretGroupIsolation,
		"GroupListPages":        testSecretGroupList,
		"GroupUpdateAndEvents":  testSecretGroupUpdate,
		"GroupUpdateMutateErr":  testSecretGroupMutateError,
		"GroupConcurrentUpdate": testSecretGroupConcurrent,
		"GroupDelete":           testSecretGroupDelete,
		"GlobalLifecycle":       testSecretGlobalLifecycle,
	}
	for name, test := range tests {
		t.Run(name, func(t *testing.T) {
			s, outbox := newStore(t)
			test(t, s, outbox)
		})
	}
}

var secretAt = time.Date(2026, 12, 5, 7, 0, 0, 0, time.UTC)

func secretEvent(t *testing.T, verb, id string) events.Event {
	t.Helper()
	ev, err := events.New("addons", "secret", verb, id, map[string]string{"id": id})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// group is a full secret group: every field set.
func secretGroupFixture(team, project, id string) addons.SecretGroup {
	return addons.SecretGroup{
		TeamID: team, ProjectID: project, ID: id, Name: id, Description: "d", Tags: []string{"a", "b"},
		Type: "secret", SecretType: "environment", Priority: 10,
		Restrictions: addons.SecretRestrictions{Restricted: true, Objects: []addons.SecretObject{{ID: "web", Type: "service"}},
			Tags: []string{"db"}, TagMatch: "and"},
		Addons:    []addons.SecretAddonLink{{AddonID: "pg", Keys: []addons.SecretAddonKey{{Name: "HOST", Aliases: []string{"DB_HOST"}}, {Name: "PORT"}}}},
		Variables: map[string]string{"A": "1", "B": ""},
		Files:     map[string]addons.SecretFileValue{"/etc-app/x.conf": {Data: "eA==", Encoding: "utf-8"}},
		CreatedAt: secretAt, UpdatedAt: secretAt,
	}
}

func testSecretGroupRoundTrip(t *testing.T, s addons.SecretStore, outbox func() int) {
	ctx := context.Background()
	want := secretGroupFixture("t1", "p1", "g1")
	if err := s.CreateSecretGroup(ctx, want, secretEvent(t, "created", "g1")); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetSecretGroup(ctx, "t1", "p1", "g1")
	if err != nil {
		t.Fatal(err)
	}
	want.Version = 1
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
	if outbox() != 1 {
		t.Fatalf("outbox has %d events, want 1", outbox())
	}
	// Empty collections read back as nil.
	bare := addons.SecretGroup{TeamID: "t1", ProjectID: "p1", ID: "bare", Name: "bare", Type: "config", SecretType: "arguments",
		Tags: []string{}, Variables: map[string]string{}, Addons: []addons.SecretAddonLink{}, CreatedAt: secretAt, UpdatedAt: secretAt}
	if err := s.CreateSecretGroup(ctx, bare); err != nil {
		t.Fatal(err)
	}
	got, err = s.GetSecretGroup(ctx, "t1", "p1", "bare")
	if err != nil {
		t.Fatal(err)
	}
	if got.Tags != nil || got.Variables != nil || got.Files != nil || got.Addons != nil || got.Restrictions.Objects != nil {
		t.Fatalf("empty collections read back as %+v", got)
	}
}

func testSecretGroupDuplicate(t *testing.T, s addons.SecretStore, outbox func() int) {
	ctx := context.Background()
	if err := s.CreateSecretGroup(ctx, secretGroupFixture("t1", "p1", "g1"), secretEvent(t, "created", "g1")); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSecretGroup(ctx, secretGroupFixture("t1", "p1", "g1"), secretEvent(t, "created", "g1")); !errors.Is(err, apierr.ErrAlreadyExists) {
		t.Fatalf("second create = %v, want ErrAlreadyExists", err)
	}
	if outbox() != 1 {
		t.Fatalf("a failed create left events: outbox %d", outbox())
	}
}

func testSecretGroupMissing(t *testing.T, s addons.SecretStore, _ func() int) {
	ctx := context.Background()
	if _, err := s.GetSecretGroup(ctx, "t1", "p1", "nope"); !errors.Is(err, apierr.ErrNotFound) {
		t.Fatalf("get = %v", err)
	}
	if _, err := s.UpdateSecretGroup(ctx, "t1", "p1", "nope", func(*addons.SecretGroup) ([]events.Event, error) { return nil, nil }); !errors.Is(err, apierr.ErrNotFound) {
		t.Fatalf("update = %v", err)
	}
	if err := s.DeleteSecretGroup(ctx, "t1", "p1", "nope"); !errors.Is(err, apierr.ErrNotFound) {
		t.Fatalf("delete = %v", err)
	}
}

func testSecretGroupIsolation(t *testing.T, s addons.SecretStore, _ func() int) {
	ctx := context.Background()
	for _, g := range []addons.SecretGroup{secretGroupFixture("t1", "p1", "g"), secretGroupFixture("t2", "p1", "g"), secretGroupFixture("t1", "p2", "g")} {
		g.Description = g.TeamID + "/" + g.ProjectID
		if err := s.CreateSecretGroup(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.GetSecretGroup(ctx, "t2", "p1", "g")
	if err != nil || got.Description != "t2/p1" {
		t.Fatalf("t2/p1/g = %+v, %v", got, err)
	}
	if err := s.DeleteSecretGroup(ctx, "t1", "p1", "g"); err != nil {
		t.Fatal(err)
	}
	for _, k := range [][2]string{{"t2", "p1"}, {"t1", "p2"}} {
		if _, err := s.GetSecretGroup(ctx, k[0], k[1], "g"); err != nil {
			t.Fatalf("deleting t1/p1/g touched %v: %v", k, err)
		}
	}
	list, err := s.ProjectSecretGroups(ctx, "t1", "p2")
	if err != nil || len(list) != 1 || list[0].TeamID != "t1" || list[0].ProjectID != "p2" {
		t.Fatalf("ProjectSecretGroups(t1, p2) = %+v, %v", list, err)
	}
}

func testSecretGroupList(t *testing.T, s addons.SecretStore, _ func() int) {
	ctx := context.Background()
	for i := range 5 {
		if err := s.CreateSecretGroup(ctx, secretGroupFixture("t1", "p1", fmt.Sprintf("g%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateSecretGroup(ctx, secretGroupFixture("t1", "other", "g9")); err != nil {
		t.Fatal(err)
	}
	// Every page counts the project's five groups (not the other
	// project's), wherever it starts.
	page, more, total, err := s.ListSecretGroups(ctx, "t1", "p1", paging.Page{Limit: 2})
	if err != nil || !more || len(page) != 2 || page[0].ID != "g0" || page[1].ID != "g1" || total != 5 {
		t.Fatalf("first page = %v %v total %d %v", secretIDs(page), more, total, err)
	}
	page, more, total, err = s.ListSecretGroups(ctx, "t1", "p1", paging.Page{After: "g1", Limit: 2})
	if err != nil || !more || len(page) != 2 || page[0].ID != "g2" || total != 5 {
		t.Fatalf("after g1 = %v %v total %d %v", secretIDs(page), more, total, err)
	}
	page, more, total, err = s.ListSecretGroups(ctx, "t1", "p1", paging.Page{Offset: 4, Limit: 2})
	if err != nil || more || len(page) != 1 || page[0].ID != "g4" || total != 5 {
		t.Fatalf("offset 4 = %v %v total %d %v", secretIDs(page), more, total, err)
	}
	if page[0].Variables["A"] != "1" {
		t.Fatalf("listed group lost its values: %+v", page[0])
	}
}

func secretIDs(gs []addons.SecretGroup) []string {
	out := []string{}
	for _, g := range gs {
		out = append(out, g.ID)
	}
	return out
}

func testSecretGroupUpdate(t *testing.T, s addons.SecretStore, outbox func() int) {
	ctx := context.Background()
	if err := s.CreateSecretGroup(ctx, secretGroupFixture("t1", "p1", "g1")); err != nil {
		t.Fatal(err)
	}
	got, err := s.UpdateSecretGroup(ctx, "t1", "p1", "g1", func(g *addons.SecretGroup) ([]events.Event, error) {
		g.Priority = 90
		g.Variables["C"] = "3"   // in place: the store hands a copy
		g.Addons[0].Keys = nil   // unlinks the keys, keeps the link
		g.ID, g.Version = "x", 7 // identity and version are the store's
		g.UpdatedAt = secretAt.Add(time.Hour)
		return []events.Event{secretEvent(t, "updated", "g1")}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != "g1" || got.Version != 2 || got.Priority != 90 || got.Variables["C"] != "3" {
		t.Fatalf("updated = %+v", got)
	}
	read, err := s.GetSecretGroup(ctx, "t1", "p1", "g1")
	if err != nil || !reflect.DeepEqual(read, got) {
		t.Fatalf("read back %+v, %v\nwant %+v", read, err, got)
	}
	if outbox() != 1 {
		t.Fatalf("outbox %d, want 1", outbox())
	}
	// A mutate that changes nothing writes nothing and drops its events.
	same, err := s.UpdateSecretGroup(ctx, "t1", "p1", "g1", func(g *addons.SecretGroup) ([]events.Event, error) {
		return []events.Event{secretEvent(t, "updated", "g1")}, nil
	})
	if err != nil || same.Version != 2 || outbox() != 1 {
		t.Fatalf("no-op update: version %d, outbox %d, %v", same.Version, outbox(), err)
	}
}

func testSecretGroupMutateError(t *testing.T, s addons.SecretStore, outbox func() int) {
	ctx := context.Background()
	if err := s.CreateSecretGroup(ctx, secretGroupFixture("t1", "p1", "g1")); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	if _, err := s.UpdateSecretGroup(ctx, "t1", "p1", "g1", func(g *addons.SecretGroup) ([]events.Event, error) {
		g.Priority = 1
		return nil, boom
	}); !errors.Is(err, boom) {
		t.Fatalf("update = %v", err)
	}
	if g, _ := s.GetSecretGroup(ctx, "t1", "p1", "g1"); g.Priority != 10 || outbox() != 0 {
		t.Fatalf("a failed mutate wrote: priority %d, outbox %d", g.Priority, outbox())
	}
}

func testSecretGroupConcurrent(t *testing.T, s addons.SecretStore, _ func() int) {
	ctx := context.Background()
	g := secretGroupFixture("t1", "p1", "g1")
	g.Variables = map[string]string{}
	if err := s.CreateSecretGroup(ctx, g); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.UpdateSecretGroup(ctx, "t1", "p1", "g1", func(g *addons.SecretGroup) ([]events.Event, error) {
				if g.Variables == nil {
					g.Variables = map[string]string{}
				}
				g.Variables[fmt.Sprintf("K%d", i)] = "v"
				return nil, nil
			})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.GetSecretGroup(ctx, "t1", "p1", "g1")
	if err != nil || len(got.Variables) != 8 || got.Version != 9 {
		t.Fatalf("after 8 concurrent updates: %d variables, version %d, %v", len(got.Variables), got.Version, err)
	}
}

func testSecretGroupDelete(t *testing.T, s addons.SecretStore, outbox func() int) {
	ctx := context.Background()
	if err := s.CreateSecretGroup(ctx, secretGroupFixture("t1", "p1", "g1")); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSecretGroup(ctx, "t1", "p1", "g1", secretEvent(t, "deleted", "g1")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSecretGroup(ctx, "t1", "p1", "g1"); !errors.Is(err, apierr.ErrNotFound) || outbox() != 1 {
		t.Fatalf("after delete: %v, outbox %d", err, outbox())
	}
	if err := s.DeleteSecretGroup(ctx, "t1", "p1", "g1", secretEvent(t, "deleted", "g1")); !errors.Is(err, apierr.ErrNotFound) || outbox() != 1 {
		t.Fatalf("second delete: %v, outbox %d", err, outbox())
	}
}

func testSecretGlobalLifecycle(t *testing.T, s addons.SecretStore, outbox func() int) {
	ctx := context.Background()
	want := addons.GlobalSecret{TeamID: "t1", ID: "api-keys", Name: "API keys", Description: "d", Type: "secret",
		Variables: map[string]string{"K": "v"}, Files: map[string]addons.SecretFileValue{"/k/f": {Data: "eA=="}}, CreatedAt: secretAt, UpdatedAt: secretAt}
	if err := s.CreateGlobalSecret(ctx, want, secretEvent(t, "created", "api-keys")); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateGlobalSecret(ctx, want); !errors.Is(err, apierr.ErrAlreadyExists) {
		t.Fatalf("duplicate = %v", err)
	}
	other := want
	other.TeamID = "t2"
	if err := s.CreateGlobalSecret(ctx, other); err != nil {
		t.Fatalf("same id in another team = %v", err)
	}
	got, err := s.GetGlobalSecret(ctx, "t1", "api-keys")
	want.Version = 1
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, %v\nwant %+v", got, err, want)
	}
	got, err = s.UpdateGlobalSecret(ctx, "t1", "api-keys", func(g *addons.GlobalSecret) ([]events.Event, error) {
		g.Variables["K"] = "w"
		g.Files = nil
		return []events.Event{secretEvent(t, "updated", "api-keys")}, nil
	})
	if err != nil || got.Variables["K"] != "w" || got.Files != nil || got.Version != 2 {
		t.Fatalf("update = %+v, %v", got, err)
	}
	if g, _ := s.GetGlobalSecret(ctx, "t2", "api-keys"); g.Variables["K"] != "v" {
		t.Fatal("updating t1's secret changed t2's")
	}
	page, more, total, err := s.ListGlobalSecrets(ctx, "t1", paging.Page{Limit: 10})
	if err != nil || more || len(page) != 1 || page[0].ID != "api-keys" || total != 1 {
		t.Fatalf("list = %+v %v total %d %v", page, more, total, err)
	}
	if err := s.DeleteGlobalSecret(ctx, "t1", "api-keys", secretEvent(t, "deleted", "api-keys")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetGlobalSecret(ctx, "t1", "api-keys"); !errors.Is(err, apierr.ErrNotFound) {
		t.Fatalf("after delete = %v", err)
	}
	if err := s.DeleteGlobalSecret(ctx, "t1", "api-keys"); !errors.Is(err, apierr.ErrNotFound) {
		t.Fatalf("second delete = %v", err)
	}
	if outbox() != 3 {
		t.Fatalf("outbox %d, want 3", outbox())
	}
	if _, err := s.UpdateGlobalSecret(ctx, "t1", "api-keys", func(*addons.GlobalSecret) ([]events.Event, error) { return nil, nil }); !errors.Is(err, apierr.ErrNotFound) {
		t.Fatalf("update missing = %v", err)
	}
}
