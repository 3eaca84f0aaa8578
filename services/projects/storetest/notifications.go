package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/slipwayhq/slipway/pkg/paging"
	"github.com/slipwayhq/slipway/services/projects"
)

// NotificationFactory returns an empty, migrated notification store.
type NotificationFactory func(t *testing.T) projects.NotificationStore

// RunNotifications runs the NotificationStore suite against stores made
// by newStore.
func RunNotifications(t *testing.T, newStore NotificationFactory) {
	tests := map[string]func(*testing.T, projects.NotificationStore){
		"IntegrationsCRUD":         testIntegrationsCRUD,
		"WebhooksCRUD":             testWebhooksCRUD,
		"EnqueueOncePerEvent":      testEnqueueOnce,
		"ClaimIsExclusive":         testClaimExclusive,
		"RecordOutcomes":           testRecordOutcomes,
		"RetryFailedOnly":          testRetryDelivery,
		"DeliveriesNewestFirst":    testListDeliveries,
		"DeleteTargetDeliveries":   testDeleteTargetDeliveries,
		"NotificationTeamsIsolate": testNotificationTeams,
		"PruneConcludedOnly":       testPrune,
	}
	for name, test := range tests {
		t.Run(name, func(t *testing.T) { test(t, newStore(t)) })
	}
}

func integration(id string) projects.Integration {
	now := time.Now().UTC().Truncate(time.Millisecond)
	return projects.Integration{
		TeamID: team, ID: id, Name: "Name " + id, Type: "RAW_WEBHOOK", Webhook: "https://example.com/" + id, Secret: "s3cret-" + id,
		Restricted: true, Projects: []string{"alpha", "beta"}, Restrictions: `{"tags":{"enabled":true}}`,
		Events: []string{"trigger:build:success"}, CreatedAt: now, UpdatedAt: now,
	}
}

func testIntegrationsCRUD(t *testing.T, s projects.NotificationStore) {
	ctx := context.Background()
	want := integration("hook-a")
	if err := s.CreateIntegration(ctx, want); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateIntegration(ctx, want); !errors.Is(err, projects.ErrAlreadyExists) {
		t.Fatalf("second create: %v, want ErrAlreadyExists", err)
	}
	got, err := s.GetIntegration(ctx, team, "hook-a")
	if err != nil {
		t.Fatal(err)
	}
	if got.Secret != want.Secret || got.Webhook != want.Webhook || !slices.Equal(got.Projects, want.Projects) || !slices.Equal(got.Events, want.Events) ||
		got.Restrictions != want.Restrictions || !got.Restricted || !got.CreatedAt.Equal(want.CreatedAt) || got.Name != want.Name {
		t.Fatalf("Get = %+v, want %+v", got, want)
	}
	if _, err := s.GetIntegration(ctx, team, "nope"); !errors.Is(err, projects.ErrNotFound) {
		t.Fatalf("Get missing: %v", err)
	}
	for _, id := range []string{"hook-b", "hook-c"} {
		in := integration(id)
		in.Secret = "" // none
		if err := s.CreateIntegration(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	page, more, total, err := s.ListIntegrations(ctx, team, paging.Page{Limit: 2})
	if err != nil || !more || total != 3 || len(page) != 2 || page[0].ID != "hook-a" || page[1].ID != "hook-b" {
		t.Fatalf("first page = %v %v %d %v", page, more, total, err)
	}
	page, more, total, err = s.ListIntegrations(ctx, team, paging.Page{After: "hook-b", Limit: 2})
	if err != nil || more || total != 3 || len(page) != 1 || page[0].ID != "hook-c" || page[0].Secret != "" {
		t.Fatalf("second page = %v %v %d %v", page, more, total, err)
	}
	if page, _, total, err := s.ListIntegrations(ctx, "other-team", paging.Page{Limit: 2}); err != nil || len(page) != 0 || total != 0 {
		t.Fatalf("another team's list = %v %d %v", page, total, err)
	}
	updated, err := s.UpdateIntegration(ctx, team, "hook-a", func(in *projects.Integration) error {
		in.Name, in.Secret, in.Events = "Renamed", "", []string{"trigger:job-run:start"}
		return nil
	})
	if err != nil || updated.Name != "Renamed" || updated.ID != "hook-a" {
		t.Fatalf("Update = %+v, %v", updated, err)
	}
	got, _ = s.GetIntegration(ctx, team, "hook-a")
	if got.Name != "Renamed" || got.Secret != "" || !slices.Equal(got.Events, []string{"trigger:job-run:start"}) {
		t.Fatalf("after update: %+v", got)
	}
	boom := errors.New("boom")
	if _, err := s.UpdateIntegration(ctx, team, "hook-a", func(*projects.Integration) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("Update mutate error: %v", err)
	}
	if _, err := s.UpdateIntegration(ctx, team, "nope", func(*projects.Integration) error { return nil }); !errors.Is(err, projects.ErrNotFound) {
		t.Fatalf("Update missing: %v", err)
	}
	if err := s.DeleteIntegration(ctx, team, "hook-a"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteIntegration(ctx, team, "hook-a"); !errors.Is(err, projects.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

func testWebhooksCRUD(t *testing.T, s projects.NotificationStore) {
	ctx := context.Background()
	w := projects.Webhook{TeamID: team, ID: "wh-1", URL: "https://example.com/w", Events: []string{"*"}, Secret: "whsec_abc", CreatedAt: time.Now().UTC().Truncate(time.Millisecond)}
	if err := s.CreateWebhook(ctx, w); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateWebhook(ctx, w); !errors.Is(err, projects.ErrAlreadyExists) {
		t.Fatalf("second create: %v", err)
	}
	got, err := s.GetWebhook(ctx, team, "wh-1")
	if err != nil || got.Secret != w.Secret || got.URL != w.URL || !slices.Equal(got.Events, w.Events) || !got.CreatedAt.Equal(w.CreatedAt) {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	list, more, total, err := s.ListWebhooks(ctx, team, paging.Page{Limit: 10})
	if err != nil || more || total != 1 || len(list) != 1 {
		t.Fatalf("List = %v %v %d %v", list, more, total, err)
	}
	if err := s.DeleteWebhook(ctx, team, "wh-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetWebhook(ctx, team, "wh-1"); !errors.Is(err, projects.ErrNotFound) {
		t.Fatalf("Get after delete: %v", err)
	}
	if err := s.DeleteWebhook(ctx, team, "wh-1"); !errors.Is(err, projects.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

// enqueue adds one delivery of a fresh event for each of the team's
// integrations and webhooks and returns their ids.
func enqueue(t *testing.T, s projects.NotificationStore, teamID string, due time.Time) []string {
	t.Helper()
	var ids []string
	_, err := s.Enqueue(context.Background(), "test", uuid.NewString(), teamID, func(subs projects.Subscribers) ([]projects.Delivery, error) {
		var out []projects.Delivery
		eventID := uuid.NewString()
		mk := func(kind, target string) {
			id, _ := uuid.NewV7()
			ids = append(ids, id.String())
			out = append(out, projects.Delivery{ID: id.String(), TeamID: teamID, TargetKind: kind, TargetID: target, EventID: eventID,
				EventType: "build:success", Body: []byte(`{"event":"build:success"}`), Status: projects.DeliveryPending,
				NextAttemptAt: due, RetryUntil: due.Add(time.Hour), CreatedAt: due})
		}
		for _, in := range subs.Integrations {
			mk(projects.TargetIntegration, in.ID)
		}
		for _, w := range subs.Webhooks {
			mk(projects.TargetWebhook, w.ID)
		}
		return out, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func testEnqueueOnce(t *testing.T, s projects.NotificationStore) {
	ctx := context.Background()
	if err := s.CreateIntegration(ctx, integration("hook-a")); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateWebhook(ctx, projects.Webhook{TeamID: team, ID: "wh-1", URL: "https://example.com", Events: []string{"*"}, Secret: "x", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	calls := 0
	eventID := "ev-1"
	build := func(subs projects.Subscribers) ([]projects.Delivery, error) {
		calls++
		// Matching needs no secret, and none is opened for it.
		if len(subs.Integrations) != 1 || len(subs.Webhooks) != 1 || subs.Integrations[0].Secret != "" || subs.Webhooks[0].Secret != "" {
			return nil, fmt.Errorf("subscribers = %+v", subs)
		}
		now := time.Now().UTC()
		return []projects.Delivery{{ID: uuid.NewString(), TeamID: team, TargetKind: projects.TargetIntegration, TargetID: "hook-a", EventID: eventID,
			EventType: "build:success", Body: []byte("{}"), NextAttemptAt: now, RetryUntil: now.Add(time.Hour), CreatedAt: now}}, nil
	}
	n, err := s.Enqueue(ctx, "c", "ev-1", team, build)
	if err != nil || n != 1 {
		t.Fatalf("first Enqueue = %d, %v", n, err)
	}
	n, err = s.Enqueue(ctx, "c", "ev-1", team, build)
	if err != nil || n != 0 || calls != 1 {
		t.Fatalf("redelivered Enqueue = %d, %v (deliveries built %d times)", n, err, calls)
	}
	// A failing build commits nothing, not even the inbox mark.
	boom := errors.New("boom")
	if _, err := s.Enqueue(ctx, "c", "ev-2", team, func(projects.Subscribers) ([]projects.Delivery, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("failing Enqueue: %v", err)
	}
	eventID = "ev-2"
	if n, err := s.Enqueue(ctx, "c", "ev-2", team, build); err != nil || n != 1 {
		t.Fatalf("Enqueue after a failure = %d, %v: the event must not count as processed", n, err)
	}
}

func testClaimExclusive(t *testing.T, s projects.NotificationStore) {
	ctx := context.Background()
	for i := range 5 {
		if err := s.CreateIntegration(ctx, integration(fmt.Sprintf("hook-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now().UTC()
	var ids []string
	for range 4 {
		ids = append(ids, enqueue(t, s, team, now.Add(-time.Second))...)
	}
	if future := enqueue(t, s, team, now.Add(time.Hour)); len(future) != 5 {
		t.Fatal("future deliveries not enqueued")
	}
	// Four replicas claim at once: each due delivery goes to exactly one.
	var mu sync.Mutex
	seen := map[string]string{}
	var wg sync.WaitGroup
	for r := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := fmt.Sprintf("replica-%d", r)
			for range 10 {
				claims, err := s.Claim(ctx, owner, now, now.Add(time.Minute), 3)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, c := range claims {
					if prev, ok := seen[c.ID]; ok {
						t.Errorf("delivery %s claimed by %s and %s", c.ID, prev, owner)
					}
					seen[c.ID] = owner
					if c.URL == "" || c.Secret == "" || c.Type != "RAW_WEBHOOK" || string(c.Body) != `{"event":"build:success"}` {
						t.Errorf("claim lacks its target: %+v", c)
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != len(ids) {
		t.Fatalf("claimed %d deliveries, want the %d due", len(seen), len(ids))
	}
	// Leased: nothing to claim until the lease runs out, then again.
	if claims, _ := s.Claim(ctx, "other", now.Add(30*time.Second), now.Add(2*time.Minute), 100); len(claims) != 0 {
		t.Fatalf("claimed %d leased deliveries", len(claims))
	}
	if next, ok, err := s.NextDue(ctx); err != nil || !ok || next.Before(now.Add(59*time.Second)) {
		t.Fatalf("NextDue = %v %v %v, want the lease's end", next, ok, err)
	}
	claims, err := s.Claim(ctx, "other", now.Add(2*time.Minute), now.Add(3*time.Minute), 100)
	if err != nil || len(claims) != len(ids) {
		t.Fatalf("after the leases ran out: %d claims, %v", len(claims), err)
	}
	// The first owner lost its lease: its record is refused.
	if err := s.Record(ctx, seen[ids[0]], ids[0], projects.Attempt{At: now, Succeeded: true}); !errors.Is(err, projects.ErrNotFound) {
		t.Fatalf("Record by an owner without the lease: %v", err)
	}
	if err := s.Record(ctx, "other", ids[0], projects.Attempt{At: now, Succeeded: true, StatusCode: 200}); err != nil {
		t.Fatal(err)
	}
}

func testRecordOutcomes(t *testing.T, s projects.NotificationStore) {
	ctx := context.Background()
	if err := s.CreateIntegration(ctx, integration("hook-a")); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	id := enqueue(t, s, team, now)[0]
	claim := func(at time.Time) {
		t.Helper()
		claims, err := s.Claim(ctx, "me", at, at.Add(time.Minute), 10)
		if err != nil || len(claims) != 1 || claims[0].ID != id {
			t.Fatalf("Claim at %v = %v, %v", at, claims, err)
		}
	}
	claim(now)
	retryAt := now.Add(10 * time.Second)
	if err := s.Record(ctx, "me", id, projects.Attempt{At: now, StatusCode: 500, Latency: 12 * time.Millisecond, Err: "HTTP 500", Next: retryAt}); err != nil {
		t.Fatal(err)
	}
	if claims, _ := s.Claim(ctx, "me", now.Add(time.Second), now.Add(time.Minute), 10); len(claims) != 0 {
		t.Fatal("claimed before the retry was due")
	}
	in, _ := s.GetIntegration(ctx, team, "hook-a")
	if in.FailedRequests != 1 || !in.FirstFailedAt.Equal(now) {
		t.Fatalf("after a failure: %d failed since %v", in.FailedRequests, in.FirstFailedAt)
	}
	claim(retryAt)
	if err := s.Record(ctx, "me", id, projects.Attempt{At: retryAt, StatusCode: 502, Err: "HTTP 502", Next: retryAt.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	in, _ = s.GetIntegration(ctx, team, "hook-a")
	if in.FailedRequests != 2 || !in.FirstFailedAt.Equal(now) {
		t.Fatalf("after two failures: %d failed since %v", in.FailedRequests, in.FirstFailedAt)
	}
	claim(retryAt.Add(time.Minute))
	if err := s.Record(ctx, "me", id, projects.Attempt{At: retryAt.Add(time.Minute), StatusCode: 200, Latency: 3 * time.Millisecond, Succeeded: true}); err != nil {
		t.Fatal(err)
	}
	list, _, _, err := s.ListDeliveries(ctx, team, projects.TargetIntegration, "hook-a", paging.Page{Limit: 10})
	if err != nil || len(list) != 1 {
		t.Fatalf("deliveries = %v, %v", list, err)
	}
	d := list[0]
	if d.Status != projects.DeliverySucceeded || d.Attempts != 3 || d.LastStatusCode != 200 || d.LastLatency != 3*time.Millisecond || d.LastError != "" ||
		!d.LastAttemptAt.Equal(retryAt.Add(time.Minute)) {
		t.Fatalf("delivery = %+v", d)
	}
	in, _ = s.GetIntegration(ctx, team, "hook-a")
	if in.FailedRequests != 0 || !in.FirstFailedAt.IsZero() {
		t.Fatalf("a success resets the failures: %d since %v", in.FailedRequests, in.FirstFailedAt)
	}
	// A recorded attempt on a delivery that is no longer pending is refused.
	if err := s.Record(ctx, "me", id, projects.Attempt{At: now, Succeeded: true}); !errors.Is(err, projects.ErrNotFound) {
		t.Fatalf("Record on a concluded delivery: %v", err)
	}
	if _, ok, err := s.NextDue(ctx); err != nil || ok {
		t.Fatalf("NextDue with nothing pending = %v, %v", ok, err)
	}
}

func testRetryDelivery(t *testing.T, s projects.NotificationStore) {
	ctx := context.Background()
	if err := s.CreateIntegration(ctx, integration("hook-a")); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	id := enqueue(t, s, team, now)[0]
	if _, err := s.RetryDelivery(ctx, team, projects.TargetIntegration, "hook-a", id, now, now.Add(time.Hour)); !errors.Is(err, projects.ErrNotFailed) {
		t.Fatalf("retrying a pending delivery: %v", err)
	}
	if _, err := s.RetryDelivery(ctx, team, projects.TargetIntegration, "hook-a", "nope", now, now.Add(time.Hour)); !errors.Is(err, projects.ErrNotFound) {
		t.Fatalf("retrying an unknown delivery: %v", err)
	}
	if _, err := s.RetryDelivery(ctx, "other-team", projects.TargetIntegration, "hook-a", id, now, now.Add(time.Hour)); !errors.Is(err, projects.ErrNotFound) {
		t.Fatalf("retrying another team's delivery: %v", err)
	}
	if _, err := s.Claim(ctx, "me", now, now.Add(time.Minute), 1); err != nil {
		t.Fatal(err)
	}
	if err := s.Record(ctx, "me", id, projects.Attempt{At: now, StatusCode: 500, Err: "HTTP 500"}); err != nil { // no Next: failed
		t.Fatal(err)
	}
	later := now.Add(time.Hour)
	d, err := s.RetryDelivery(ctx, team, projects.TargetIntegration, "hook-a", id, later, later.Add(time.Hour))
	if err != nil || d.Status != projects.DeliveryPending || d.Attempts != 1 || !d.NextAttemptAt.Equal(later) || !d.RetryUntil.Equal(later.Add(time.Hour)) {
		t.Fatalf("RetryDelivery = %+v, %v", d, err)
	}
	if claims, err := s.Claim(ctx, "me", later, later.Add(time.Minute), 1); err != nil || len(claims) != 1 {
		t.Fatalf("claim after retry = %v, %v", claims, err)
	}
}

func testListDeliveries(t *testing.T, s projects.NotificationStore) {
	ctx := context.Background()
	if err := s.CreateIntegration(ctx, integration("hook-a")); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	var ids []string
	for range 5 {
		ids = append(ids, enqueue(t, s, team, now)...)
	}
	slices.Reverse(ids)
	var got []string
	after := ""
	for {
		page, more, total, err := s.ListDeliveries(ctx, team, projects.TargetIntegration, "hook-a", paging.Page{After: after, Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		if total != len(ids) {
			t.Fatalf("total = %d, want %d on every page", total, len(ids))
		}
		for _, d := range page {
			got = append(got, d.ID)
			after = d.ID
		}
		if !more {
			break
		}
	}
	if !slices.Equal(got, ids) {
		t.Fatalf("deliveries %v, want newest first %v", got, ids)
	}
	if page, _, total, _ := s.ListDeliveries(ctx, team, projects.TargetWebhook, "hook-a", paging.Page{Limit: 10}); len(page) != 0 || total != 0 {
		t.Fatalf("a webhook of the same id sees %d deliveries (total %d)", len(page), total)
	}
}

func testDeleteTargetDeliveries(t *testing.T, s projects.NotificationStore) {
	ctx := context.Background()
	if err := s.CreateIntegration(ctx, integration("hook-a")); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	enqueue(t, s, team, now)
	if err := s.DeleteIntegration(ctx, team, "hook-a"); err != nil {
		t.Fatal(err)
	}
	if claims, err := s.Claim(ctx, "me", now, now.Add(time.Minute), 10); err != nil || len(claims) != 0 {
		t.Fatalf("claims after the integration was deleted: %v, %v", claims, err)
	}
	if _, ok, _ := s.NextDue(ctx); ok {
		t.Fatal("a deleted integration's delivery is still pending")
	}
}

func testNotificationTeams(t *testing.T, s projects.NotificationStore) {
	ctx := context.Background()
	a := integration("hook-a")
	b := integration("hook-a")
	b.TeamID, b.Secret = "other", "other-secret"
	if err := s.CreateIntegration(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateIntegration(ctx, b); err != nil {
		t.Fatalf("same id in another team: %v", err)
	}
	got, err := s.GetIntegration(ctx, "other", "hook-a")
	if err != nil || got.Secret != "other-secret" {
		t.Fatalf("other team's integration = %+v, %v", got, err)
	}
	enqueue(t, s, "other", time.Now().UTC())
	if page, _, _, _ := s.ListDeliveries(ctx, team, projects.TargetIntegration, "hook-a", paging.Page{Limit: 10}); len(page) != 0 {
		t.Fatalf("team sees %d deliveries of another team", len(page))
	}
	if err := s.DeleteIntegration(ctx, "other", "hook-a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetIntegration(ctx, team, "hook-a"); err != nil {
		t.Fatalf("deleting another team's integration removed ours: %v", err)
	}
}

func testPrune(t *testing.T, s projects.NotificationStore) {
	ctx := context.Background()
	if err := s.CreateIntegration(ctx, integration("hook-a")); err != nil {
		t.Fatal(err)
	}
	old := time.Now().UTC().Add(-48 * time.Hour)
	ids := append(enqueue(t, s, team, old), enqueue(t, s, team, old)...) // due long ago
	recent := enqueue(t, s, team, time.Now().UTC())
	claims, err := s.Claim(ctx, "me", old, old.Add(time.Minute), 1)
	if err != nil || len(claims) != 1 || claims[0].ID != ids[0] {
		t.Fatalf("claim = %v, %v", claims, err)
	}
	if err := s.Record(ctx, "me", ids[0], projects.Attempt{At: old, Succeeded: true, StatusCode: 200}); err != nil {
		t.Fatal(err)
	}
	n, err := s.Prune(ctx, time.Now().UTC().Add(-24*time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("Prune = %d, %v; want the one old concluded delivery", n, err)
	}
	list, _, _, err := s.ListDeliveries(ctx, team, projects.TargetIntegration, "hook-a", paging.Page{Limit: 10})
	if err != nil || len(list) != 2 || list[0].ID != recent[0] || list[1].ID != ids[1] {
		t.Fatalf("after Prune: %v, %v; want the recent one and the old pending one", list, err)
	}
}
