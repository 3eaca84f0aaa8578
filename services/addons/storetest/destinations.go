package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/paging"
	"github.com/slipwayhq/slipway/services/addons"
)

// DestinationFactory returns an empty, migrated DestinationStore and a
// function counting the events committed to its outbox.
type DestinationFactory func(t *testing.T) (addons.DestinationStore, func() int)

// RunDestinations runs the DestinationStore contract against stores made
// by newStore.
func RunDestinations(t *testing.T, newStore DestinationFactory) {
	tests := map[string]func(*testing.T, addons.DestinationStore, func() int){
		"CreateGet":                 testDestinationCreateGet,
		"CreateDuplicate":           testDestinationDuplicate,
		"GetMissing":                testDestinationMissing,
		"ListPages":                 testDestinationListPages,
		"UpdateAndEvents":           testDestinationUpdate,
		"UpdateMutateError":         testDestinationUpdateMutateError,
		"ConcurrentUpdatesLoseNone": testDestinationConcurrentUpdates,
		"Delete":                    testDestinationDelete,
		"TeamsAreIsolated":          testDestinationTeams,
	}
	for name, test := range tests {
		t.Run(name, func(t *testing.T) {
			s, outbox := newStore(t)
			test(t, s, outbox)
		})
	}
}

const destinationTeam = "acme"

func destination(team, id string) addons.Destination {
	now := time.Now().UTC().Truncate(time.Millisecond)
	return addons.Destination{
		TeamID: team, ID: id, Name: "Dest " + id, Description: "d " + id, Type: addons.DestinationTypeS3, Prefix: "backups/" + id,
		Credentials: addons.DestinationCredentials{AccessKey: "AK" + id, SecretKey: "secret-" + id, Bucket: "bucket", Region: "eu-west-1", Endpoint: "http://127.0.0.1:9000"},
		CreatedAt:   now, UpdatedAt: now,
	}
}

func destinationEvent(t *testing.T, verb, id string) events.Event {
	t.Helper()
	ev, err := events.New("addons", "backupdestination", verb, id, map[string]string{"id": id})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func testDestinationCreateGet(t *testing.T, s addons.DestinationStore, outbox func() int) {
	ctx := context.Background()
	d := destination(destinationTeam, "s3-main")
	if err := s.Create(ctx, d, destinationEvent(t, "created", d.ID)); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, destinationTeam, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	d.Version = got.Version
	if got != d || got.Version < 1 {
		t.Fatalf("Get = %+v, want %+v", got, d)
	}
	if n := outbox(); n != 1 {
		t.Fatalf("outbox holds %d events, want 1", n)
	}
}

func testDestinationDuplicate(t *testing.T, s addons.DestinationStore, outbox func() int) {
	ctx := context.Background()
	d := destination(destinationTeam, "dup")
	if err := s.Create(ctx, d, destinationEvent(t, "created", d.ID)); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, d, destinationEvent(t, "created", d.ID)); !errors.Is(err, apierr.ErrAlreadyExists) {
		t.Fatalf("second Create: %v, want ErrAlreadyExists", err)
	}
	if n := outbox(); n != 1 {
		t.Fatalf("the refused Create left an event: %d", n)
	}
}

func testDestinationMissing(t *testing.T, s addons.DestinationStore, _ func() int) {
	ctx := context.Background()
	if _, err := s.Get(ctx, destinationTeam, "nope"); !errors.Is(err, apierr.ErrNotFound) {
		t.Fatalf("Get: %v", err)
	}
	if _, err := s.Update(ctx, destinationTeam, "nope", func(*addons.Destination) ([]events.Event, error) { return nil, nil }); !errors.Is(err, apierr.ErrNotFound) {
		t.Fatalf("Update: %v", err)
	}
	if err := s.Delete(ctx, destinationTeam, "nope"); !errors.Is(err, apierr.ErrNotFound) {
		t.Fatalf("Delete: %v", err)
	}
}

func testDestinationListPages(t *testing.T, s addons.DestinationStore, _ func() int) {
	ctx := context.Background()
	for i := 5; i >= 1; i-- {
		if err := s.Create(ctx, destination(destinationTeam, fmt.Sprintf("d%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	var ids []string
	after := ""
	for range 10 {
		page, more, total, err := s.List(ctx, destinationTeam, paging.Page{After: after, Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		if total != 5 {
			t.Fatalf("page after %q: total = %d, want 5", after, total)
		}
		for _, d := range page {
			ids = append(ids, d.ID)
			if d.Credentials.SecretKey != "secret-"+d.ID {
				t.Fatalf("List returned %s without its credentials", d.ID)
			}
		}
		if !more {
			break
		}
		after = page[len(page)-1].ID
	}
	if fmt.Sprint(ids) != "[d1 d2 d3 d4 d5]" {
		t.Fatalf("pages = %v", ids)
	}
	page, more, total, err := s.List(ctx, destinationTeam, paging.Page{Offset: 4, Limit: 2})
	if err != nil || more || len(page) != 1 || page[0].ID != "d5" || total != 5 {
		t.Fatalf("offset page = %+v %v total %d %v", page, more, total, err)
	}
	if page, _, total, err := s.List(ctx, "nobody", paging.Page{Limit: 2}); err != nil || len(page) != 0 || total != 0 {
		t.Fatalf("another team's list = %+v total %d %v", page, total, err)
	}
}

func testDestinationUpdate(t *testing.T, s addons.DestinationStore, outbox func() int) {
	ctx := context.Background()
	d := destination(destinationTeam, "upd")
	if err := s.Create(ctx, d); err != nil {
		t.Fatal(err)
	}
	got, err := s.Update(ctx, destinationTeam, d.ID, func(d *addons.Destination) ([]events.Event, error) {
		d.Name = "Renamed"
		d.Credentials.SecretKey = "rotated"
		return []events.Event{destinationEvent(t, "updated", d.ID)}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	again, err := s.Get(ctx, destinationTeam, d.ID)
	if err != nil || again != got || again.Name != "Renamed" || again.Credentials.SecretKey != "rotated" || again.Version != 2 {
		t.Fatalf("after Update: %+v (returned %+v), %v", again, got, err)
	}
	if n := outbox(); n != 1 {
		t.Fatalf("outbox = %d, want 1", n)
	}
	// An update that changes nothing writes nothing.
	same, err := s.Update(ctx, destinationTeam, d.ID, func(*addons.Destination) ([]events.Event, error) {
		return []events.Event{destinationEvent(t, "updated", d.ID)}, nil
	})
	if err != nil || same.Version != 2 || outbox() != 1 {
		t.Fatalf("no-op Update: version %d, outbox %d, %v", same.Version, outbox(), err)
	}
}

func testDestinationUpdateMutateError(t *testing.T, s addons.DestinationStore, outbox func() int) {
	ctx := context.Background()
	d := destination(destinationTeam, "err")
	if err := s.Create(ctx, d); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("refused")
	if _, err := s.Update(ctx, destinationTeam, d.ID, func(d *addons.Destination) ([]events.Event, error) {
		d.Name = "changed"
		return nil, boom
	}); !errors.Is(err, boom) {
		t.Fatalf("Update: %v", err)
	}
	if got, _ := s.Get(ctx, destinationTeam, d.ID); got.Name != d.Name {
		t.Fatalf("a refused Update was written: %+v", got)
	}
}

func testDestinationConcurrentUpdates(t *testing.T, s addons.DestinationStore, _ func() int) {
	ctx := context.Background()
	d := destination(destinationTeam, "race")
	d.Description = ""
	if err := s.Create(ctx, d); err != nil {
		t.Fatal(err)
	}
	const writers = 8
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Update(ctx, destinationTeam, d.ID, func(d *addons.Destination) ([]events.Event, error) {
				d.Description += fmt.Sprint(i % 10)
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
	got, err := s.Get(ctx, destinationTeam, d.ID)
	if err != nil || len(got.Description) != writers || got.Version != writers+1 {
		t.Fatalf("after %d concurrent updates: %q version %d, %v", writers, got.Description, got.Version, err)
	}
}

func testDestinationDelete(t *testing.T, s addons.DestinationStore, outbox func() int) {
	ctx := context.Background()
	d := destination(destinationTeam, "gone")
	if err := s.Create(ctx, d); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, destinationTeam, d.ID, destinationEvent(t, "deleted", d.ID)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, destinationTeam, d.ID); !errors.Is(err, apierr.ErrNotFound) {
		t.Fatalf("Get after Delete: %v", err)
	}
	if n := outbox(); n != 1 {
		t.Fatalf("outbox = %d", n)
	}
	// The id is free again.
	if err := s.Create(ctx, d); err != nil {
		t.Fatalf("re-create: %v", err)
	}
}

func testDestinationTeams(t *testing.T, s addons.DestinationStore, _ func() int) {
	ctx := context.Background()
	for _, team := range []string{"acme", "globex"} {
		if err := s.Create(ctx, destination(team, "shared")); err != nil {
			t.Fatalf("%s: %v", team, err)
		}
	}
	if _, err := s.Update(ctx, "globex", "shared", func(d *addons.Destination) ([]events.Event, error) {
		d.Name = "Globex's"
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get(ctx, "acme", "shared"); got.Name != "Dest shared" || got.TeamID != "acme" {
		t.Fatalf("acme's destination changed by globex's update: %+v", got)
	}
	if err := s.Delete(ctx, "globex", "shared"); err != nil {
		t.Fatal(err)
	}
	list, _, _, err := s.List(ctx, "acme", paging.Page{Limit: 10})
	if err != nil || len(list) != 1 || list[0].TeamID != "acme" {
		t.Fatalf("acme's list = %+v, %v", list, err)
	}
	if list, _, _, _ := s.List(ctx, "globex", paging.Page{Limit: 10}); len(list) != 0 {
		t.Fatalf("globex's list = %+v", list)
	}
}
