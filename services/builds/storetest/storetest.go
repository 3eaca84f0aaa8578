// Package storetest is the contract of builds.Store written as tests:
// every implementation runs the same suite.
package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/paging"
	"github.com/slipwayhq/slipway/services/builds"
)

// Outbox is what the suite sees of the events a store committed with its
// changes.
type Outbox struct {
	// Count counts the committed events.
	Count func() int
	// Events returns them, oldest first.
	Events func() []events.Event
}

// Factory returns an empty, migrated store and its outbox.
type Factory func(t *testing.T) (builds.Store, Outbox)

// Run runs the whole suite against stores made by newStore.
func Run(t *testing.T, newStore Factory) {
	tests := map[string]func(*testing.T, builds.Store, Outbox){
		"CreateGetBuild":           testCreateGet,
		"CreateDuplicate":          testDuplicate,
		"Missing":                  testMissing,
		"ListBuildsPages":          testList,
		"ClaimOldestFirst":         testClaim,
		"ClaimRace":                testClaimRace,
		"ClaimContended":           testClaimContended,
		"TransitionToSuccess":      testTransitionSuccess,
		"TransitionFailedAborted":  testTransitionFailedAborted,
		"TransitionSameStatus":     testTransitionSameStatus,
		"RequestAbort":             testRequestAbort,
		"RequestAbortClaimRace":    testRequestAbortClaimRace,
		"Running":                  testRunning,
		"ExpiredAndRemoveArtifact": testExpired,
		"RemoveArtifactOnce":       testRemoveArtifactOnce,
		"Orphans":                  testOrphans,
		"ExpiredKeepsArtifacts":    testExpiredKeepsArtifacts,
		"DeleteServiceCascades":    testDeleteService,
		"DeleteServiceBuildEnds":   testDeleteServiceRace,
		"ProjectServices":          testProjectServices,
		"LogsAppendRead":           testLogsAppendRead,
		"LogsCap":                  testLogsCap,
		"LogsConcurrentAppends":    testLogsConcurrent,
		"LogsBoundsAndFilters":     testLogsFilters,
		"LogsContinuation":         testLogsContinuation,
		"Webhook":                  testWebhook,
		"WebhookConcurrentFirst":   testWebhookConcurrent,
		"RotateWebhook":            testRotateWebhook,
		"SeeDelivery":              testSeeDelivery,
		"SeeDeliveryConcurrent":    testSeeDeliveryConcurrent,
		"PollState":                testPollState,
		"PollStateConcurrentFirst": testPollStateConcurrent,
		"Lease":                    testLease,
		"LeaseContended":           testLeaseContended,
		"TeamsAndProjectsIsolated": testIsolation,
		"ServicesAndJobsIsolated":  testKinds,
	}
	for name, test := range tests {
		t.Run(name, func(t *testing.T) {
			s, outbox := newStore(t)
			test(t, s, outbox)
		})
	}
}

// team and proj are where most tests work.
const (
	team = "acme"
	proj = "web"
)

// sha is a commit id.
const sha = "0123456789abcdef0123456789abcdef01234567"

// now is a time the stores represent exactly (microseconds, UTC).
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// base is a fixed time the tests count from.
var base = time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)

func key(service string) builds.ServiceKey {
	return builds.ServiceKey{TeamID: team, ProjectID: proj, Kind: builds.KindService, ServiceID: service}
}

// jobKey names a job.
func jobKey(job string) builds.ServiceKey {
	return builds.ServiceKey{TeamID: team, ProjectID: proj, Kind: builds.KindJob, ServiceID: job}
}

// build is a new build of service; ids grow with created times, as the
// service's ids do.
func build(service, id string, created time.Time) builds.Build {
	return builds.Build{
		TeamID: team, ProjectID: proj, Kind: builds.KindService, ServiceID: service, ID: id,
		Branch: "main", Trigger: "api", Message: "Queued",
		Overrides: builds.Overrides{BuildArguments: map[string]string{"TOKEN": "t0ps3cret"}, DockerFilePath: "/Dockerfile", Target: "prod"},
		CreatedAt: created,
	}
}

func mustCreate(t *testing.T, s builds.Store, b builds.Build) builds.Build {
	t.Helper()
	got, err := s.CreateBuild(context.Background(), b)
	if err != nil {
		t.Fatalf("CreateBuild(%s): %v", b.ID, err)
	}
	return got
}

func mustGet(t *testing.T, s builds.Store, b builds.Build) builds.Build {
	t.Helper()
	got, err := s.GetBuild(context.Background(), builds.ServiceKey{TeamID: b.TeamID, ProjectID: b.ProjectID, Kind: b.Kind, ServiceID: b.ServiceID}, b.ID)
	if err != nil {
		t.Fatalf("GetBuild(%s): %v", b.ID, err)
	}
	return got
}

func mustClaim(t *testing.T, s builds.Store, owner string) builds.Build {
	t.Helper()
	b, ok, err := s.Claim(context.Background(), owner, now())
	if err != nil || !ok {
		t.Fatalf("Claim: ok=%v, %v", ok, err)
	}
	return b
}

func mustTransition(t *testing.T, s builds.Store, b builds.Build, tr builds.Transition) builds.Build {
	t.Helper()
	got, err := s.Transition(context.Background(), b, tr)
	if err != nil {
		t.Fatalf("Transition(%s → %s): %v", b.ID, tr.Status, err)
	}
	return got
}

// succeeded creates a build of service and takes it to SUCCESS with an
// image artifact.
func succeeded(t *testing.T, s builds.Store, service, id string, created time.Time) builds.Build {
	t.Helper()
	b := claimThis(t, s, mustCreate(t, s, build(service, id, created)))
	return mustTransition(t, s, b, builds.Transition{Status: builds.StatusSuccess, Message: "Image successfully built", SHA: sha,
		Artifact: builds.Artifact{Image: "localhost/slipway/" + proj + "/" + service + ":" + sha[:12] + "-" + id}, At: created.Add(time.Minute)})
}

// claimThis claims queued builds until it has b (the suite's stores hold
// only what the test made, so the others are the test's own).
func claimThis(t *testing.T, s builds.Store, b builds.Build) builds.Build {
	t.Helper()
	for {
		got := mustClaim(t, s, "r1")
		if got.ID == b.ID {
			return got
		}
	}
}

// lastEvent returns the newest event in the outbox.
func lastEvent(t *testing.T, outbox Outbox) events.Event {
	t.Helper()
	evs := outbox.Events()
	if len(evs) == 0 {
		t.Fatal("the outbox is empty")
	}
	return evs[len(evs)-1]
}

// data decodes an event's data into a generic map, to check the JSON
// consumers read, names included.
func data(t *testing.T, ev events.Event) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(ev.Data, &m); err != nil {
		t.Fatalf("event %s data %s: %v", ev.Type, ev.Data, err)
	}
	return m
}

func checkEvent(t *testing.T, ev events.Event, verb string, b builds.Build) map[string]any {
	t.Helper()
	if want := events.SubjectFor("builds", "build", verb); ev.Type != want {
		t.Errorf("event type %q, want %q", ev.Type, want)
	}
	d := data(t, ev)
	fields := map[string]string{"teamId": b.TeamID, "projectId": b.ProjectID, "kind": b.Kind, "serviceId": b.ServiceID, "buildId": b.ID, "status": b.Status}
	if b.Kind == builds.KindJob {
		delete(fields, "serviceId")
		fields["jobId"] = b.ServiceID
		if _, ok := d["serviceId"]; ok {
			t.Errorf("a job's %s event has a serviceId: %s", verb, ev.Data)
		}
	}
	for field, want := range fields {
		if d[field] != want {
			t.Errorf("%s event %s = %v, want %q (data %s)", verb, field, d[field], want, ev.Data)
		}
	}
	return d
}

func testCreateGet(t *testing.T, s builds.Store, outbox Outbox) {
	ctx := context.Background()
	b := build("api", "b-0001", now())
	b.PullRequest, b.SHA, b.Status = 7, sha, builds.StatusSuccess // the store starts every build QUEUED
	created, err := s.CreateBuild(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if created.Status != builds.StatusQueued {
		t.Errorf("CreateBuild status %q, want QUEUED", created.Status)
	}
	got := mustGet(t, s, b)
	want := b
	want.Status = builds.StatusQueued
	if !reflect.DeepEqual(got, want) {
		t.Errorf("GetBuild =\n%+v\nwant\n%+v", got, want)
	}
	if n := outbox.Count(); n != 1 {
		t.Fatalf("outbox holds %d events, want 1", n)
	}
	d := checkEvent(t, lastEvent(t, outbox), builds.VerbQueued, want)
	if d["branch"] != "main" || d["sha"] != sha || d["pullRequestId"] != float64(7) {
		t.Errorf("queued event data %v", d)
	}
	if _, ok := d["artifact"]; ok {
		t.Errorf("queued event has an artifact: %v", d)
	}
	for _, ev := range outbox.Events() {
		for _, secret := range []string{"t0ps3cret", "TOKEN"} {
			if bytes.Contains(ev.Data, []byte(secret)) {
				t.Errorf("event %s carries the build arguments: %s", ev.Type, ev.Data)
			}
		}
	}
}

func testDuplicate(t *testing.T, s builds.Store, outbox Outbox) {
	ctx := context.Background()
	mustCreate(t, s, build("api", "b-0001", now()))
	if _, err := s.CreateBuild(ctx, build("api", "b-0001", now())); !errors.Is(err, apierr.ErrAlreadyExists) {
		t.Errorf("second CreateBuild: %v, want ErrAlreadyExists", err)
	}
	// Ids name a build alone (the queue and aborts use them), so they
	// are unique across services too.
	if _, err := s.CreateBuild(ctx, build("worker", "b-0001", now())); !errors.Is(err, apierr.ErrAlreadyExists) {
		t.Errorf("CreateBuild of the id in another service: %v, want ErrAlreadyExists", err)
	}
	if n := outbox.Count(); n != 1 {
		t.Errorf("outbox holds %d events after failed creates, want 1", n)
	}
}

func testMissing(t *testing.T, s builds.Store, outbox Outbox) {
	ctx := context.Background()
	if _, err := s.GetBuild(ctx, builds.ServiceKey{TeamID: team, ProjectID: proj, ServiceID: "api"}, "nope"); !errors.Is(err, builds.ErrNotFound) {
		t.Errorf("GetBuild: %v, want ErrNotFound", err)
	}
	if _, err := s.Transition(ctx, build("api", "nope", now()), builds.Transition{Status: builds.StatusBuilding}); !errors.Is(err, builds.ErrNotFound) {
		t.Errorf("Transition: %v, want ErrNotFound", err)
	}
	if _, err := s.RequestAbort(ctx, builds.ServiceKey{TeamID: team, ProjectID: proj, ServiceID: "api"}, "nope", now()); !errors.Is(err, builds.ErrNotFound) {
		t.Errorf("RequestAbort: %v, want ErrNotFound", err)
	}
	if _, err := s.WebhookByID(ctx, "nope"); !errors.Is(err, builds.ErrNotFound) {
		t.Errorf("WebhookByID: %v, want ErrNotFound", err)
	}
	if b, ok, err := s.Claim(ctx, "r1", now()); err != nil || ok {
		t.Errorf("Claim on an empty store = %+v, %v, %v", b, ok, err)
	}
	list, more, total, err := s.ListBuilds(ctx, builds.ServiceKey{TeamID: team, ProjectID: proj, ServiceID: "api"}, paging.Page{Limit: 10})
	if err != nil || more || len(list) != 0 || total != 0 {
		t.Errorf("ListBuilds = %d, %v, total %d, %v", len(list), more, total, err)
	}
	gone, err := s.DeleteService(ctx, key("api"))
	if err != nil || len(gone) != 0 {
		t.Errorf("DeleteService of nothing = %v, %v", gone, err)
	}
	if n := outbox.Count(); n != 0 {
		t.Errorf("outbox holds %d events, want 0", n)
	}
}

func ids(list []builds.Build) []string {
	out := make([]string, len(list))
	for i, b := range list {
		out[i] = b.ID
	}
	return out
}

func testList(t *testing.T, s builds.Store, _ Outbox) {
	ctx := context.Background()
	for i := range 5 {
		mustCreate(t, s, build("api", fmt.Sprintf("b-%04d", i+1), base.Add(time.Duration(i)*time.Second)))
	}
	mustCreate(t, s, build("worker", "b-0009", base))
	for _, tc := range []struct {
		page paging.Page
		want []string
		more bool
	}{
		{paging.Page{Limit: 10}, []string{"b-0005", "b-0004", "b-0003", "b-0002", "b-0001"}, false},
		{paging.Page{Limit: 2}, []string{"b-0005", "b-0004"}, true},
		{paging.Page{Limit: 2, After: "b-0004"}, []string{"b-0003", "b-0002"}, true},
		{paging.Page{Limit: 2, After: "b-0002"}, []string{"b-0001"}, false},
		{paging.Page{Limit: 2, Offset: 2}, []string{"b-0003", "b-0002"}, true},
		{paging.Page{Limit: 2, Offset: 4}, []string{"b-0001"}, false},
		{paging.Page{Limit: 2, Offset: 5}, []string{}, false},
	} {
		list, more, total, err := s.ListBuilds(ctx, builds.ServiceKey{TeamID: team, ProjectID: proj, ServiceID: "api"}, tc.page)
		if err != nil {
			t.Fatalf("ListBuilds(%+v): %v", tc.page, err)
		}
		if got := ids(list); !slices.Equal(got, tc.want) || more != tc.more {
			t.Errorf("ListBuilds(%+v) = %v more=%v, want %v more=%v", tc.page, got, more, tc.want, tc.more)
		}
		// Every page counts the service's whole list (not the worker's
		// build), wherever it starts.
		if total != 5 {
			t.Errorf("ListBuilds(%+v) total = %d, want 5", tc.page, total)
		}
	}
	list, _, _, err := s.ListBuilds(ctx, builds.ServiceKey{TeamID: team, ProjectID: proj, ServiceID: "api"}, paging.Page{Limit: 1})
	if err != nil || len(list) != 1 || list[0].Overrides.BuildArguments["TOKEN"] != "t0ps3cret" {
		t.Errorf("ListBuilds does not return whole builds: %+v, %v", list, err)
	}
}

func testClaim(t *testing.T, s builds.Store, outbox Outbox) {
	ctx := context.Background()
	// Oldest first across services; a concluded build is not taken.
	gone := mustCreate(t, s, build("api", "b-0001", base))
	if _, err := s.RequestAbort(ctx, builds.ServiceKey{TeamID: team, ProjectID: proj, ServiceID: "api"}, gone.ID, base); err != nil {
		t.Fatal(err)
	}
	// Created times, not ids, say which is oldest.
	second := mustCreate(t, s, build("api", "b-0003", base.Add(2*time.Second)))
	first := mustCreate(t, s, build("worker", "b-0004", base.Add(time.Second)))
	at := now()
	got, ok, err := s.Claim(ctx, "replica-1", at)
	if err != nil || !ok {
		t.Fatalf("Claim: %v, %v", ok, err)
	}
	want := first
	want.Status, want.Owner, want.StartedAt = builds.StatusCloning, "replica-1", at
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Claim =\n%+v\nwant\n%+v", got, want)
	}
	if stored := mustGet(t, s, first); !reflect.DeepEqual(stored, want) {
		t.Errorf("claimed build stored as\n%+v\nwant\n%+v", stored, want)
	}
	checkEvent(t, lastEvent(t, outbox), builds.VerbStarted, want)
	if got := mustClaim(t, s, "replica-2"); got.ID != second.ID || got.Owner != "replica-2" {
		t.Errorf("second Claim = %s by %s, want %s by replica-2", got.ID, got.Owner, second.ID)
	}
	if b, ok, err := s.Claim(ctx, "replica-1", now()); err != nil || ok {
		t.Errorf("Claim with none queued = %s, %v, %v", b.ID, ok, err)
	}
	// 3 queued, 1 aborted, 2 started.
	if n := outbox.Count(); n != 6 {
		t.Errorf("outbox holds %d events, want 6", n)
	}
}

func testClaimRace(t *testing.T, s builds.Store, outbox Outbox) {
	ctx := context.Background()
	const n = 20
	for i := range n {
		mustCreate(t, s, build(fmt.Sprintf("svc-%d", i%3), fmt.Sprintf("b-%04d", i), base.Add(time.Duration(i)*time.Millisecond)))
	}
	var mu sync.Mutex
	claimed := map[string]string{} // build → owner
	var dup []string
	var wg sync.WaitGroup
	for _, owner := range []string{"replica-1", "replica-2"} {
		wg.Go(func() {
			for {
				b, ok, err := s.Claim(ctx, owner, now())
				if err != nil {
					t.Errorf("Claim(%s): %v", owner, err)
					return
				}
				if !ok {
					return
				}
				mu.Lock()
				if _, seen := claimed[b.ID]; seen {
					dup = append(dup, b.ID)
				}
				claimed[b.ID] = owner
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(dup) > 0 {
		t.Errorf("builds claimed twice: %v", dup)
	}
	if len(claimed) != n {
		t.Errorf("%d builds claimed, want %d", len(claimed), n)
	}
	for id, owner := range claimed {
		b := mustGet(t, s, builds.Build{TeamID: team, ProjectID: proj, ServiceID: serviceOf(id), ID: id})
		if b.Status != builds.StatusCloning || b.Owner != owner {
			t.Errorf("build %s is %s owned by %q, want CLONING by %s", id, b.Status, b.Owner, owner)
		}
	}
	if got := outbox.Count(); got != 2*n {
		t.Errorf("outbox holds %d events, want %d (a queued and a started event each)", got, 2*n)
	}
}

// testClaimContended: many replicas claiming at once, each until it gets
// nothing. Losing a race to another replica is no reason to answer "none
// queued": a replica told that waits for its next tick while builds wait
// in the queue. So when Claim says none, none is queued.
func testClaimContended(t *testing.T, s builds.Store, _ Outbox) {
	ctx := context.Background()
	const n, replicas = 60, 8
	for i := range n {
		mustCreate(t, s, build("api", fmt.Sprintf("b-%04d", i), base.Add(time.Duration(i)*time.Millisecond)))
	}
	var (
		mu      sync.Mutex
		claimed = map[string]bool{}
		wg      sync.WaitGroup
		start   = make(chan struct{})
	)
	for r := range replicas {
		wg.Go(func() {
			<-start
			for {
				b, ok, err := s.Claim(ctx, fmt.Sprintf("r%d", r), now())
				if err != nil {
					t.Errorf("Claim: %v", err)
					return
				}
				if ok {
					mu.Lock()
					if claimed[b.ID] {
						t.Errorf("%s claimed twice", b.ID)
					}
					claimed[b.ID] = true
					mu.Unlock()
					continue
				}
				// None queued: so none may be queued now (nothing is added).
				list, _, _, err := s.ListBuilds(ctx, builds.ServiceKey{TeamID: team, ProjectID: proj, ServiceID: "api"}, paging.Page{Limit: n})
				if err != nil {
					t.Errorf("ListBuilds: %v", err)
					return
				}
				for _, b := range list {
					if b.Status == builds.StatusQueued {
						t.Errorf("Claim answered none queued, but %s is QUEUED", b.ID)
						return
					}
				}
				return
			}
		})
	}
	close(start)
	wg.Wait()
	if len(claimed) != n {
		t.Errorf("%d builds claimed, want %d", len(claimed), n)
	}
}

// serviceOf is the service testClaimRace made build id of.
func serviceOf(id string) string {
	var i int
	_, _ = fmt.Sscanf(id, "b-%d", &i)
	return fmt.Sprintf("svc-%d", i%3)
}

func testTransitionSuccess(t *testing.T, s builds.Store, outbox Outbox) {
	ctx := context.Background()
	b := mustCreate(t, s, build("api", "b-0001", base))
	b = mustClaim(t, s, "r1")
	events0 := outbox.Count()

	// The steps between started and the outcome write no event.
	b = mustTransition(t, s, b, builds.Transition{Status: builds.StatusBuilding, Message: "Building", SHA: sha, At: now()})
	if b.Status != builds.StatusBuilding || b.SHA != sha || b.Message != "Building" || !b.ConcludedAt.IsZero() {
		t.Errorf("after BUILDING: %+v", b)
	}
	// A transition from a stale copy applies to the stored build, and an
	// empty SHA keeps the one known.
	stale := b
	stale.SHA, stale.Status = "", builds.StatusCloning
	b = mustTransition(t, s, stale, builds.Transition{Status: builds.StatusUploading, Message: "Uploading", At: now()})
	if b.Status != builds.StatusUploading || b.SHA != sha {
		t.Errorf("after UPLOADING: %+v", b)
	}
	if n := outbox.Count(); n != events0 {
		t.Errorf("BUILDING and UPLOADING wrote %d events, want none", n-events0)
	}

	at := base.Add(time.Minute)
	art := builds.Artifact{Image: "localhost/slipway/web/api:0123456789ab-b-0001", Path: "/data/builds/artifacts/b-0001/app", Command: []string{"node", "server.js"}, Stack: "node"}
	b = mustTransition(t, s, b, builds.Transition{Status: builds.StatusSuccess, Message: "Image successfully built", Artifact: art, At: at})
	if b.Status != builds.StatusSuccess || !b.ConcludedAt.Equal(at) || !reflect.DeepEqual(b.Artifact, art) || b.SHA != sha {
		t.Errorf("after SUCCESS: %+v", b)
	}
	if stored := mustGet(t, s, b); !reflect.DeepEqual(stored, b) {
		t.Errorf("stored\n%+v\nTransition returned\n%+v", stored, b)
	}
	if n := outbox.Count(); n != events0+1 {
		t.Fatalf("SUCCESS wrote %d events, want 1", n-events0)
	}
	d := checkEvent(t, lastEvent(t, outbox), builds.VerbSucceeded, b)
	if d["branch"] != "main" || d["sha"] != sha || d["message"] != "Image successfully built" {
		t.Errorf("succeeded event data %v", d)
	}
	if c, _ := d["concludedAt"].(string); c == "" {
		t.Errorf("succeeded event without concludedAt: %v", d)
	} else if ct, err := time.Parse(time.RFC3339, c); err != nil || !ct.Equal(at) {
		t.Errorf("succeeded event concludedAt %q (%v), want %s", c, err, at)
	}
	var got struct {
		Artifact builds.Artifact `json:"artifact"`
	}
	if err := json.Unmarshal(lastEvent(t, outbox).Data, &got); err != nil || !reflect.DeepEqual(got.Artifact, art) {
		t.Errorf("succeeded event artifact %+v (%v), want %+v", got.Artifact, err, art)
	}
	a, _ := d["artifact"].(map[string]any)
	if a["image"] != art.Image || a["path"] != art.Path || a["stack"] != "node" || !reflect.DeepEqual(a["command"], []any{"node", "server.js"}) {
		t.Errorf("succeeded event artifact JSON %v", a)
	}

	// A concluded build refuses every change.
	for _, status := range []string{builds.StatusFailure, builds.StatusAborted, builds.StatusBuilding, builds.StatusSuccess} {
		if _, err := s.Transition(ctx, b, builds.Transition{Status: status, At: now()}); !errors.Is(err, builds.ErrConflict) {
			t.Errorf("Transition of a concluded build to %s: %v, want ErrConflict", status, err)
		}
	}
	if stored := mustGet(t, s, b); stored.Status != builds.StatusSuccess || !reflect.DeepEqual(stored.Artifact, art) {
		t.Errorf("a refused transition changed the build: %+v", stored)
	}
	if n := outbox.Count(); n != events0+1 {
		t.Errorf("refused transitions wrote %d events", n-events0-1)
	}
}

func testTransitionFailedAborted(t *testing.T, s builds.Store, outbox Outbox) {
	for _, tc := range []struct{ status, verb string }{
		{builds.StatusFailure, builds.VerbFailed},
		{builds.StatusAborted, builds.VerbAborted},
	} {
		b := mustCreate(t, s, build("api", "b-"+tc.verb, now()))
		b = mustClaim(t, s, "r1")
		n0 := outbox.Count()
		at := now()
		b = mustTransition(t, s, b, builds.Transition{Status: tc.status, Message: "it " + tc.verb, At: at})
		if b.Status != tc.status || b.Message != "it "+tc.verb || !b.ConcludedAt.Equal(at) {
			t.Errorf("after %s: %+v", tc.status, b)
		}
		if n := outbox.Count(); n != n0+1 {
			t.Fatalf("%s wrote %d events, want 1", tc.status, n-n0)
		}
		d := checkEvent(t, lastEvent(t, outbox), tc.verb, b)
		if _, ok := d["artifact"]; ok {
			t.Errorf("%s event has an artifact: %v", tc.verb, d)
		}
		if d["message"] != "it "+tc.verb {
			t.Errorf("%s event message %v", tc.verb, d["message"])
		}
	}
}

// testTransitionSameStatus: a transition that does not change the
// status (a step repeated, or a message updated) writes no second
// event: consumers see one started event per build.
func testTransitionSameStatus(t *testing.T, s builds.Store, outbox Outbox) {
	mustCreate(t, s, build("api", "b-0001", now()))
	b := mustClaim(t, s, "r1")
	n0 := outbox.Count()
	b = mustTransition(t, s, b, builds.Transition{Status: builds.StatusCloning, Message: "Cloning", At: now()})
	if b.Status != builds.StatusCloning || b.Message != "Cloning" {
		t.Errorf("after CLONING again: %+v", b)
	}
	if n := outbox.Count(); n != n0 {
		t.Errorf("a second CLONING wrote %d events, want none", n-n0)
	}
}

func testRequestAbort(t *testing.T, s builds.Store, outbox Outbox) {
	ctx := context.Background()
	// QUEUED: aborted at once, with its event, and never claimed.
	queued := mustCreate(t, s, build("api", "b-0001", base))
	n0 := outbox.Count()
	at := now()
	got, err := s.RequestAbort(ctx, builds.ServiceKey{TeamID: team, ProjectID: proj, ServiceID: "api"}, queued.ID, at)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != builds.StatusAborted || !got.ConcludedAt.Equal(at) || got.Message == "" {
		t.Errorf("RequestAbort(QUEUED) = %+v", got)
	}
	if stored := mustGet(t, s, queued); !reflect.DeepEqual(stored, got) {
		t.Errorf("stored\n%+v\nRequestAbort returned\n%+v", stored, got)
	}
	if n := outbox.Count(); n != n0+1 {
		t.Fatalf("RequestAbort(QUEUED) wrote %d events, want 1", n-n0)
	}
	checkEvent(t, lastEvent(t, outbox), builds.VerbAborted, got)
	if b, ok, err := s.Claim(ctx, "r1", now()); err != nil || ok {
		t.Errorf("Claim took an aborted build: %s, %v, %v", b.ID, ok, err)
	}

	// Running: marked for its owner, status unchanged, no event yet.
	mustCreate(t, s, build("api", "b-0002", base.Add(time.Second)))
	running := mustClaim(t, s, "r1")
	running = mustTransition(t, s, running, builds.Transition{Status: builds.StatusBuilding, At: now()})
	n0 = outbox.Count()
	for range 2 { // asking twice is harmless
		got, err = s.RequestAbort(ctx, builds.ServiceKey{TeamID: team, ProjectID: proj, ServiceID: "api"}, running.ID, now())
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != builds.StatusBuilding || !got.AbortRequested || !got.ConcludedAt.IsZero() {
			t.Errorf("RequestAbort(BUILDING) = %+v", got)
		}
	}
	if stored := mustGet(t, s, running); !stored.AbortRequested || stored.Status != builds.StatusBuilding {
		t.Errorf("stored after RequestAbort(BUILDING): %+v", stored)
	}
	if n := outbox.Count(); n != n0 {
		t.Errorf("RequestAbort(BUILDING) wrote %d events, want none", n-n0)
	}
	list, err := s.Running(ctx, "r1")
	if err != nil || len(list) != 1 || !list[0].AbortRequested {
		t.Errorf("Running after RequestAbort = %+v, %v", list, err)
	}
	// The owner acts on it.
	done := mustTransition(t, s, running, builds.Transition{Status: builds.StatusAborted, Message: "Aborted", At: now()})
	checkEvent(t, lastEvent(t, outbox), builds.VerbAborted, done)

	// Concluded: refused.
	n0 = outbox.Count()
	for _, id := range []string{queued.ID, running.ID} {
		if _, err := s.RequestAbort(ctx, builds.ServiceKey{TeamID: team, ProjectID: proj, ServiceID: "api"}, id, now()); !errors.Is(err, builds.ErrConflict) {
			t.Errorf("RequestAbort of concluded %s: %v, want ErrConflict", id, err)
		}
	}
	if n := outbox.Count(); n != n0 {
		t.Errorf("refused aborts wrote %d events", n-n0)
	}
}

// testRequestAbortClaimRace: an abort racing a claim of the same QUEUED
// build either aborts it before it is taken (and the claim gets nothing)
// or finds it taken and asks its owner to stop; never both taken and
// ABORTED behind its owner's back, which would leave a build running that
// could record nothing.
func testRequestAbortClaimRace(t *testing.T, s builds.Store, outbox Outbox) {
	ctx := context.Background()
	for i := range 30 {
		b := mustCreate(t, s, build("api", fmt.Sprintf("b-%04d", i), now()))
		var (
			wg       sync.WaitGroup
			claimed  builds.Build
			ok       bool
			claimErr error
			aborted  builds.Build
			abortErr error
		)
		start := make(chan struct{})
		wg.Go(func() { <-start; claimed, ok, claimErr = s.Claim(ctx, "r1", now()) })
		wg.Go(func() {
			<-start
			aborted, abortErr = s.RequestAbort(ctx, builds.ServiceKey{TeamID: team, ProjectID: proj, ServiceID: "api"}, b.ID, now())
		})
		close(start)
		wg.Wait()
		if claimErr != nil || abortErr != nil {
			t.Fatalf("round %d: Claim: %v; RequestAbort: %v", i, claimErr, abortErr)
		}
		stored := mustGet(t, s, b)
		switch {
		case ok && claimed.ID == b.ID:
			if aborted.Status == builds.StatusAborted || stored.Status != builds.StatusCloning || !stored.AbortRequested {
				t.Fatalf("round %d: the claimed build was aborted behind its owner: abort returned %s, stored %s (abort requested %v)",
					i, aborted.Status, stored.Status, stored.AbortRequested)
			}
			// Its owner ends it.
			mustTransition(t, s, stored, builds.Transition{Status: builds.StatusAborted, At: now()})
		case !ok:
			if aborted.Status != builds.StatusAborted || stored.Status != builds.StatusAborted {
				t.Fatalf("round %d: not claimed, but abort returned %s and stored %s", i, aborted.Status, stored.Status)
			}
		default:
			t.Fatalf("round %d: claimed %s, the only build is %s", i, claimed.ID, b.ID)
		}
	}
	// Each build: queued, then started and aborted, or just aborted.
	if evs := outbox.Events(); len(evs) < 60 {
		t.Errorf("outbox holds %d events, want at least 60", len(evs))
	}
}

func testRunning(t *testing.T, s builds.Store, _ Outbox) {
	ctx := context.Background()
	mustCreate(t, s, build("api", "b-0001", base))
	mustCreate(t, s, build("api", "b-0002", base.Add(time.Second)))
	mustCreate(t, s, build("worker", "b-0003", base.Add(2*time.Second)))
	mustCreate(t, s, build("worker", "b-0004", base.Add(3*time.Second)))
	mustCreate(t, s, build("worker", "b-0005", base.Add(4*time.Second))) // stays QUEUED
	a := mustClaim(t, s, "r1")
	b := mustClaim(t, s, "r2")
	c := mustClaim(t, s, "r1")
	d := mustClaim(t, s, "r1")
	mustTransition(t, s, b, builds.Transition{Status: builds.StatusUploading, At: now()})
	mustTransition(t, s, c, builds.Transition{Status: builds.StatusBuilding, At: now()})
	mustTransition(t, s, d, builds.Transition{Status: builds.StatusFailure, At: now()}) // concluded
	for owner, want := range map[string][]string{
		"r1": {a.ID, c.ID},
		"r2": {b.ID},
		"r3": {},
		"":   {a.ID, b.ID, c.ID},
	} {
		list, err := s.Running(ctx, owner)
		if err != nil {
			t.Fatal(err)
		}
		got := ids(list)
		sort.Strings(got)
		if !slices.Equal(got, want) {
			t.Errorf("Running(%q) = %v, want %v", owner, got, want)
		}
	}
	list, err := s.Running(ctx, "r2")
	if err != nil || len(list) != 1 || list[0].Status != builds.StatusUploading || list[0].Overrides.Target != "prod" {
		t.Errorf("Running does not return whole builds: %+v, %v", list, err)
	}
}

func testExpired(t *testing.T, s builds.Store, outbox Outbox) {
	ctx := context.Background()
	var api []builds.Build
	for i := range 4 {
		api = append(api, succeeded(t, s, "api", fmt.Sprintf("b-%04d", i+1), base.Add(time.Duration(i)*time.Minute)))
	}
	// Failed builds and builds of other services change nothing.
	mustCreate(t, s, build("api", "b-0005", base.Add(5*time.Minute)))
	mustTransition(t, s, claimThis(t, s, builds.Build{ID: "b-0005"}), builds.Transition{Status: builds.StatusFailure, At: now()})
	succeeded(t, s, "worker", "b-0006", base.Add(6*time.Minute))
	succeeded(t, s, "worker", "b-0007", base.Add(7*time.Minute))

	check := func(keep int, want ...string) {
		t.Helper()
		list, err := s.Expired(ctx, keep)
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(list); !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
			t.Errorf("Expired(%d) = %v, want %v", keep, got, want)
		}
	}
	check(2, "b-0001", "b-0002")
	check(3, "b-0001")
	check(4)
	check(1, "b-0001", "b-0002", "b-0003", "b-0006")
	list, err := s.Expired(ctx, 2)
	if err != nil || len(list) != 2 || !reflect.DeepEqual(list[0], api[0]) {
		t.Errorf("Expired does not return whole builds: %+v, %v", list, err)
	}

	n0 := outbox.Count()
	if err := s.RemoveArtifact(ctx, api[0]); err != nil {
		t.Fatal(err)
	}
	if stored := mustGet(t, s, api[0]); !stored.Removed || stored.Status != builds.StatusSuccess {
		t.Errorf("after RemoveArtifact: %+v", stored)
	}
	if n := outbox.Count(); n != n0+1 {
		t.Fatalf("RemoveArtifact wrote %d events, want 1", n-n0)
	}
	d := checkEvent(t, lastEvent(t, outbox), builds.VerbDeleted, api[0])
	a, _ := d["artifact"].(map[string]any)
	if a["image"] != api[0].Artifact.Image {
		t.Errorf("deleted event artifact %v, want image %s (data %v)", a, api[0].Artifact.Image, d)
	}
	if d["sha"] != sha || d["branch"] != "main" {
		t.Errorf("deleted event data %v", d)
	}
	// A removed artifact is not expired again, and does not count among
	// those kept.
	check(2, "b-0002")
	check(3)
	if err := s.RemoveArtifact(ctx, api[1]); err != nil {
		t.Fatal(err)
	}
	check(2)
}

// testExpiredKeepsArtifacts: the builds kept are the newest successful
// builds with an artifact; a successful build without one (or whose
// artifact is gone) is not one of them.
func testExpiredKeepsArtifacts(t *testing.T, s builds.Store, _ Outbox) {
	ctx := context.Background()
	old := succeeded(t, s, "api", "b-0001", base)
	kept := succeeded(t, s, "api", "b-0002", base.Add(time.Minute))
	mustCreate(t, s, build("api", "b-0003", base.Add(2*time.Minute)))
	none := mustTransition(t, s, claimThis(t, s, builds.Build{ID: "b-0003"}), builds.Transition{Status: builds.StatusSuccess, At: now()})
	if none.Artifact.Image != "" || none.Artifact.Path != "" {
		t.Fatalf("a build succeeded without an artifact has one: %+v", none.Artifact)
	}
	list, err := s.Expired(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(list); !slices.Equal(got, []string{old.ID}) {
		t.Errorf("Expired(1) = %v, want [%s] (%s is the newest artifact, %s has none)", got, old.ID, kept.ID, none.ID)
	}
}

// testRemoveArtifactOnce: removing an artifact twice (two replicas'
// retention runs) announces it once.
func testRemoveArtifactOnce(t *testing.T, s builds.Store, outbox Outbox) {
	ctx := context.Background()
	b := succeeded(t, s, "api", "b-0001", base)
	n0 := outbox.Count()
	for range 2 {
		if err := s.RemoveArtifact(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if n := outbox.Count(); n != n0+1 {
		t.Errorf("two RemoveArtifact calls wrote %d events, want 1", n-n0)
	}
}

func testDeleteService(t *testing.T, s builds.Store, outbox Outbox) {
	ctx := context.Background()
	// api: a build with an artifact, one whose artifact is gone, a failed
	// and a queued one; logs, a webhook with deliveries, poll state.
	kept := succeeded(t, s, "api", "b-0001", base)
	removed := succeeded(t, s, "api", "b-0002", base.Add(time.Minute))
	if err := s.RemoveArtifact(ctx, removed); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, build("api", "b-0003", base.Add(2*time.Minute)))
	failed := mustTransition(t, s, claimThis(t, s, builds.Build{ID: "b-0003"}), builds.Transition{Status: builds.StatusFailure, At: now()})
	mustCreate(t, s, build("api", "b-0004", base.Add(3*time.Minute)))
	if _, err := s.AppendLogs(ctx, failed, lines(base, 3), 5); err != nil {
		t.Fatal(err)
	}
	hook, err := s.Webhook(ctx, key("api"), "wh-api", "secret-api")
	if err != nil {
		t.Fatal(err)
	}
	if first, err := s.SeeDelivery(ctx, hook.ID, "d-1", now(), now().Add(-time.Hour)); err != nil || !first {
		t.Fatalf("SeeDelivery: %v, %v", first, err)
	}
	if err := s.SetPollState(ctx, key("api"), map[string]string{"refs/heads/main": sha}); err != nil {
		t.Fatal(err)
	}
	// worker, in the same project, is left alone.
	other := succeeded(t, s, "worker", "b-0005", base)
	if _, err := s.AppendLogs(ctx, other, lines(base, 2), 5); err != nil {
		t.Fatal(err)
	}
	otherHook, err := s.Webhook(ctx, key("worker"), "wh-worker", "secret-worker")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetPollState(ctx, key("worker"), map[string]string{"refs/heads/main": sha}); err != nil {
		t.Fatal(err)
	}

	n0 := outbox.Count()
	gone, err := s.DeleteService(ctx, key("api"))
	if err != nil {
		t.Fatal(err)
	}
	if len(gone) != 1 || !reflect.DeepEqual(gone[0], kept) {
		t.Errorf("DeleteService returned %+v, want the one build with an artifact %+v", gone, kept)
	}
	if n := outbox.Count(); n != n0+1 {
		t.Fatalf("DeleteService wrote %d events, want 1", n-n0)
	}
	d := checkEvent(t, lastEvent(t, outbox), builds.VerbDeleted, kept)
	if a, _ := d["artifact"].(map[string]any); a["image"] != kept.Artifact.Image {
		t.Errorf("deleted event artifact %v", d["artifact"])
	}

	for _, id := range []string{"b-0001", "b-0002", "b-0003", "b-0004"} {
		if _, err := s.GetBuild(ctx, builds.ServiceKey{TeamID: team, ProjectID: proj, ServiceID: "api"}, id); !errors.Is(err, builds.ErrNotFound) {
			t.Errorf("GetBuild(%s) after DeleteService: %v", id, err)
		}
	}
	if list, _, _, err := s.ListBuilds(ctx, builds.ServiceKey{TeamID: team, ProjectID: proj, ServiceID: "api"}, paging.Page{Limit: 10}); err != nil || len(list) != 0 {
		t.Errorf("ListBuilds after DeleteService: %d, %v", len(list), err)
	}
	if got := readAll(t, s, builds.LogQuery{TeamID: team, ProjectID: proj, ServiceID: "api", Limit: 100}); len(got) != 0 {
		t.Errorf("%d log lines left", len(got))
	}
	if _, err := s.WebhookByID(ctx, hook.ID); !errors.Is(err, builds.ErrNotFound) {
		t.Errorf("WebhookByID after DeleteService: %v", err)
	}
	if heads, err := s.PollState(ctx, key("api")); err != nil || heads != nil {
		t.Errorf("PollState after DeleteService = %v, %v", heads, err)
	}
	// The deliveries went with the webhook.
	if first, err := s.SeeDelivery(ctx, hook.ID, "d-1", now(), now().Add(-time.Hour)); err != nil || !first {
		t.Errorf("SeeDelivery of a deleted webhook's delivery: %v, %v (not forgotten)", first, err)
	}
	// And the log counts with the builds: a build of the same id starts
	// from nothing.
	again := mustCreate(t, s, build("api", "b-0003", now()))
	if stored, err := s.AppendLogs(ctx, again, lines(base, 5), 5); err != nil || len(stored) != 5 {
		t.Errorf("AppendLogs after DeleteService stored %d lines (%v), want 5", len(stored), err)
	}
	if keys, err := s.ProjectServices(ctx, team, proj); err != nil || len(keys) != 2 {
		t.Errorf("ProjectServices = %v, %v", keys, err)
	}

	// The other service is whole.
	if got := mustGet(t, s, other); !reflect.DeepEqual(got, other) {
		t.Errorf("worker's build changed: %+v", got)
	}
	if got := readAll(t, s, builds.LogQuery{TeamID: team, ProjectID: proj, ServiceID: "worker", Limit: 100}); len(got) != 2 {
		t.Errorf("worker has %d log lines, want 2", len(got))
	}
	if w, err := s.WebhookByID(ctx, otherHook.ID); err != nil || w != otherHook {
		t.Errorf("worker's webhook = %+v, %v", w, err)
	}
	if heads, err := s.PollState(ctx, key("worker")); err != nil || heads["refs/heads/main"] != sha {
		t.Errorf("worker's poll state = %v, %v", heads, err)
	}
}

// testDeleteServiceRace: a service deleted while one of its builds
// succeeds. Either the success is recorded first, and the deletion
// returns the build (so its artifact is removed), or the success is
// refused; never recorded on a build the deletion did not return, whose
// artifact nothing would remove.
func testDeleteServiceRace(t *testing.T, s builds.Store, _ Outbox) {
	ctx := context.Background()
	for i := range 30 {
		svc := fmt.Sprintf("svc-%d", i)
		b := mustCreate(t, s, build(svc, fmt.Sprintf("b-%04d", i), now()))
		b = mustTransition(t, s, claimThis(t, s, b), builds.Transition{Status: builds.StatusBuilding, At: now()})
		var (
			wg      sync.WaitGroup
			done    builds.Build
			doneErr error
			gone    []builds.Build
			goneErr error
		)
		start := make(chan struct{})
		wg.Go(func() {
			<-start
			done, doneErr = s.Transition(ctx, b, builds.Transition{Status: builds.StatusSuccess, At: now(),
				Artifact: builds.Artifact{Image: "localhost/slipway/web/" + svc + ":1"}})
		})
		wg.Go(func() { <-start; gone, goneErr = s.DeleteService(ctx, key(svc)) })
		close(start)
		wg.Wait()
		if goneErr != nil {
			t.Fatalf("round %d: DeleteService: %v", i, goneErr)
		}
		returned := len(gone) == 1 && gone[0].ID == b.ID && gone[0].Artifact.Image == done.Artifact.Image
		switch {
		case doneErr == nil && !returned:
			t.Fatalf("round %d: the success was recorded (%s) but the deletion returned %+v: its artifact is removed by nothing", i, done.Status, gone)
		case doneErr != nil && !errors.Is(doneErr, builds.ErrConflict) && !errors.Is(doneErr, builds.ErrNotFound):
			t.Fatalf("round %d: Transition: %v, want ErrConflict or ErrNotFound", i, doneErr)
		case doneErr != nil && len(gone) != 0:
			t.Fatalf("round %d: the success was refused (%v) but the deletion returned %+v", i, doneErr, gone)
		}
		if _, err := s.GetBuild(ctx, builds.ServiceKey{TeamID: team, ProjectID: proj, ServiceID: svc}, b.ID); !errors.Is(err, builds.ErrNotFound) {
			t.Fatalf("round %d: the build outlived its service: %v", i, err)
		}
	}
}

func testProjectServices(t *testing.T, s builds.Store, _ Outbox) {
	ctx := context.Background()
	mustCreate(t, s, build("api", "b-0001", base))
	mustCreate(t, s, build("api", "b-0002", base))
	if _, err := s.Webhook(ctx, key("hooked"), "wh-1", "s1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Webhook(ctx, key("api"), "wh-2", "s2"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPollState(ctx, key("polled"), map[string]string{"refs/heads/main": sha}); err != nil {
		t.Fatal(err)
	}
	elsewhere := build("api", "b-0003", base)
	elsewhere.ProjectID = "other"
	mustCreate(t, s, elsewhere)
	elsewhere = build("api", "b-0004", base)
	elsewhere.TeamID = "other"
	mustCreate(t, s, elsewhere)

	keys, err := s.ProjectServices(ctx, team, proj)
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].ServiceID < keys[j].ServiceID })
	want := []builds.ServiceKey{key("api"), key("hooked"), key("polled")}
	if !reflect.DeepEqual(keys, want) {
		t.Errorf("ProjectServices = %+v, want %+v", keys, want)
	}
	if keys, err := s.ProjectServices(ctx, team, "empty"); err != nil || len(keys) != 0 {
		t.Errorf("ProjectServices of an empty project = %v, %v", keys, err)
	}
}

// lines are n log lines a second apart from start.
func lines(start time.Time, n int) []builds.LogLine {
	out := make([]builds.LogLine, n)
	for i := range out {
		out[i] = builds.LogLine{Time: start.Add(time.Duration(i) * time.Second), Stream: "stdout", Text: fmt.Sprintf("line %d", i)}
	}
	return out
}

func readAll(t *testing.T, s builds.Store, q builds.LogQuery) []builds.LogLine {
	t.Helper()
	got, err := s.ReadLogs(context.Background(), q)
	if err != nil {
		t.Fatalf("ReadLogs(%+v): %v", q, err)
	}
	return got
}

func texts(list []builds.LogLine) []string {
	out := make([]string, len(list))
	for i, l := range list {
		out[i] = l.Text
	}
	return out
}

func testLogsAppendRead(t *testing.T, s builds.Store, _ Outbox) {
	ctx := context.Background()
	b := mustCreate(t, s, build("api", "b-0001", base))
	first, err := s.AppendLogs(ctx, b, lines(base, 3), 100)
	if err != nil {
		t.Fatal(err)
	}
	more := lines(base.Add(3*time.Second), 2)
	more[0].Text, more[1].Text, more[1].Stream = "line 3", "line 4", "stderr"
	second, err := s.AppendLogs(ctx, b, more, 100)
	if err != nil {
		t.Fatal(err)
	}
	stored := append(first, second...)
	if len(stored) != 5 {
		t.Fatalf("AppendLogs stored %d lines, want 5", len(stored))
	}
	for i, l := range stored {
		if l.TeamID != team || l.ProjectID != proj || l.ServiceID != "api" || l.BuildID != b.ID {
			t.Errorf("line %d is not the build's: %+v", i, l)
		}
		if i > 0 && l.Seq <= stored[i-1].Seq {
			t.Errorf("Seq does not increase: %d after %d", l.Seq, stored[i-1].Seq)
		}
	}
	got := readAll(t, s, builds.LogQuery{TeamID: team, ProjectID: proj, ServiceID: "api", Limit: 100})
	if !reflect.DeepEqual(got, stored) {
		t.Errorf("ReadLogs =\n%+v\nwant\n%+v", got, stored)
	}
	back := readAll(t, s, builds.LogQuery{TeamID: team, ProjectID: proj, ServiceID: "api", Backward: true, Limit: 100})
	if want := slices.Clone(stored); !reflect.DeepEqual(back, func() []builds.LogLine { slices.Reverse(want); return want }()) {
		t.Errorf("ReadLogs backward = %v", texts(back))
	}
	if got := readAll(t, s, builds.LogQuery{TeamID: team, ProjectID: proj, ServiceID: "api", Limit: 2}); !slices.Equal(texts(got), []string{"line 0", "line 1"}) {
		t.Errorf("ReadLogs limit 2 = %v", texts(got))
	}
	back = readAll(t, s, builds.LogQuery{TeamID: team, ProjectID: proj, ServiceID: "api", Backward: true, Limit: 2})
	if !slices.Equal(texts(back), []string{"line 4", "line 3"}) || back[0].Stream != "stderr" || back[1].Stream != "stdout" {
		t.Errorf("ReadLogs backward limit 2 = %+v", back)
	}
}

func testLogsCap(t *testing.T, s builds.Store, _ Outbox) {
	ctx := context.Background()
	b := mustCreate(t, s, build("api", "b-0001", base))
	other := mustCreate(t, s, build("api", "b-0002", base))
	for _, tc := range []struct{ append, stored int }{{2, 2}, {3, 1}, {4, 0}, {1, 0}} {
		got, err := s.AppendLogs(ctx, b, lines(now(), tc.append), 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != tc.stored {
			t.Errorf("AppendLogs of %d lines stored %d, want %d", tc.append, len(got), tc.stored)
		}
	}
	if got := readAll(t, s, builds.LogQuery{TeamID: team, ProjectID: proj, ServiceID: "api", BuildID: b.ID, Limit: 100}); len(got) != 3 {
		t.Errorf("the capped build holds %d lines, want 3", len(got))
	}
	// The cap is per build.
	if got, err := s.AppendLogs(ctx, other, lines(now(), 3), 3); err != nil || len(got) != 3 {
		t.Errorf("another build's AppendLogs stored %d lines (%v), want 3", len(got), err)
	}
}

// testLogsConcurrent: a build's log writer may flush two batches at once
// (a full batch and the timer's); both are stored, and the cap holds.
func testLogsConcurrent(t *testing.T, s builds.Store, _ Outbox) {
	ctx := context.Background()
	for _, tc := range []struct {
		id          string
		max, stored int
	}{{"b-0001", 1000, 40}, {"b-0002", 25, 25}} {
		b := mustCreate(t, s, build("api", tc.id, base))
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range 8 {
			wg.Go(func() {
				<-start
				if _, err := s.AppendLogs(ctx, b, lines(now(), 5), tc.max); err != nil {
					t.Errorf("AppendLogs: %v", err)
				}
			})
		}
		close(start)
		wg.Wait()
		if got := readAll(t, s, builds.LogQuery{TeamID: team, ProjectID: proj, ServiceID: "api", BuildID: b.ID, Limit: 1000}); len(got) != tc.stored {
			t.Errorf("8 concurrent appends of 5 lines, cap %d: %d lines stored, want %d", tc.max, len(got), tc.stored)
		}
	}
}

func testLogsFilters(t *testing.T, s builds.Store, _ Outbox) {
	ctx := context.Background()
	a := mustCreate(t, s, build("api", "b-0001", base))
	b := mustCreate(t, s, build("api", "b-0002", base))
	// a at base+0,2,4,6,8 s; b at base+1,3,5,7,9 s.
	for i := range 10 {
		owner := a
		if i%2 == 1 {
			owner = b
		}
		l := builds.LogLine{Time: base.Add(time.Duration(i) * time.Second), Stream: "stdout", Text: fmt.Sprintf("t%d", i)}
		if _, err := s.AppendLogs(ctx, owner, []builds.LogLine{l}, 100); err != nil {
			t.Fatal(err)
		}
	}
	q := func(mod func(*builds.LogQuery)) []string {
		t.Helper()
		lq := builds.LogQuery{TeamID: team, ProjectID: proj, ServiceID: "api", Limit: 100}
		mod(&lq)
		return texts(readAll(t, s, lq))
	}
	for name, tc := range map[string]struct {
		mod  func(*builds.LogQuery)
		want []string
	}{
		"all":           {func(*builds.LogQuery) {}, []string{"t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7", "t8", "t9"}},
		"build":         {func(q *builds.LogQuery) { q.BuildID = b.ID }, []string{"t1", "t3", "t5", "t7", "t9"}},
		"start":         {func(q *builds.LogQuery) { q.Start = base.Add(7 * time.Second) }, []string{"t7", "t8", "t9"}},
		"end exclusive": {func(q *builds.LogQuery) { q.End = base.Add(2 * time.Second) }, []string{"t0", "t1"}},
		"window":        {func(q *builds.LogQuery) { q.Start, q.End = base.Add(3*time.Second), base.Add(6*time.Second) }, []string{"t3", "t4", "t5"}},
		"window build": {func(q *builds.LogQuery) {
			q.Start, q.End, q.BuildID = base.Add(3*time.Second), base.Add(7*time.Second), a.ID
		}, []string{"t4", "t6"}},
		"window back": {func(q *builds.LogQuery) {
			q.Start, q.End, q.Backward = base.Add(3*time.Second), base.Add(6*time.Second), true
		}, []string{"t5", "t4", "t3"}},
		"back limit":    {func(q *builds.LogQuery) { q.Backward, q.Limit, q.BuildID = true, 2, a.ID }, []string{"t8", "t6"}},
		"unknown build": {func(q *builds.LogQuery) { q.BuildID = "nope" }, []string{}},
		"other service": {func(q *builds.LogQuery) { q.ServiceID = "worker" }, []string{}},
	} {
		if got := q(tc.mod); !slices.Equal(got, tc.want) {
			t.Errorf("%s: ReadLogs = %v, want %v", name, got, tc.want)
		}
	}
}

func testLogsContinuation(t *testing.T, s builds.Store, _ Outbox) {
	ctx := context.Background()
	b := mustCreate(t, s, build("api", "b-0001", base))
	// Lines sharing a time are told apart by Seq.
	var in []builds.LogLine
	for i := range 7 {
		in = append(in, builds.LogLine{Time: base.Add(time.Duration(i/2) * time.Second), Stream: "stdout", Text: fmt.Sprintf("l%d", i)})
	}
	if _, err := s.AppendLogs(ctx, b, in, 100); err != nil {
		t.Fatal(err)
	}
	for _, backward := range []bool{false, true} {
		var got []string
		q := builds.LogQuery{TeamID: team, ProjectID: proj, ServiceID: "api", Backward: backward, Limit: 2}
		for range 10 {
			page := readAll(t, s, q)
			if len(page) == 0 {
				break
			}
			got = append(got, texts(page)...)
			last := page[len(page)-1]
			q.AfterTime, q.AfterSeq = last.Time, last.Seq
		}
		want := []string{"l0", "l1", "l2", "l3", "l4", "l5", "l6"}
		if backward {
			slices.Reverse(want)
		}
		if !slices.Equal(got, want) {
			t.Errorf("paged ReadLogs (backward %v) = %v, want %v", backward, got, want)
		}
	}
}

func testWebhook(t *testing.T, s builds.Store, _ Outbox) {
	ctx := context.Background()
	w, err := s.Webhook(ctx, key("api"), "wh-1", "secret-1")
	if err != nil {
		t.Fatal(err)
	}
	want := builds.Webhook{TeamID: team, ProjectID: proj, Kind: builds.KindService, ServiceID: "api", ID: "wh-1", Secret: "secret-1"}
	if w != want {
		t.Errorf("Webhook = %+v, want %+v", w, want)
	}
	again, err := s.Webhook(ctx, key("api"), "wh-2", "secret-2")
	if err != nil || again != want {
		t.Errorf("second Webhook = %+v, %v; want the first %+v", again, err, want)
	}
	byID, err := s.WebhookByID(ctx, "wh-1")
	if err != nil || byID != want {
		t.Errorf("WebhookByID = %+v, %v", byID, err)
	}
	if _, err := s.WebhookByID(ctx, "wh-2"); !errors.Is(err, builds.ErrNotFound) {
		t.Errorf("WebhookByID of the unused id: %v", err)
	}
	other, err := s.Webhook(ctx, key("worker"), "wh-3", "secret-3")
	if err != nil || other.ID != "wh-3" || other.Secret != "secret-3" || other.ServiceID != "worker" {
		t.Errorf("another service's Webhook = %+v, %v", other, err)
	}
}

func testWebhookConcurrent(t *testing.T, s builds.Store, _ Outbox) {
	ctx := context.Background()
	const n = 8
	got := make([]builds.Webhook, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			got[i], errs[i] = s.Webhook(ctx, key("api"), fmt.Sprintf("wh-%d", i), fmt.Sprintf("secret-%d", i))
		})
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Webhook %d: %v", i, errs[i])
		}
		if got[i] != got[0] {
			t.Errorf("concurrent first calls disagree: %+v and %+v", got[i], got[0])
		}
	}
	stored, err := s.WebhookByID(ctx, got[0].ID)
	if err != nil || stored != got[0] {
		t.Errorf("stored webhook %+v (%v), callers were given %+v", stored, err, got[0])
	}
}

func testRotateWebhook(t *testing.T, s builds.Store, _ Outbox) {
	ctx := context.Background()
	w, err := s.Webhook(ctx, key("api"), "wh-1", "secret-1")
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := s.RotateWebhook(ctx, key("api"), "wh-2", "secret-2")
	if err != nil {
		t.Fatal(err)
	}
	if rotated.ID != w.ID || rotated.Secret != "secret-2" {
		t.Errorf("RotateWebhook = %+v, want id %s with the new secret", rotated, w.ID)
	}
	for _, get := range []func() (builds.Webhook, error){
		func() (builds.Webhook, error) { return s.WebhookByID(ctx, w.ID) },
		func() (builds.Webhook, error) { return s.Webhook(ctx, key("api"), "wh-3", "secret-3") },
	} {
		if got, err := get(); err != nil || got != rotated {
			t.Errorf("after RotateWebhook: %+v, %v; want %+v", got, err, rotated)
		}
	}
	// Rotating a service that has none makes one.
	fresh, err := s.RotateWebhook(ctx, key("worker"), "wh-4", "secret-4")
	if err != nil || fresh.ID != "wh-4" || fresh.Secret != "secret-4" {
		t.Errorf("RotateWebhook of a service without one = %+v, %v", fresh, err)
	}
}

func testSeeDelivery(t *testing.T, s builds.Store, _ Outbox) {
	ctx := context.Background()
	see := func(hook, delivery string, at, before time.Time) bool {
		t.Helper()
		first, err := s.SeeDelivery(ctx, hook, delivery, at, before)
		if err != nil {
			t.Fatalf("SeeDelivery(%s, %s): %v", hook, delivery, err)
		}
		return first
	}
	long := base.Add(-24 * time.Hour)
	if !see("wh-1", "d-1", base, long) {
		t.Error("a new delivery is not first")
	}
	if see("wh-1", "d-1", base.Add(time.Minute), long) {
		t.Error("a replayed delivery is first")
	}
	if !see("wh-2", "d-1", base, long) {
		t.Error("the same delivery id of another webhook is not first")
	}
	if !see("wh-1", "d-2", base.Add(2*time.Hour), long) {
		t.Error("a second delivery is not first")
	}
	// Ids seen before `before` are forgotten; later ones are kept.
	if !see("wh-1", "d-3", base.Add(3*time.Hour), base.Add(time.Hour)) {
		t.Error("a third delivery is not first")
	}
	if !see("wh-1", "d-1", base.Add(3*time.Hour), base.Add(time.Hour)) {
		t.Error("an id older than before was not forgotten")
	}
	if see("wh-1", "d-2", base.Add(3*time.Hour), base.Add(time.Hour)) {
		t.Error("an id newer than before was forgotten")
	}
	// A forgotten id is first again; the others are kept.
	if err := s.ForgetDelivery(ctx, "wh-1", "d-2"); err != nil {
		t.Fatal(err)
	}
	if !see("wh-1", "d-2", base.Add(3*time.Hour), base.Add(time.Hour)) {
		t.Error("a forgotten delivery is not first")
	}
	if see("wh-1", "d-3", base.Add(3*time.Hour), base.Add(time.Hour)) {
		t.Error("ForgetDelivery forgot another delivery")
	}
}

// testSeeDeliveryConcurrent: a delivery sent twice at once (a retry
// racing the original) is first exactly once.
func testSeeDeliveryConcurrent(t *testing.T, s builds.Store, _ Outbox) {
	ctx := context.Background()
	var firsts int
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 8 {
		wg.Go(func() {
			<-start
			first, err := s.SeeDelivery(ctx, "wh-1", "d-1", now(), now().Add(-time.Hour))
			if err != nil {
				t.Errorf("SeeDelivery: %v", err)
			}
			if first {
				mu.Lock()
				firsts++
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	if firsts != 1 {
		t.Errorf("a delivery seen 8 times at once was first %d times, want 1", firsts)
	}
}

// testPollStateConcurrentFirst: pollers on two replicas may record a
// service's first heads at once; neither fails.
func testPollStateConcurrent(t *testing.T, s builds.Store, _ Outbox) {
	ctx := context.Background()
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 8 {
		wg.Go(func() {
			<-start
			if err := s.SetPollState(ctx, key("api"), map[string]string{"refs/heads/main": fmt.Sprintf("%040d", i)}); err != nil {
				t.Errorf("SetPollState: %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	heads, err := s.PollState(ctx, key("api"))
	if err != nil || len(heads) != 1 || len(heads["refs/heads/main"]) != 40 {
		t.Errorf("PollState = %v, %v", heads, err)
	}
}

func testPollState(t *testing.T, s builds.Store, _ Outbox) {
	ctx := context.Background()
	heads, err := s.PollState(ctx, key("api"))
	if err != nil || heads != nil {
		t.Errorf("PollState never set = %v, %v; want nil", heads, err)
	}
	first := map[string]string{"refs/heads/main": sha, "refs/pull/7/head": "fedcba9876543210fedcba9876543210fedcba98"}
	if err := s.SetPollState(ctx, key("api"), first); err != nil {
		t.Fatal(err)
	}
	if heads, err := s.PollState(ctx, key("api")); err != nil || !reflect.DeepEqual(heads, first) {
		t.Errorf("PollState = %v, %v; want %v", heads, err, first)
	}
	second := map[string]string{"refs/heads/dev": sha}
	if err := s.SetPollState(ctx, key("api"), second); err != nil {
		t.Fatal(err)
	}
	if heads, err := s.PollState(ctx, key("api")); err != nil || !reflect.DeepEqual(heads, second) {
		t.Errorf("PollState after replacing = %v, %v; want %v", heads, err, second)
	}
	if err := s.SetPollState(ctx, key("api"), map[string]string{}); err != nil {
		t.Fatal(err)
	}
	if heads, err := s.PollState(ctx, key("api")); err != nil || heads == nil || len(heads) != 0 {
		t.Errorf("PollState after setting none = %v, %v; want empty, not nil", heads, err)
	}
	if heads, err := s.PollState(ctx, key("worker")); err != nil || heads != nil {
		t.Errorf("another service's PollState = %v, %v", heads, err)
	}
}

func testIsolation(t *testing.T, s builds.Store, _ Outbox) {
	ctx := context.Background()
	b := mustCreate(t, s, build("api", "b-0001", base))
	if _, err := s.AppendLogs(ctx, b, lines(base, 2), 100); err != nil {
		t.Fatal(err)
	}
	hook, err := s.Webhook(ctx, key("api"), "wh-1", "secret-1")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetPollState(ctx, key("api"), map[string]string{"refs/heads/main": sha}); err != nil {
		t.Fatal(err)
	}
	for _, at := range []struct{ team, proj, svc string }{{"other", proj, "api"}, {team, "other", "api"}, {team, proj, "worker"}} {
		if _, err := s.GetBuild(ctx, builds.ServiceKey{TeamID: at.team, ProjectID: at.proj, ServiceID: at.svc}, b.ID); !errors.Is(err, builds.ErrNotFound) {
			t.Errorf("GetBuild from %s/%s/%s: %v", at.team, at.proj, at.svc, err)
		}
		if list, _, _, err := s.ListBuilds(ctx, builds.ServiceKey{TeamID: at.team, ProjectID: at.proj, ServiceID: at.svc}, paging.Page{Limit: 10}); err != nil || len(list) != 0 {
			t.Errorf("ListBuilds from %s/%s/%s: %d, %v", at.team, at.proj, at.svc, len(list), err)
		}
		if _, err := s.RequestAbort(ctx, builds.ServiceKey{TeamID: at.team, ProjectID: at.proj, ServiceID: at.svc}, b.ID, now()); !errors.Is(err, builds.ErrNotFound) {
			t.Errorf("RequestAbort from %s/%s/%s: %v", at.team, at.proj, at.svc, err)
		}
		foreign := b
		foreign.TeamID, foreign.ProjectID, foreign.ServiceID = at.team, at.proj, at.svc
		if _, err := s.Transition(ctx, foreign, builds.Transition{Status: builds.StatusFailure, At: now()}); !errors.Is(err, builds.ErrNotFound) {
			t.Errorf("Transition from %s/%s/%s: %v", at.team, at.proj, at.svc, err)
		}
		if got := readAll(t, s, builds.LogQuery{TeamID: at.team, ProjectID: at.proj, ServiceID: at.svc, Limit: 100}); len(got) != 0 {
			t.Errorf("ReadLogs from %s/%s/%s: %d lines", at.team, at.proj, at.svc, len(got))
		}
		if got := readAll(t, s, builds.LogQuery{TeamID: at.team, ProjectID: at.proj, ServiceID: at.svc, BuildID: b.ID, Limit: 100}); len(got) != 0 {
			t.Errorf("ReadLogs of the build from %s/%s/%s: %d lines", at.team, at.proj, at.svc, len(got))
		}
		if heads, err := s.PollState(ctx, builds.ServiceKey{TeamID: at.team, ProjectID: at.proj, ServiceID: at.svc}); err != nil || heads != nil {
			t.Errorf("PollState from %s/%s/%s: %v, %v", at.team, at.proj, at.svc, heads, err)
		}
		if keys, err := s.ProjectServices(ctx, at.team, at.proj); err != nil || (at.svc == "api" && len(keys) != 0) {
			t.Errorf("ProjectServices from %s/%s: %v, %v", at.team, at.proj, keys, err)
		}
		if gone, err := s.DeleteService(ctx, builds.ServiceKey{TeamID: at.team, ProjectID: at.proj, ServiceID: at.svc}); err != nil || len(gone) != 0 {
			t.Errorf("DeleteService from %s/%s/%s: %v, %v", at.team, at.proj, at.svc, gone, err)
		}
	}
	if w, err := s.WebhookByID(ctx, hook.ID); err != nil || w != hook {
		t.Errorf("the webhook after other services' deletion: %+v, %v", w, err)
	}
	if heads, err := s.PollState(ctx, key("api")); err != nil || heads["refs/heads/main"] != sha {
		t.Errorf("the poll state after other services' deletion: %v, %v", heads, err)
	}
	if got := mustGet(t, s, b); got.Status != builds.StatusQueued {
		t.Errorf("the build changed: %+v", got)
	}
	if got := readAll(t, s, builds.LogQuery{TeamID: team, ProjectID: proj, ServiceID: "api", Limit: 100}); len(got) != 2 {
		t.Errorf("the build's logs: %d lines, want 2", len(got))
	}
}

// testKinds: a job's builds are kept apart from those of a service with
// the same id: each lists, reads, aborts, logs, hooks and polls only its
// own, deleting one leaves the other's, and a job's events carry kind
// "job" and jobId.
func testKinds(t *testing.T, s builds.Store, outbox Outbox) {
	ctx := context.Background()
	svc := mustCreate(t, s, build("app", "b-0001", base))
	jb := build("app", "b-0002", base.Add(time.Second))
	jb.Kind = builds.KindJob
	jb = mustCreate(t, s, jb)
	if jb.Kind != builds.KindJob {
		t.Fatalf("created job build kind %q", jb.Kind)
	}
	checkEvent(t, lastEvent(t, outbox), builds.VerbQueued, jb)
	if got := mustGet(t, s, jb); got.Kind != builds.KindJob {
		t.Errorf("GetBuild(job) kind %q", got.Kind)
	}
	if _, err := s.GetBuild(ctx, key("app"), jb.ID); !errors.Is(err, builds.ErrNotFound) {
		t.Errorf("the job's build read as the service's: %v", err)
	}
	if _, err := s.GetBuild(ctx, jobKey("app"), svc.ID); !errors.Is(err, builds.ErrNotFound) {
		t.Errorf("the service's build read as the job's: %v", err)
	}
	if _, err := s.RequestAbort(ctx, key("app"), jb.ID, now()); !errors.Is(err, builds.ErrNotFound) {
		t.Errorf("the job's build aborted as the service's: %v", err)
	}
	for k, want := range map[builds.ServiceKey][]string{key("app"): {svc.ID}, jobKey("app"): {jb.ID}} {
		list, _, total, err := s.ListBuilds(ctx, k, paging.Page{Limit: 10})
		if err != nil || !reflect.DeepEqual(ids(list), want) || total != len(want) {
			t.Errorf("ListBuilds(%s) = %v, total %d, %v; want %v", k.Kind, ids(list), total, err, want)
		}
	}
	// Logs, webhooks and poll state are the owner's.
	if _, err := s.AppendLogs(ctx, jb, lines(base, 2), 100); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, s, builds.LogQuery{TeamID: team, ProjectID: proj, Kind: builds.KindService, ServiceID: "app", Limit: 100}); len(got) != 0 {
		t.Errorf("the service reads the job's log lines: %v", texts(got))
	}
	if got := readAll(t, s, builds.LogQuery{TeamID: team, ProjectID: proj, Kind: builds.KindJob, ServiceID: "app", Limit: 100}); len(got) != 2 || got[0].Kind != builds.KindJob {
		t.Errorf("the job's log lines: %+v", got)
	}
	ws, err := s.Webhook(ctx, key("app"), "wh-s", "s1")
	if err != nil {
		t.Fatal(err)
	}
	wj, err := s.Webhook(ctx, jobKey("app"), "wh-j", "s2")
	if err != nil {
		t.Fatal(err)
	}
	if ws.ID == wj.ID || wj.Kind != builds.KindJob {
		t.Errorf("webhooks %+v and %+v", ws, wj)
	}
	if err := s.SetPollState(ctx, jobKey("app"), map[string]string{"refs/heads/main": sha}); err != nil {
		t.Fatal(err)
	}
	if heads, err := s.PollState(ctx, key("app")); err != nil || len(heads) != 0 {
		t.Errorf("the service's poll state is the job's: %v, %v", heads, err)
	}
	keys, err := s.ProjectServices(ctx, team, proj)
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].Kind < keys[j].Kind })
	if want := []builds.ServiceKey{jobKey("app"), key("app")}; !reflect.DeepEqual(keys, want) {
		t.Errorf("ProjectServices = %+v, want %+v", keys, want)
	}
	// A succeeded job build announces kind "job"; deleting the job keeps
	// the service's builds.
	b := claimThis(t, s, jb)
	b = mustTransition(t, s, b, builds.Transition{Status: builds.StatusSuccess, SHA: sha, Artifact: builds.Artifact{Path: "/srv/app", Command: []string{"./run"}}, At: now()})
	d := checkEvent(t, lastEvent(t, outbox), builds.VerbSucceeded, b)
	if d["kind"] != "job" || d["jobId"] != "app" {
		t.Errorf("succeeded event of a job build: %v", d)
	}
	gone, err := s.DeleteService(ctx, jobKey("app"))
	if err != nil || len(gone) != 1 || gone[0].ID != jb.ID {
		t.Fatalf("DeleteService(job) = %v, %v", ids(gone), err)
	}
	checkEvent(t, lastEvent(t, outbox), builds.VerbDeleted, gone[0])
	if got := mustGet(t, s, svc); got.ID != svc.ID {
		t.Errorf("the service's build after the job's deletion: %+v", got)
	}
	if _, err := s.WebhookByID(ctx, ws.ID); err != nil {
		t.Errorf("the service's webhook after the job's deletion: %v", err)
	}
	if _, err := s.WebhookByID(ctx, wj.ID); !errors.Is(err, builds.ErrNotFound) {
		t.Errorf("the job's webhook after its deletion: %v", err)
	}
}

// testOrphans: an orphan is kept once (a second add changes nothing),
// listed oldest first with its artifact, and forgotten on delete.
func testOrphans(t *testing.T, s builds.Store, _ Outbox) {
	ctx := context.Background()
	if list, err := s.Orphans(ctx); err != nil || len(list) != 0 {
		t.Fatalf("orphans of an empty store: %v, %v", list, err)
	}
	a := builds.Artifact{Path: "/data/builds/artifacts/b-2/app", Command: []string{"/bin/sh", "-c", "run"}, Stack: "procfile"}
	img := builds.Artifact{Image: "localhost/slipway/p/s:abc-b-1"}
	for _, o := range []builds.Orphan{
		{BuildID: "b-2", Artifact: a, Since: base.Add(time.Minute)},
		{BuildID: "b-1", Artifact: img, Since: base},
		{BuildID: "b-2", Artifact: img, Since: base.Add(time.Hour)}, // a second add: no change
	} {
		if err := s.AddOrphan(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.Orphans(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []builds.Orphan{{BuildID: "b-1", Artifact: img, Since: base}, {BuildID: "b-2", Artifact: a, Since: base.Add(time.Minute)}}
	if !reflect.DeepEqual(list, want) {
		t.Errorf("orphans %+v, want %+v", list, want)
	}
	if err := s.DeleteOrphan(ctx, "b-1"); err != nil {
		t.Fatal(err)
	}
	if list, _ := s.Orphans(ctx); len(list) != 1 || list[0].BuildID != "b-2" {
		t.Errorf("after deleting b-1: %+v", list)
	}
}

func testLease(t *testing.T, s builds.Store, _ Outbox) {
	ctx := context.Background()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	take := func(name, owner string, at time.Time, want bool) {
		t.Helper()
		held, err := s.TakeLease(ctx, name, owner, at, at.Add(time.Minute))
		if err != nil || held != want {
			t.Fatalf("TakeLease(%s, %s, +%v) = %v, %v; want %v", name, owner, at.Sub(t0), held, err, want)
		}
	}
	take("poll", "a", t0, true)                       // nobody held it
	take("poll", "b", t0.Add(30*time.Second), false)  // a holds it until t0+1m
	take("poll", "a", t0.Add(50*time.Second), true)   // a renews: until t0+1m50s
	take("poll", "b", t0.Add(90*time.Second), false)  // a's renewed lease holds
	take("other", "b", t0.Add(90*time.Second), true)  // another lease is another row
	take("poll", "b", t0.Add(110*time.Second), true)  // a's ran out: b takes it
	take("poll", "a", t0.Add(120*time.Second), false) // and a lost it
	take("poll", "b", t0.Add(10*time.Minute), true)   // its holder takes it back even late
}

func testLeaseContended(t *testing.T, s builds.Store, _ Outbox) {
	ctx := context.Background()
	now := time.Now()
	for round := range 3 {
		at := now.Add(time.Duration(round) * time.Hour) // every round, the last lease has run out
		var held sync.Map
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range 8 {
			wg.Go(func() {
				<-start
				owner := fmt.Sprintf("r%d", i)
				ok, err := s.TakeLease(ctx, "poll", owner, at, at.Add(time.Minute))
				if err != nil {
					t.Errorf("TakeLease: %v", err)
				}
				if ok {
					held.Store(owner, true)
				}
			})
		}
		close(start)
		wg.Wait()
		n := 0
		held.Range(func(any, any) bool { n++; return true })
		if n != 1 {
			t.Errorf("round %d: %d replicas hold the lease, want 1", round, n)
		}
	}
}
