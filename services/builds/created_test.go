package builds_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/paging"
	"github.com/slipwayhq/slipway/pkg/sqldb"
	"github.com/slipwayhq/slipway/pkg/sqldb/sqltest"
	"github.com/slipwayhq/slipway/services/builds"
)

// TestCreatedCombinedServiceBuilds: a new combined service with CI on
// gets a build of its branch's head at once (trigger "create"), once even
// when the event is delivered again; a build service, a combined service
// with CI disabled and a service that is gone meanwhile get none.
func TestCreatedCombinedServiceBuilds(t *testing.T) {
	ctx := context.Background()
	key := func(id string) builds.ServiceKey {
		return builds.ServiceKey{TeamID: "acme", ProjectID: "web", Kind: builds.KindService, ServiceID: id}
	}
	src := func(id, kind string, disabledCI bool) builds.Source {
		return builds.Source{ServiceKey: key(id), Kind: kind, URL: "http://127.0.0.1:1/app.git", Branch: "main",
			Buildpack: &builds.Buildpack{Context: "/"}, DisabledCI: disabledCI}
	}
	reg := &registry{srcs: []builds.Source{
		src("app", "combined", false), src("builder", "build", false), src("quiet", "combined", true),
	}}
	db := sqltest.Open(t, sqldb.SQLite, schema...)
	svc, store := newPollEnv(t).service(t, db, "r1", reg, time.Now)
	handle := svc.CreatedHandler()
	created := func(id string) {
		t.Helper()
		ev, err := events.New("deployments", "service", "created", "acme/web/"+id,
			map[string]string{"teamId": "acme", "projectId": "web", "id": id, "serviceType": "combined"})
		if err != nil {
			t.Fatal(err)
		}
		if err := handle(ctx, ev); err != nil {
			t.Fatalf("created %s: %v", id, err)
		}
	}
	list := func(id string) []builds.Build {
		t.Helper()
		bs, _, _, err := store.ListBuilds(ctx, key(id), paging.Page{Limit: 50})
		if err != nil {
			t.Fatal(err)
		}
		return bs
	}

	created("app")
	created("app") // redelivered
	bs := list("app")
	if len(bs) != 1 || bs[0].Branch != "main" || bs[0].Trigger != "create" || bs[0].Status != "QUEUED" {
		t.Fatalf("the combined service's builds: %+v", bs)
	}
	for _, id := range []string{"builder", "quiet", "gone"} {
		created(id)
		if bs := list(id); len(bs) != 0 {
			t.Errorf("%s: builds %+v, want none", id, bs)
		}
	}
}

// TestCreatedDeliveredTwiceAtOnce: an event delivered again while its
// first delivery still waits on the owner's service (both past the check
// for an existing build before either queues one) queues one build. Many
// services' events at once, so that the two deliveries of some event
// interleave whatever the scheduling.
func TestCreatedDeliveredTwiceAtOnce(t *testing.T) {
	ctx := context.Background()
	const n = 20
	key := func(i int) builds.ServiceKey {
		return builds.ServiceKey{TeamID: "acme", ProjectID: "web", Kind: builds.KindService, ServiceID: fmt.Sprintf("app-%d", i)}
	}
	// Each delivery's Source call waits for all the others'.
	var arrived sync.WaitGroup
	arrived.Add(2 * n)
	reg := &registry{slow: func() {
		arrived.Done()
		arrived.Wait()
	}}
	for i := range n {
		reg.srcs = append(reg.srcs, builds.Source{ServiceKey: key(i), Kind: "combined", URL: "http://127.0.0.1:1/app.git", Branch: "main",
			Buildpack: &builds.Buildpack{Context: "/"}})
	}
	db := sqltest.Open(t, sqldb.SQLite, schema...)
	svc, store := newPollEnv(t).service(t, db, "r1", reg, time.Now)
	handle := svc.CreatedHandler()
	var wg sync.WaitGroup
	for i := range n {
		ev, err := events.New("deployments", "service", "created", "acme/web/"+key(i).ServiceID,
			map[string]string{"teamId": "acme", "projectId": "web", "id": key(i).ServiceID, "serviceType": "combined"})
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			wg.Go(func() {
				if err := handle(ctx, ev); err != nil {
					t.Errorf("created: %v", err)
				}
			})
		}
	}
	wg.Wait()
	for i := range n {
		bs, _, _, err := store.ListBuilds(ctx, key(i), paging.Page{Limit: 50})
		if err != nil {
			t.Fatal(err)
		}
		if len(bs) != 1 {
			t.Errorf("%s: %d builds queued, want 1", key(i).ServiceID, len(bs))
		}
	}
}
