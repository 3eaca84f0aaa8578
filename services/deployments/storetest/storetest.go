// Package storetest is the contract of deployments.Store written as
// tests: every implementation runs the same suite.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/overrides"
	"github.com/slipwayhq/slipway/pkg/paging"
	"github.com/slipwayhq/slipway/pkg/probe"
	"github.com/slipwayhq/slipway/services/deployments"
)

// Factory returns an empty, migrated store and a function counting the
// events committed to its outbox.
type Factory func(t *testing.T) (deployments.Store, func() int)

// Run runs the whole suite against stores made by newStore.
func Run(t *testing.T, newStore Factory) {
	tests := map[string]func(*testing.T, deployments.Store, func() int){
		"CreateGetService":         testCreateGet,
		"CreateDuplicate":          testDuplicate,
		"GetMissing":               testMissing,
		"ListServicesPages":        testList,
		"UpdateWithRelease":        testUpdateWithRelease,
		"UpdateNoChangeNoWrite":    testUpdateNoChange,
		"UpdateMutateError":        testUpdateMutateError,
		"ConcurrentUpdates":        testConcurrentUpdates,
		"ReleasesNewestFirst":      testReleases,
		"SetReleaseStatus":         testSetReleaseStatus,
		"DeleteCascades":           testDelete,
		"TeamsAndProjectsIsolated": testIsolation,
		"LogsAppendReadTrim":       testLogs,
		"LogsLinesRead":            testLinesRead,
		"BuildSecretsRoundTrip":    testBuildSecrets,
		"DeployableBuilds":         testBuilds,
		"DeletedServiceBuilds":     testDeletedServiceBuilds,
	}
	for name, test := range tests {
		t.Run(name, func(t *testing.T) {
			s, outbox := newStore(t)
			test(t, s, outbox)
		})
	}
}

const (
	team = "acme"
	proj = "web"
)

// keepAll is a log cap the tests never reach.
var keepAll = deployments.LogCap{Lines: 1000, Bytes: 1 << 20}

// now is a time the stores represent exactly (microseconds, UTC).
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

func service(id string) deployments.Service {
	t := now()
	return deployments.Service{
		TeamID: team, ProjectID: proj, ID: id, Name: "Service " + id, Kind: deployments.KindDeployment,
		Description: "d " + id, Tags: []string{"web"}, Plan: "nf-compute-20",
		Deployable: deployments.Deployable{
			Overrides:    overrides.Overrides{ConfigType: overrides.Command, CustomCommand: "serve"},
			Ports:        []deployments.Port{{Name: "p01", Port: 8080, Protocol: "HTTP", Public: true}},
			HealthChecks: []probe.HealthCheck{{Protocol: probe.HTTP, Type: probe.Readiness, Path: "/", Port: 8080, PeriodSeconds: 1, TimeoutSeconds: 1, FailureThreshold: 3}},
			Env:          map[string]string{"SECRET": "s3cret"},
		},
		Instances: 2, GraceSeconds: 30, ReleaseID: "r000001", Releases: 1,
		Status:    deployments.Status{Status: deployments.StatusPending, Reason: deployments.ReasonDeploying, At: t},
		CreatedAt: t, UpdatedAt: t,
	}
}

func release(sv deployments.Service, id string) deployments.Release {
	return deployments.Release{
		TeamID: sv.TeamID, ProjectID: sv.ProjectID, ServiceID: sv.ID, ID: id, Cause: "create",
		Deployable: sv.Deployable, CreatedBy: "user:u1", CreatedAt: now(), Status: deployments.StatusPending,
	}
}

func event(t *testing.T, verb string) events.Event {
	t.Helper()
	ev, err := events.New("deployments", "service", verb, "s", map[string]string{"x": "y"})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func mustCreate(t *testing.T, s deployments.Store, sv deployments.Service) {
	t.Helper()
	if err := s.CreateService(context.Background(), sv, release(sv, sv.ReleaseID)); err != nil {
		t.Fatalf("CreateService(%s): %v", sv.ID, err)
	}
}

func testCreateGet(t *testing.T, s deployments.Store, outbox func() int) {
	ctx := context.Background()
	sv := service("api")
	if err := s.CreateService(ctx, sv, release(sv, "r000001"), event(t, "created")); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetService(ctx, team, proj, "api")
	if err != nil {
		t.Fatal(err)
	}
	sv.Version = 1
	if !reflect.DeepEqual(got, sv) {
		t.Errorf("GetService =\n%+v\nwant\n%+v", got, sv)
	}
	if n := outbox(); n != 1 {
		t.Errorf("outbox holds %d events, want 1", n)
	}
	r, err := s.GetRelease(ctx, team, proj, "api", "r000001")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(r.Deployable, sv.Deployable) || r.CreatedBy != "user:u1" || r.Status != deployments.StatusPending {
		t.Errorf("GetRelease = %+v", r)
	}
}

func testDuplicate(t *testing.T, s deployments.Store, outbox func() int) {
	mustCreate(t, s, service("api"))
	sv := service("api")
	err := s.CreateService(context.Background(), sv, release(sv, "r000001"), event(t, "created"))
	if !errors.Is(err, deployments.ErrAlreadyExists) {
		t.Fatalf("second CreateService: %v, want ErrAlreadyExists", err)
	}
	if n := outbox(); n != 0 {
		t.Errorf("a failed create left %d events", n)
	}
}

func testMissing(t *testing.T, s deployments.Store, _ func() int) {
	ctx := context.Background()
	if _, err := s.GetService(ctx, team, proj, "nope"); !errors.Is(err, deployments.ErrNotFound) {
		t.Errorf("GetService: %v", err)
	}
	if _, err := s.GetRelease(ctx, team, proj, "nope", "r1"); !errors.Is(err, deployments.ErrNotFound) {
		t.Errorf("GetRelease: %v", err)
	}
	if err := s.DeleteService(ctx, team, proj, "nope"); !errors.Is(err, deployments.ErrNotFound) {
		t.Errorf("DeleteService: %v", err)
	}
	_, err := s.UpdateService(ctx, team, proj, "nope", func(*deployments.Service) (*deployments.Release, []events.Event, error) { return nil, nil, nil })
	if !errors.Is(err, deployments.ErrNotFound) {
		t.Errorf("UpdateService: %v", err)
	}
}

func testList(t *testing.T, s deployments.Store, _ func() int) {
	ctx := context.Background()
	for i := range 5 {
		mustCreate(t, s, service(fmt.Sprintf("svc-%d", i)))
	}
	// Every page counts the project's whole list, wherever it starts.
	page, more, total, err := s.ListServices(ctx, team, proj, paging.Page{Limit: 2})
	if err != nil || !more || len(page) != 2 || page[0].ID != "svc-0" || total != 5 {
		t.Fatalf("first page: %d, more=%v, total=%d, %v", len(page), more, total, err)
	}
	page, more, total, err = s.ListServices(ctx, team, proj, paging.Page{Limit: 2, After: "svc-3"})
	if err != nil || more || len(page) != 1 || page[0].ID != "svc-4" || total != 5 {
		t.Fatalf("last page: %+v, more=%v, total=%d, %v", page, more, total, err)
	}
	page, _, total, err = s.ListServices(ctx, team, proj, paging.Page{Limit: 2, Offset: 2})
	if err != nil || len(page) != 2 || page[0].ID != "svc-2" || total != 5 {
		t.Fatalf("offset page: %+v, total=%d, %v", page, total, err)
	}
	if page, _, total, err := s.ListServices(ctx, team, "elsewhere", paging.Page{Limit: 2}); err != nil || len(page) != 0 || total != 0 {
		t.Fatalf("another project's services: %+v, total=%d, %v", page, total, err)
	}
	all, err := s.AllServices(ctx)
	if err != nil || len(all) != 5 {
		t.Fatalf("AllServices: %d, %v", len(all), err)
	}
	mine, err := s.ProjectServices(ctx, team, proj)
	if err != nil || len(mine) != 5 {
		t.Fatalf("ProjectServices: %d, %v", len(mine), err)
	}
}

func testUpdateWithRelease(t *testing.T, s deployments.Store, outbox func() int) {
	ctx := context.Background()
	sv := service("api")
	mustCreate(t, s, sv)
	got, err := s.UpdateService(ctx, team, proj, "api", func(sv *deployments.Service) (*deployments.Release, []events.Event, error) {
		sv.Deployable.Env["NEW"] = "v" // in place: the store gave a copy
		sv.Releases++
		sv.ReleaseID = "r000002"
		r := release(*sv, "r000002")
		r.Cause = "runtime-environment"
		return &r, []events.Event{event(t, "updated")}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 2 || got.ReleaseID != "r000002" || got.Deployable.Env["NEW"] != "v" {
		t.Errorf("UpdateService = %+v", got)
	}
	r, err := s.GetRelease(ctx, team, proj, "api", "r000002")
	if err != nil || r.Deployable.Env["NEW"] != "v" || r.Cause != "runtime-environment" {
		t.Errorf("new release = %+v, %v", r, err)
	}
	first, err := s.GetRelease(ctx, team, proj, "api", "r000001")
	if err != nil || first.Deployable.Env["NEW"] != "" {
		t.Errorf("the first release changed: %+v, %v", first, err)
	}
	if n := outbox(); n != 1 {
		t.Errorf("outbox holds %d events, want 1", n)
	}
}

func testUpdateNoChange(t *testing.T, s deployments.Store, outbox func() int) {
	ctx := context.Background()
	mustCreate(t, s, service("api"))
	got, err := s.UpdateService(ctx, team, proj, "api", func(sv *deployments.Service) (*deployments.Release, []events.Event, error) {
		sv.Tags = append([]string(nil), sv.Tags...)
		return nil, nil, nil
	})
	if err != nil || got.Version != 1 {
		t.Fatalf("a no-op update wrote: version %d, %v", got.Version, err)
	}
	if n := outbox(); n != 0 {
		t.Errorf("outbox holds %d events", n)
	}
}

func testUpdateMutateError(t *testing.T, s deployments.Store, _ func() int) {
	ctx := context.Background()
	mustCreate(t, s, service("api"))
	boom := errors.New("boom")
	_, err := s.UpdateService(ctx, team, proj, "api", func(sv *deployments.Service) (*deployments.Release, []events.Event, error) {
		sv.Instances = 9
		return nil, nil, boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("UpdateService: %v, want mutate's error", err)
	}
	got, _ := s.GetService(ctx, team, proj, "api")
	if got.Instances != 2 || got.Version != 1 {
		t.Errorf("a failed update was written: %+v", got)
	}
}

func testConcurrentUpdates(t *testing.T, s deployments.Store, _ func() int) {
	ctx := context.Background()
	mustCreate(t, s, service("api"))
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.UpdateService(ctx, team, proj, "api", func(sv *deployments.Service) (*deployments.Release, []events.Event, error) {
				sv.Restart++
				return nil, nil, nil
			})
			if err != nil && !errors.Is(err, deployments.ErrConflict) {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got, _ := s.GetService(ctx, team, proj, "api")
	if got.Restart != got.Version-1 {
		t.Errorf("Restart %d after %d writes: an update was lost", got.Restart, got.Version-1)
	}
}

func testReleases(t *testing.T, s deployments.Store, _ func() int) {
	ctx := context.Background()
	sv := service("api")
	mustCreate(t, s, sv)
	for i := 2; i <= 4; i++ {
		_, err := s.UpdateService(ctx, team, proj, "api", func(sv *deployments.Service) (*deployments.Release, []events.Event, error) {
			sv.ReleaseID = fmt.Sprintf("r%06d", i)
			r := release(*sv, sv.ReleaseID)
			return &r, nil, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	page, more, total, err := s.ListReleases(ctx, team, proj, "api", paging.Page{Limit: 3})
	if err != nil || !more || len(page) != 3 || page[0].ID != "r000004" || page[2].ID != "r000002" || total != 4 {
		t.Fatalf("first page: %+v more=%v total=%d %v", page, more, total, err)
	}
	page, more, total, err = s.ListReleases(ctx, team, proj, "api", paging.Page{Limit: 3, After: "r000002"})
	if err != nil || more || len(page) != 1 || page[0].ID != "r000001" || total != 4 {
		t.Fatalf("next page: %+v more=%v total=%d %v", page, more, total, err)
	}
	if page, _, total, err := s.ListReleases(ctx, team, proj, "nope", paging.Page{Limit: 3}); err != nil || len(page) != 0 || total != 0 {
		t.Fatalf("another service's releases: %+v total=%d %v", page, total, err)
	}
}

func testSetReleaseStatus(t *testing.T, s deployments.Store, outbox func() int) {
	ctx := context.Background()
	mustCreate(t, s, service("api"))
	err := s.SetReleaseStatus(ctx, team, proj, "api", "r000001", deployments.StatusFailed, "not ready", func(sv *deployments.Service) []events.Event {
		sv.Status = deployments.Status{Status: deployments.StatusFailed, Reason: deployments.ReasonDeploying, Message: "not ready", At: now()}
		return []events.Event{event(t, "failed")}
	})
	if err != nil {
		t.Fatal(err)
	}
	r, _ := s.GetRelease(ctx, team, proj, "api", "r000001")
	sv, _ := s.GetService(ctx, team, proj, "api")
	if r.Status != deployments.StatusFailed || r.Reason != "not ready" || sv.Status.Status != deployments.StatusFailed || sv.Status.Message != "not ready" {
		t.Errorf("release %+v, service status %+v", r, sv.Status)
	}
	if n := outbox(); n != 1 {
		t.Errorf("outbox holds %d events, want 1", n)
	}
	if err := s.SetReleaseStatus(ctx, team, proj, "api", "r999999", deployments.StatusCompleted, "", nil); !errors.Is(err, deployments.ErrNotFound) {
		t.Errorf("unknown release: %v", err)
	}
	if n := outbox(); n != 1 {
		t.Errorf("a failed status change left events: %d", n)
	}
}

func testDelete(t *testing.T, s deployments.Store, outbox func() int) {
	ctx := context.Background()
	mustCreate(t, s, service("api"))
	src := deployments.LogSource{TeamID: team, ProjectID: proj, ServiceID: "api", Container: "api-1", Workload: "w1"}
	if _, err := s.AppendLogs(ctx, src, 1, keepAll, []deployments.LogLine{{Time: now(), Stream: "stdout", Text: "hi"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteService(ctx, team, proj, "api", event(t, "deleted")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetRelease(ctx, team, proj, "api", "r000001"); !errors.Is(err, deployments.ErrNotFound) {
		t.Errorf("the release outlived its service: %v", err)
	}
	lines, err := s.ReadLogs(ctx, deployments.LogQuery{TeamID: team, ProjectID: proj, ServiceID: "api", Limit: 10})
	if err != nil || len(lines) != 0 {
		t.Errorf("logs outlived the service: %d, %v", len(lines), err)
	}
	if n, _ := s.LinesRead(ctx, src); n != 0 {
		t.Errorf("the log offset outlived the service: %d", n)
	}
	// A pump still running stores nothing for the deleted service.
	if _, err := s.AppendLogs(ctx, src, 1, keepAll, []deployments.LogLine{{Time: now(), Text: "late"}}); !errors.Is(err, deployments.ErrNotFound) {
		t.Errorf("AppendLogs for a deleted service: %v, want ErrNotFound", err)
	}
	if lines, _ := s.ReadLogs(ctx, deployments.LogQuery{TeamID: team, ProjectID: proj, ServiceID: "api", Limit: 10}); len(lines) != 0 {
		t.Errorf("a late line was stored for a deleted service")
	}
	// A service made again under the same name starts afresh.
	mustCreate(t, s, service("api"))
	if n := outbox(); n != 1 {
		t.Errorf("outbox holds %d events, want 1", n)
	}
}

func testIsolation(t *testing.T, s deployments.Store, _ func() int) {
	ctx := context.Background()
	mustCreate(t, s, service("api"))
	other := service("api")
	other.TeamID = "other"
	mustCreate(t, s, other)
	elsewhere := service("api")
	elsewhere.ProjectID = "docs"
	mustCreate(t, s, elsewhere)
	if err := s.DeleteService(ctx, "other", proj, "api"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetService(ctx, team, proj, "api"); err != nil {
		t.Errorf("deleting another team's service removed ours: %v", err)
	}
	list, _, _, _ := s.ListServices(ctx, team, proj, paging.Page{Limit: 10})
	if len(list) != 1 {
		t.Errorf("ListServices sees %d services", len(list))
	}
}

func testLogs(t *testing.T, s deployments.Store, _ func() int) {
	ctx := context.Background()
	mustCreate(t, s, service("api"))
	src := deployments.LogSource{TeamID: team, ProjectID: proj, ServiceID: "api", Container: "api-1", Workload: "w1"}
	base := now()
	var lines []deployments.LogLine
	for i := range 10 {
		lines = append(lines, deployments.LogLine{Time: base.Add(time.Duration(i) * time.Millisecond), Stream: "stdout", Text: fmt.Sprintf("line %d", i)})
	}
	stored, err := s.AppendLogs(ctx, src, 10, deployments.LogCap{Lines: 6, Bytes: 1 << 20}, lines)
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != 10 || stored[0].Seq == 0 || stored[0].Container != "api-1" || stored[0].ServiceID != "api" {
		t.Fatalf("AppendLogs = %+v", stored[:1])
	}
	got, err := s.ReadLogs(ctx, deployments.LogQuery{TeamID: team, ProjectID: proj, ServiceID: "api", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 6 || got[0].Text != "line 4" || got[5].Text != "line 9" {
		t.Fatalf("after the cap the service keeps its newest 6 lines; got %d from %q", len(got), got[0].Text)
	}
	back, err := s.ReadLogs(ctx, deployments.LogQuery{TeamID: team, ProjectID: proj, ServiceID: "api", Limit: 2, Backward: true})
	if err != nil || len(back) != 2 || back[0].Text != "line 9" {
		t.Fatalf("backward: %+v %v", back, err)
	}
	next, err := s.ReadLogs(ctx, deployments.LogQuery{TeamID: team, ProjectID: proj, ServiceID: "api", Limit: 2, Backward: true, AfterTime: back[1].Time, AfterSeq: back[1].Seq})
	if err != nil || len(next) != 2 || next[0].Text != "line 7" {
		t.Fatalf("continued: %+v %v", next, err)
	}
	ranged, err := s.ReadLogs(ctx, deployments.LogQuery{TeamID: team, ProjectID: proj, ServiceID: "api", Limit: 100,
		Start: base.Add(5 * time.Millisecond), End: base.Add(7 * time.Millisecond)})
	if err != nil || len(ranged) != 2 || ranged[0].Text != "line 5" {
		t.Fatalf("range: %+v %v", ranged, err)
	}
	other, err := s.ReadLogs(ctx, deployments.LogQuery{TeamID: team, ProjectID: proj, ServiceID: "api", Container: "api-2", Limit: 100})
	if err != nil || len(other) != 0 {
		t.Fatalf("container filter: %+v %v", other, err)
	}

	// The byte cap: 6 lines of 6 bytes stay (36); a 10-byte line makes
	// 46 > 40, so the oldest goes (40, within the cap).
	more := []deployments.LogLine{{Time: base.Add(time.Second), Stream: "stdout", Text: "0123456789"}}
	if _, err := s.AppendLogs(ctx, src, 1, deployments.LogCap{Lines: 100, Bytes: 40}, more); err != nil {
		t.Fatal(err)
	}
	got, err = s.ReadLogs(ctx, deployments.LogQuery{TeamID: team, ProjectID: proj, ServiceID: "api", Limit: 100})
	if err != nil || len(got) != 6 || got[0].Text != "line 5" || got[5].Text != "0123456789" {
		t.Fatalf("after the byte cap: %d lines from %q, %v", len(got), got[0].Text, err)
	}
	// Another service's lines count against its own cap only.
	mustCreate(t, s, service("web"))
	web := deployments.LogSource{TeamID: team, ProjectID: proj, ServiceID: "web", Container: "web-1", Workload: "w9"}
	if _, err := s.AppendLogs(ctx, web, 1, deployments.LogCap{Lines: 1, Bytes: 40}, more); err != nil {
		t.Fatal(err)
	}
	if got, _ = s.ReadLogs(ctx, deployments.LogQuery{TeamID: team, ProjectID: proj, ServiceID: "api", Limit: 100}); len(got) != 6 {
		t.Fatalf("another service's append trimmed this one: %d lines", len(got))
	}
}

func testLinesRead(t *testing.T, s deployments.Store, _ func() int) {
	ctx := context.Background()
	mustCreate(t, s, service("api"))
	src := deployments.LogSource{TeamID: team, ProjectID: proj, ServiceID: "api", Container: "api-1", Workload: "w1"}
	if n, err := s.LinesRead(ctx, src); err != nil || n != 0 {
		t.Fatalf("LinesRead of a new instance: %d, %v", n, err)
	}
	if _, err := s.AppendLogs(ctx, src, 3, keepAll, []deployments.LogLine{{Time: now(), Text: "a"}, {Time: now(), Text: "b"}}); err != nil {
		t.Fatal(err)
	}
	// Lines dropped by the pump count too, with nothing stored.
	if _, err := s.AppendLogs(ctx, src, 4, keepAll, nil); err != nil {
		t.Fatal(err)
	}
	if n, err := s.LinesRead(ctx, src); err != nil || n != 7 {
		t.Fatalf("LinesRead = %d, %v; want 7", n, err)
	}
	// A restarted instance (same name, new workload) starts afresh.
	other := src
	other.Workload = "w2"
	if n, _ := s.LinesRead(ctx, other); n != 0 {
		t.Errorf("another workload's count: %d", n)
	}
}

// testBuildSecrets: a build service's credentials, build arguments and
// files and a deployment service's internal source and resolved build come
// back as stored.
func testBuildSecrets(t *testing.T, s deployments.Store, _ func() int) {
	ctx := context.Background()
	sv := service("builder")
	sv.Kind, sv.Deployable, sv.ReleaseID, sv.Releases = deployments.KindBuild, deployments.Deployable{}, "", 0
	sv.Build = deployments.Build{
		VcsData: `{"projectUrl":"https://git.example/a/b","projectType":"self-hosted"}`, BuildSettings: `{"dockerfile":{}}`,
		Credentials: &deployments.Credentials{Username: "bot", Password: "t0ken"},
		Arguments:   map[string]string{"NPM_TOKEN": "n"}, Files: map[string]deployments.SecretFile{"/a/.npmrc": {Data: "eA==", Encoding: "utf-8"}},
		DisabledCI: true,
	}
	if err := s.CreateService(ctx, sv, deployments.Release{}); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetService(ctx, team, proj, "builder")
	if err != nil {
		t.Fatal(err)
	}
	sv.Version = 1
	if !reflect.DeepEqual(got, sv) {
		t.Errorf("GetService =\n%+v\nwant\n%+v", got, sv)
	}
	web := service("web")
	web.Internal = &deployments.Internal{ID: "builder", Branch: "main", BuildSHA: deployments.Latest, Repository: "https://git.example/a/b"}
	web.Deployable.Build = &deployments.BuildRef{Service: "builder", ID: "b1", SHA: "abc1234", Branch: "main", Path: "/data/b1/app", Command: []string{"./run"}}
	mustCreate(t, s, web)
	got, err = s.GetService(ctx, team, proj, "web")
	if err != nil {
		t.Fatal(err)
	}
	web.Version = 1
	if !reflect.DeepEqual(got, web) {
		t.Errorf("GetService =\n%+v\nwant\n%+v", got, web)
	}
	r, err := s.GetRelease(ctx, team, proj, "web", "r000001")
	if err != nil || !reflect.DeepEqual(r.Deployable.Build, web.Deployable.Build) {
		t.Errorf("GetRelease = %+v, %v", r.Deployable.Build, err)
	}
}

func build(id, branch, sha string, at time.Time) deployments.DeployableBuild {
	return deployments.DeployableBuild{TeamID: team, ProjectID: proj, ServiceID: "builder", ID: id, Branch: branch, SHA: sha,
		Path: "/data/" + id + "/app", Command: []string{"./start", id}, ConcludedAt: at}
}

// testBuilds: deployable builds are found by id, by commit (prefix) and
// as the newest of a branch; a deleted build stays deleted, even when
// recorded again.
func testBuilds(t *testing.T, s deployments.Store, _ func() int) {
	ctx := context.Background()
	t0 := now()
	b1 := build("b1", "main", "1111111aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", t0)
	b2 := build("b2", "main", "2222222bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", t0.Add(time.Second))
	b3 := build("b3", "dev", "3333333ccccccccccccccccccccccccccccccccc", t0.Add(2*time.Second))
	for _, b := range []deployments.DeployableBuild{b1, b2, b3, b1} { // b1 twice: recorded once
		if err := s.PutBuild(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.FindBuild(ctx, team, proj, "builder", deployments.BuildQuery{Branch: "none"}); !errors.Is(err, deployments.ErrNotFound) {
		t.Errorf("FindBuild of an unbuilt branch: %v, want ErrNotFound", err)
	}
	got, err := s.GetBuild(ctx, team, proj, "builder", "b1")
	if err != nil || !reflect.DeepEqual(got, b1) {
		t.Errorf("GetBuild = %+v, %v; want %+v", got, err, b1)
	}
	for _, c := range []struct {
		q    deployments.BuildQuery
		want string
	}{
		{deployments.BuildQuery{Branch: "main"}, "b2"},
		{deployments.BuildQuery{Branch: "dev"}, "b3"},
		{deployments.BuildQuery{SHA: "1111111"}, "b1"},
		{deployments.BuildQuery{SHA: "2222222bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", Branch: "main"}, "b2"},
	} {
		got, err := s.FindBuild(ctx, team, proj, "builder", c.q)
		if err != nil || got.ID != c.want {
			t.Errorf("FindBuild(%+v) = %s, %v; want %s", c.q, got.ID, err, c.want)
		}
	}
	if _, err := s.FindBuild(ctx, team, proj, "builder", deployments.BuildQuery{SHA: "3333333", Branch: "main"}); !errors.Is(err, deployments.ErrNotFound) {
		t.Errorf("FindBuild of a commit on another branch: %v", err)
	}
	// Another team's, project's or service's builds are not these.
	for _, key := range [][3]string{{"other", proj, "builder"}, {team, "other", "builder"}, {team, proj, "other"}} {
		if _, err := s.FindBuild(ctx, key[0], key[1], key[2], deployments.BuildQuery{Branch: "main"}); !errors.Is(err, deployments.ErrNotFound) {
			t.Errorf("FindBuild in %v: %v", key, err)
		}
	}
	// Deleting b2 makes b1 main's newest; recording b2 again keeps it
	// deleted; deleting an unknown build keeps it from being recorded.
	if err := s.DeleteBuild(ctx, team, proj, "builder", "b2"); err != nil {
		t.Fatal(err)
	}
	if err := s.PutBuild(ctx, b2); err != nil {
		t.Fatal(err)
	}
	if got, err := s.FindBuild(ctx, team, proj, "builder", deployments.BuildQuery{Branch: "main"}); err != nil || got.ID != "b1" {
		t.Errorf("newest of main after deleting b2: %s, %v", got.ID, err)
	}
	if got, err := s.GetBuild(ctx, team, proj, "builder", "b2"); err != nil || !got.Deleted {
		t.Errorf("GetBuild of a deleted build: %+v, %v", got, err)
	}
	if err := s.DeleteBuild(ctx, team, proj, "builder", "b9"); err != nil {
		t.Fatal(err)
	}
	if err := s.PutBuild(ctx, build("b9", "main", "9999999", t0.Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.FindBuild(ctx, team, proj, "builder", deployments.BuildQuery{Branch: "main"}); got.ID != "b1" {
		t.Errorf("a build deleted before it was recorded came back: %s", got.ID)
	}
	if _, err := s.GetBuild(ctx, team, proj, "builder", "nope"); !errors.Is(err, deployments.ErrNotFound) {
		t.Errorf("GetBuild of an unknown build: %v", err)
	}
}

// testDeletedServiceBuilds: deleting a build service makes its builds
// undeployable, and a late record does not bring them back.
func testDeletedServiceBuilds(t *testing.T, s deployments.Store, _ func() int) {
	ctx := context.Background()
	mustCreate(t, s, service("builder"))
	b := build("b1", "main", "1111111", now())
	if err := s.PutBuild(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteService(ctx, team, proj, "builder"); err != nil {
		t.Fatal(err)
	}
	if err := s.PutBuild(ctx, b); err != nil {
		t.Fatal(err)
	}
	if _, err := s.FindBuild(ctx, team, proj, "builder", deployments.BuildQuery{Branch: "main"}); !errors.Is(err, deployments.ErrNotFound) {
		t.Errorf("a deleted service's build is deployable: %v", err)
	}
}
