// Package storetest is the contract of jobs.Store written as tests: every
// implementation runs the same suite.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/paging"
	"github.com/slipwayhq/slipway/pkg/vcs"
	"github.com/slipwayhq/slipway/services/jobs"
)

// Factory returns an empty, migrated store and a function counting the
// events committed to its outbox.
type Factory func(t *testing.T) (jobs.Store, func() int)

// Run runs the whole suite against stores made by newStore.
func Run(t *testing.T, newStore Factory) {
	tests := map[string]func(*testing.T, jobs.Store, func() int){
		"CreateGetJob":              testCreateGetJob,
		"CreateJobDuplicate":        testCreateJobDuplicate,
		"GetMissing":                testGetMissing,
		"ListJobsPages":             testListJobs,
		"UpdateJobAndEvents":        testUpdateJob,
		"UpdateJobInPlaceMaps":      testUpdateJobInPlace,
		"UpdateJobMutateError":      testUpdateJobMutateError,
		"ConcurrentJobUpdates":      testConcurrentJobUpdates,
		"DeleteJobCascades":         testDeleteJob,
		"TeamsAndProjectsIsolated":  testIsolation,
		"DueCronJobs":               testDueCronJobs,
		"ClaimTickRace":             testClaimTick,
		"CreateGetRun":              testCreateGetRun,
		"CreateRunRules":            testCreateRunRules,
		"ListRunsNewestFirst":       testListRuns,
		"ActiveRuns":                testActiveRuns,
		"UpdateRunAndEvents":        testUpdateRun,
		"ConcurrentRunUpdates":      testConcurrentRunUpdates,
		"OrphanedRunsAndLeases":     testOrphanedRuns,
		"LogsAppendRead":            testLogsAppendRead,
		"LogsBoundsAndFilters":      testLogsFilters,
		"LogsKeysetContinuation":    testLogsContinuation,
		"EnvironmentsRoundTrip":     testEnvRoundTrip,
		"ClaimTickAndUpdateCompose": testClaimTickThenUpdate,
		"BuildsFromGit":             testBuildsFromGit,
		"ServiceBuilds":             testServiceBuilds,
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

// now is a time the stores represent exactly (microseconds, UTC).
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

func job(id string) jobs.Job {
	t := now()
	return jobs.Job{
		TeamID: team, ProjectID: proj, ID: id, Name: "Job " + id, Description: "d " + id,
		Tags: []string{"nightly", "db"}, Type: jobs.TypeManual, Plan: "nf-compute-20",
		Deployment: jobs.Deployment{Image: "busybox:1.36", ConfigType: "customCommand", CustomCommand: "echo hi", StorageMB: 1024, ShmMB: 64},
		Env:        map[string]string{"A": "1", "B": "two"}, BackoffLimit: 3, ActiveDeadlineSeconds: 600, RunOnSourceChange: "never",
		CreatedAt: t, UpdatedAt: t,
	}
}

func cronJob(id, schedule string, next time.Time) jobs.Job {
	j := job(id)
	j.Type, j.Schedule, j.ConcurrencyPolicy, j.NextRunAt = jobs.TypeCron, schedule, jobs.PolicyForbid, next
	return j
}

func run(jobID, id string) jobs.Run {
	return jobs.Run{
		TeamID: team, ProjectID: proj, JobID: jobID, ID: id, Name: jobID + "-" + id, Status: jobs.RunRunning,
		Spec: jobs.RunSpec{
			Deployment: jobs.Deployment{Image: "busybox:1.36", ConfigType: "default"},
			Env:        map[string]string{"RUN": id}, Plan: "nf-compute-20", MilliCPU: 200, MemoryMB: 512,
		},
		BackoffLimit: 2, StartedAt: now(),
	}
}

func event(t *testing.T, resource, verb, id string) events.Event {
	t.Helper()
	ev, err := events.New("jobs", resource, verb, id, map[string]string{"id": id})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func mustCreateJob(t *testing.T, s jobs.Store, j jobs.Job, evs ...events.Event) {
	t.Helper()
	if err := s.CreateJob(context.Background(), j, evs...); err != nil {
		t.Fatalf("CreateJob(%s/%s/%s): %v", j.TeamID, j.ProjectID, j.ID, err)
	}
}

func mustCreateRun(t *testing.T, s jobs.Store, r jobs.Run, evs ...events.Event) {
	t.Helper()
	if err := s.CreateRun(context.Background(), r, evs...); err != nil {
		t.Fatalf("CreateRun(%s/%s): %v", r.JobID, r.ID, err)
	}
}

func wantOutbox(t *testing.T, outbox func() int, want int) {
	t.Helper()
	if n := outbox(); n != want {
		t.Fatalf("outbox has %d events, want %d", n, want)
	}
}

func testCreateGetJob(t *testing.T, s jobs.Store, outbox func() int) {
	ctx := context.Background()
	want := cronJob("alpha", "*/5 * * * *", now().Add(time.Minute))
	want.Suspended = true
	mustCreateJob(t, s, want, event(t, "job", "created", "alpha"))
	got, err := s.GetJob(ctx, team, proj, "alpha")
	if err != nil {
		t.Fatal(err)
	}
	want.Version = 1
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("GetJob =\n %+v\nwant\n %+v", got, want)
	}
	wantOutbox(t, outbox, 1)

	// Zero values survive as zero values.
	bare := jobs.Job{TeamID: team, ProjectID: proj, ID: "bare", Name: "bare", Type: jobs.TypeManual}
	mustCreateJob(t, s, bare)
	got, err = s.GetJob(ctx, team, proj, "bare")
	if err != nil {
		t.Fatal(err)
	}
	bare.Version = 1
	if !reflect.DeepEqual(got, bare) {
		t.Fatalf("GetJob(bare) =\n %+v\nwant\n %+v", got, bare)
	}
}

func testCreateJobDuplicate(t *testing.T, s jobs.Store, outbox func() int) {
	mustCreateJob(t, s, job("dup"), event(t, "job", "created", "dup"))
	err := s.CreateJob(context.Background(), job("dup"), event(t, "job", "created", "dup"))
	if !errors.Is(err, jobs.ErrAlreadyExists) {
		t.Fatalf("second CreateJob = %v, want ErrAlreadyExists", err)
	}
	wantOutbox(t, outbox, 1) // no phantom event
}

func testGetMissing(t *testing.T, s jobs.Store, _ func() int) {
	ctx := context.Background()
	if _, err := s.GetJob(ctx, team, proj, "nope"); !errors.Is(err, jobs.ErrNotFound) {
		t.Fatalf("GetJob = %v, want ErrNotFound", err)
	}
	mustCreateJob(t, s, job("j"))
	if _, err := s.GetRun(ctx, team, proj, "j", "nope"); !errors.Is(err, jobs.ErrNotFound) {
		t.Fatalf("GetRun = %v, want ErrNotFound", err)
	}
	if _, err := s.UpdateRun(ctx, team, proj, "j", "nope", func(*jobs.Run) ([]events.Event, error) { return nil, nil }); !errors.Is(err, jobs.ErrNotFound) {
		t.Fatalf("UpdateRun(missing) = %v, want ErrNotFound", err)
	}
	if err := s.DeleteJob(ctx, team, proj, "nope"); !errors.Is(err, jobs.ErrNotFound) {
		t.Fatalf("DeleteJob(missing) = %v, want ErrNotFound", err)
	}
}

func testListJobs(t *testing.T, s jobs.Store, _ func() int) {
	ctx := context.Background()
	for i := range 25 {
		mustCreateJob(t, s, job(fmt.Sprintf("j-%02d", i)))
	}
	other := job("j-99")
	other.ProjectID = "elsewhere"
	mustCreateJob(t, s, other)

	// Keyset paging visits every job once, in id order.
	var seen []string
	page := paging.Page{Limit: 10}
	for round := 0; ; round++ {
		list, more, total, err := s.ListJobs(ctx, team, proj, page)
		if err != nil {
			t.Fatal(err)
		}
		// Every page counts the project's whole list, not another's jobs.
		if total != 25 {
			t.Fatalf("page %d: total = %d, want 25", round, total)
		}
		for _, j := range list {
			seen = append(seen, j.ID)
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
		t.Fatalf("paged through %d jobs, want 25: %v", len(seen), seen)
	}
	for i, id := range seen {
		if want := fmt.Sprintf("j-%02d", i); id != want {
			t.Fatalf("position %d = %s, want %s", i, id, want)
		}
	}
	list, more, total, err := s.ListJobs(ctx, team, proj, paging.Page{Offset: 20, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 5 || more || list[0].ID != "j-20" || total != 25 {
		t.Fatalf("offset page = %d jobs, more=%v, total=%d; want 5 from j-20, no more, 25", len(list), more, total)
	}
	if list[0].Env["B"] != "two" || len(list[0].Tags) != 2 {
		t.Fatalf("listed job lost its fields: %+v", list[0])
	}
	if list, _, total, err := s.ListJobs(ctx, team, "empty", paging.Page{Limit: 10}); err != nil || len(list) != 0 || total != 0 {
		t.Fatalf("ListJobs(empty) = %d jobs, total=%d, %v", len(list), total, err)
	}
	list, more, _, err = s.ListJobs(ctx, team, proj, paging.Page{Limit: 25})
	if err != nil || len(list) != 25 || more {
		t.Fatalf("exact page = %d jobs, more=%v, err=%v; want 25, false", len(list), more, err)
	}
	all, err := s.ProjectJobs(ctx, team, proj)
	if err != nil || len(all) != 25 || all[0].ID != "j-00" || all[24].ID != "j-24" {
		t.Fatalf("ProjectJobs = %d jobs, %v", len(all), err)
	}
	if none, err := s.ProjectJobs(ctx, team, "empty"); err != nil || len(none) != 0 {
		t.Fatalf("ProjectJobs(empty) = %v, %v", none, err)
	}
}

func testUpdateJob(t *testing.T, s jobs.Store, outbox func() int) {
	ctx := context.Background()
	mustCreateJob(t, s, job("upd"), event(t, "job", "created", "upd"))
	later := now().Add(time.Hour)
	got, err := s.UpdateJob(ctx, team, proj, "upd", func(j *jobs.Job) ([]events.Event, error) {
		j.Description = "new"
		j.Env = map[string]string{"C": "3"}
		j.Tags = nil
		j.Deployment.Image = "alpine:3"
		j.UpdatedAt = later
		return []events.Event{event(t, "job", "updated", "upd")}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.Description != "new" || got.Version != 2 || got.Env["C"] != "3" || got.Tags != nil {
		t.Fatalf("UpdateJob = %+v, want description new, version 2", got)
	}
	again, err := s.GetJob(ctx, team, proj, "upd")
	if err != nil || !reflect.DeepEqual(again, got) {
		t.Fatalf("GetJob after UpdateJob =\n %+v, %v\nwant\n %+v", again, err, got)
	}
	wantOutbox(t, outbox, 2)

	same, err := s.UpdateJob(ctx, team, proj, "upd", func(j *jobs.Job) ([]events.Event, error) {
		j.Version = 99 // the store's, not mutate's
		return []events.Event{event(t, "job", "updated", "upd")}, nil
	})
	if err != nil || same.Version != 2 {
		t.Fatalf("no-op UpdateJob = %+v, %v; want version 2 unchanged", same, err)
	}
	wantOutbox(t, outbox, 2) // a no-op writes nothing, not even its events
	if _, err := s.UpdateJob(ctx, team, proj, "missing", func(*jobs.Job) ([]events.Event, error) { return nil, nil }); !errors.Is(err, jobs.ErrNotFound) {
		t.Fatalf("UpdateJob(missing) = %v, want ErrNotFound", err)
	}
}

// testUpdateJobInPlace: mutate may change the job's map and slice in
// place; the change must be seen and written (not compared against
// itself).
func testUpdateJobInPlace(t *testing.T, s jobs.Store, _ func() int) {
	ctx := context.Background()
	mustCreateJob(t, s, job("inplace"))
	got, err := s.UpdateJob(ctx, team, proj, "inplace", func(j *jobs.Job) ([]events.Event, error) {
		j.Env["A"] = "changed"
		j.Tags[0] = "weekly"
		return nil, nil
	})
	if err != nil || got.Version != 2 {
		t.Fatalf("UpdateJob = %+v, %v; want version 2", got, err)
	}
	stored, _ := s.GetJob(ctx, team, proj, "inplace")
	if stored.Env["A"] != "changed" || stored.Tags[0] != "weekly" || stored.Version != 2 {
		t.Fatalf("in-place change not stored: %+v", stored)
	}
}

func testUpdateJobMutateError(t *testing.T, s jobs.Store, outbox func() int) {
	ctx := context.Background()
	mustCreateJob(t, s, job("bad"))
	boom := errors.New("boom")
	_, err := s.UpdateJob(ctx, team, proj, "bad", func(j *jobs.Job) ([]events.Event, error) {
		j.Description = "should not persist"
		return []events.Event{event(t, "job", "updated", "bad")}, boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("UpdateJob = %v, want mutate's error", err)
	}
	if got, _ := s.GetJob(ctx, team, proj, "bad"); got.Description == "should not persist" || got.Version != 1 {
		t.Fatalf("failed UpdateJob changed the job: %+v", got)
	}
	wantOutbox(t, outbox, 0)
}

// testConcurrentJobUpdates: writers increment one counter; with optimistic
// concurrency no increment is lost.
func testConcurrentJobUpdates(t *testing.T, s jobs.Store, outbox func() int) {
	ctx := context.Background()
	j := job("race")
	j.BackoffLimit = 0
	mustCreateJob(t, s, j)
	const writers, writes = 8, 5
	var wg sync.WaitGroup
	errs := make(chan error, writers*writes)
	for range writers {
		wg.Go(func() {
			for range writes {
				if _, err := s.UpdateJob(ctx, team, proj, "race", func(j *jobs.Job) ([]events.Event, error) {
					j.BackoffLimit++
					return []events.Event{event(t, "job", "updated", "race")}, nil
				}); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent UpdateJob: %v", err)
	}
	got, err := s.GetJob(ctx, team, proj, "race")
	if err != nil {
		t.Fatal(err)
	}
	if got.BackoffLimit != writers*writes || got.Version != 1+writers*writes {
		t.Fatalf("counter = %d (version %d), want %d (version %d): an update was lost",
			got.BackoffLimit, got.Version, writers*writes, 1+writers*writes)
	}
	wantOutbox(t, outbox, writers*writes) // one event per committed update
}

func logLine(jobID, runID, container string, at time.Time, text string) jobs.LogLine {
	return jobs.LogLine{TeamID: team, ProjectID: proj, JobID: jobID, RunID: runID, Container: container, Time: at, Stream: "stdout", Text: text}
}

func mustAppend(t *testing.T, s jobs.Store, lines ...jobs.LogLine) []jobs.LogLine {
	t.Helper()
	out, err := s.AppendLogs(context.Background(), lines)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func readAll(t *testing.T, s jobs.Store, q jobs.LogQuery) []jobs.LogLine {
	t.Helper()
	if q.Limit == 0 {
		q.Limit = 1000
	}
	lines, err := s.ReadLogs(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	return lines
}

func texts(lines []jobs.LogLine) string {
	var out []string
	for _, l := range lines {
		out = append(out, l.Text)
	}
	return strings.Join(out, ",")
}

func testDeleteJob(t *testing.T, s jobs.Store, outbox func() int) {
	ctx := context.Background()
	mustCreateJob(t, s, job("del"))
	mustCreateJob(t, s, job("keep"))
	at := now()
	for _, j := range []string{"del", "keep"} {
		mustCreateRun(t, s, run(j, "r1"))
		mustCreateRun(t, s, run(j, "r2"))
		mustAppend(t, s, logLine(j, "r1", "c-1", at, j+"1"), logLine(j, "r2", "c-1", at.Add(time.Second), j+"2"))
	}
	if err := s.DeleteJob(ctx, team, proj, "del", event(t, "job", "deleted", "del")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetJob(ctx, team, proj, "del"); !errors.Is(err, jobs.ErrNotFound) {
		t.Fatalf("GetJob after DeleteJob = %v, want ErrNotFound", err)
	}
	if _, err := s.GetRun(ctx, team, proj, "del", "r1"); !errors.Is(err, jobs.ErrNotFound) {
		t.Fatalf("GetRun after DeleteJob = %v, want ErrNotFound", err)
	}
	if runs, _, _, err := s.ListRuns(ctx, team, proj, "del", paging.Page{Limit: 10}); err != nil || len(runs) != 0 {
		t.Fatalf("runs after DeleteJob = %+v, %v", runs, err)
	}
	if lines := readAll(t, s, jobs.LogQuery{TeamID: team, ProjectID: proj, JobID: "del"}); len(lines) != 0 {
		t.Fatalf("logs after DeleteJob = %+v", lines)
	}
	if orphans, err := s.OrphanedRuns(ctx, "anyone", now().Add(time.Hour)); err != nil || len(orphans) != 2 {
		t.Fatalf("OrphanedRuns after DeleteJob = %d runs, %v; want the other job's 2", len(orphans), err)
	}
	// The other job keeps everything.
	if runs, _, _, err := s.ListRuns(ctx, team, proj, "keep", paging.Page{Limit: 10}); err != nil || len(runs) != 2 {
		t.Fatalf("other job's runs = %d, %v", len(runs), err)
	}
	if got := texts(readAll(t, s, jobs.LogQuery{TeamID: team, ProjectID: proj, JobID: "keep"})); got != "keep1,keep2" {
		t.Fatalf("other job's logs = %s", got)
	}
	if err := s.DeleteJob(ctx, team, proj, "del", event(t, "job", "deleted", "del")); !errors.Is(err, jobs.ErrNotFound) {
		t.Fatalf("second DeleteJob = %v, want ErrNotFound", err)
	}
	wantOutbox(t, outbox, 1)
	// The id is free again, with no history.
	mustCreateJob(t, s, job("del"))
	if runs, _, _, _ := s.ListRuns(ctx, team, proj, "del", paging.Page{Limit: 10}); len(runs) != 0 {
		t.Fatalf("recreated job inherited runs: %+v", runs)
	}
}

// testIsolation: the same job id in two teams and in two projects is three
// jobs, and nothing of one is visible, changeable or deletable through
// another.
func testIsolation(t *testing.T, s jobs.Store, _ func() int) {
	ctx := context.Background()
	mine := job("shared")
	theirs := job("shared")
	theirs.TeamID, theirs.Description = "globex", "theirs"
	sibling := job("shared")
	sibling.ProjectID, sibling.Description = "api", "sibling"
	for _, j := range []jobs.Job{mine, theirs, sibling, job("only-mine")} {
		mustCreateJob(t, s, j)
	}
	if got, err := s.GetJob(ctx, "globex", proj, "shared"); err != nil || got.Description != "theirs" {
		t.Fatalf("GetJob(globex) = %+v, %v", got, err)
	}
	if got, err := s.GetJob(ctx, team, "api", "shared"); err != nil || got.Description != "sibling" {
		t.Fatalf("GetJob(api) = %+v, %v", got, err)
	}
	for _, where := range [][2]string{{"globex", proj}, {team, "api"}} {
		tm, pr := where[0], where[1]
		if _, err := s.GetJob(ctx, tm, pr, "only-mine"); !errors.Is(err, jobs.ErrNotFound) {
			t.Fatalf("GetJob(%s/%s) = %v, want ErrNotFound", tm, pr, err)
		}
		if _, err := s.UpdateJob(ctx, tm, pr, "only-mine", func(j *jobs.Job) ([]events.Event, error) { j.Name = "x"; return nil, nil }); !errors.Is(err, jobs.ErrNotFound) {
			t.Fatalf("UpdateJob(%s/%s) = %v, want ErrNotFound", tm, pr, err)
		}
		if err := s.DeleteJob(ctx, tm, pr, "only-mine"); !errors.Is(err, jobs.ErrNotFound) {
			t.Fatalf("DeleteJob(%s/%s) = %v, want ErrNotFound", tm, pr, err)
		}
	}
	// Runs and logs are per team and project too.
	mustCreateRun(t, s, run("shared", "r1"))
	theirRun := run("shared", "r1")
	theirRun.TeamID, theirRun.Name = "globex", "theirs"
	mustCreateRun(t, s, theirRun)
	if got, err := s.GetRun(ctx, "globex", proj, "shared", "r1"); err != nil || got.Name != "theirs" {
		t.Fatalf("GetRun(globex) = %+v, %v", got, err)
	}
	if _, err := s.GetRun(ctx, team, "api", "shared", "r1"); !errors.Is(err, jobs.ErrNotFound) {
		t.Fatalf("GetRun(api) = %v, want ErrNotFound", err)
	}
	if _, err := s.UpdateRun(ctx, team, "api", "shared", "r1", func(r *jobs.Run) ([]events.Event, error) { r.Attempts++; return nil, nil }); !errors.Is(err, jobs.ErrNotFound) {
		t.Fatalf("UpdateRun(api) = %v, want ErrNotFound", err)
	}
	// A run for a job that exists only in another project is refused.
	stray := run("only-mine", "r1")
	stray.ProjectID = "api"
	if err := s.CreateRun(ctx, stray); !errors.Is(err, jobs.ErrNotFound) {
		t.Fatalf("CreateRun in a project without the job = %v, want ErrNotFound", err)
	}
	at := now()
	mine1 := logLine("shared", "r1", "c-1", at, "mine")
	their1 := logLine("shared", "r1", "c-1", at, "theirs")
	their1.TeamID = "globex"
	sib1 := logLine("shared", "r1", "c-1", at, "sibling")
	sib1.ProjectID = "api"
	mustAppend(t, s, mine1, their1, sib1)
	for _, c := range []struct{ team, project, want string }{{team, proj, "mine"}, {"globex", proj, "theirs"}, {team, "api", "sibling"}, {"initech", proj, ""}} {
		if got := texts(readAll(t, s, jobs.LogQuery{TeamID: c.team, ProjectID: c.project, JobID: "shared"})); got != c.want {
			t.Fatalf("logs of %s/%s = %q, want %q", c.team, c.project, got, c.want)
		}
	}
	// Deleting one leaves the others.
	if err := s.DeleteJob(ctx, "globex", proj, "shared"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetRun(ctx, team, proj, "shared", "r1"); err != nil {
		t.Fatalf("deleting globex's job took ours: %v", err)
	}
	if got := texts(readAll(t, s, jobs.LogQuery{TeamID: team, ProjectID: "api", JobID: "shared"})); got != "sibling" {
		t.Fatalf("deleting globex's job took the sibling's logs: %q", got)
	}
	list, _, _, err := s.ListJobs(ctx, team, "api", paging.Page{Limit: 10})
	if err != nil || len(list) != 1 || list[0].Description != "sibling" {
		t.Fatalf("ListJobs(api) = %+v, %v", list, err)
	}
}

func testDueCronJobs(t *testing.T, s jobs.Store, _ func() int) {
	ctx := context.Background()
	base := now()
	mustCreateJob(t, s, cronJob("due-early", "* * * * *", base.Add(-2*time.Minute)))
	mustCreateJob(t, s, cronJob("due-now", "* * * * *", base))
	mustCreateJob(t, s, cronJob("future", "* * * * *", base.Add(time.Minute)))
	mustCreateJob(t, s, cronJob("unscheduled", "* * * * *", time.Time{}))
	mustCreateJob(t, s, job("manual"))
	other := cronJob("due-other-team", "* * * * *", base.Add(-time.Minute))
	other.TeamID = "globex"
	mustCreateJob(t, s, other)

	due, err := s.DueCronJobs(ctx, base, 10)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, j := range due {
		ids = append(ids, j.TeamID+"/"+j.ID)
	}
	if want := []string{team + "/due-early", "globex/due-other-team", team + "/due-now"}; !slices.Equal(ids, want) {
		t.Fatalf("DueCronJobs = %v, want %v (oldest first, across teams)", ids, want)
	}
	if due[0].Env["A"] != "1" || due[0].Schedule != "* * * * *" {
		t.Fatalf("due job lost its fields: %+v", due[0])
	}
	if due, err := s.DueCronJobs(ctx, base, 1); err != nil || len(due) != 1 || due[0].ID != "due-early" {
		t.Fatalf("DueCronJobs(limit 1) = %+v, %v", due, err)
	}
	if due, err := s.DueCronJobs(ctx, base.Add(-time.Hour), 10); err != nil || len(due) != 0 {
		t.Fatalf("DueCronJobs(an hour ago) = %+v, %v", due, err)
	}
}

// testClaimTick races replicas for one tick: exactly one wins.
func testClaimTick(t *testing.T, s jobs.Store, _ func() int) {
	ctx := context.Background()
	due := now().Add(-time.Second)
	next := due.Add(time.Minute)
	mustCreateJob(t, s, cronJob("tick", "* * * * *", due))

	const replicas = 8
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	start := make(chan struct{})
	for range replicas {
		wg.Go(func() {
			<-start
			won, err := s.ClaimTick(ctx, team, proj, "tick", due, next)
			if err != nil {
				t.Errorf("ClaimTick: %v", err)
			}
			if won {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d of %d replicas claimed the tick, want exactly 1", wins, replicas)
	}
	got, err := s.GetJob(ctx, team, proj, "tick")
	if err != nil {
		t.Fatal(err)
	}
	if !got.NextRunAt.Equal(next) || got.Version != 2 {
		t.Fatalf("after the claim NextRunAt = %v (version %d), want %v (version 2)", got.NextRunAt, got.Version, next)
	}
	if due, _ := s.DueCronJobs(ctx, due.Add(time.Second), 10); len(due) != 0 {
		t.Fatalf("claimed tick still due: %+v", due)
	}
	// A stale claim, a missing job, and another team's job all lose.
	if won, err := s.ClaimTick(ctx, team, proj, "tick", due, next.Add(time.Minute)); err != nil || won {
		t.Fatalf("stale ClaimTick = %v, %v; want false", won, err)
	}
	if won, err := s.ClaimTick(ctx, team, proj, "missing", due, next); err != nil || won {
		t.Fatalf("ClaimTick(missing) = %v, %v; want false", won, err)
	}
	if won, err := s.ClaimTick(ctx, "globex", proj, "tick", next, next.Add(time.Minute)); err != nil || won {
		t.Fatalf("ClaimTick(other team) = %v, %v; want false", won, err)
	}
	// Claiming into the zero time unschedules the job.
	if won, err := s.ClaimTick(ctx, team, proj, "tick", next, time.Time{}); err != nil || !won {
		t.Fatalf("ClaimTick(to zero) = %v, %v; want true", won, err)
	}
	if got, _ := s.GetJob(ctx, team, proj, "tick"); !got.NextRunAt.IsZero() {
		t.Fatalf("NextRunAt = %v, want zero", got.NextRunAt)
	}
	if due, _ := s.DueCronJobs(ctx, next.Add(time.Hour), 10); len(due) != 0 {
		t.Fatalf("unscheduled job is due: %+v", due)
	}
}

// testClaimTickThenUpdate: an UpdateJob racing a claim must not write the
// old NextRunAt back.
func testClaimTickThenUpdate(t *testing.T, s jobs.Store, _ func() int) {
	ctx := context.Background()
	due := now()
	next := due.Add(time.Minute)
	mustCreateJob(t, s, cronJob("compose", "* * * * *", due))
	claimed := false
	got, err := s.UpdateJob(ctx, team, proj, "compose", func(j *jobs.Job) ([]events.Event, error) {
		if !claimed {
			// Another replica claims the tick between this read and write.
			claimed = true
			if won, err := s.ClaimTick(ctx, team, proj, "compose", due, next); err != nil || !won {
				t.Fatalf("ClaimTick = %v, %v", won, err)
			}
		}
		j.Description = "edited"
		return nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !got.NextRunAt.Equal(next) || got.Description != "edited" || got.Version != 3 {
		t.Fatalf("UpdateJob = NextRunAt %v, description %q, version %d; want %v, edited, 3", got.NextRunAt, got.Description, got.Version, next)
	}
	if stored, _ := s.GetJob(ctx, team, proj, "compose"); !stored.NextRunAt.Equal(next) {
		t.Fatalf("the update undid the claimed tick: NextRunAt %v", stored.NextRunAt)
	}
}

func testCreateGetRun(t *testing.T, s jobs.Store, outbox func() int) {
	ctx := context.Background()
	mustCreateJob(t, s, job("j"))
	base := now()
	code := int32(137)
	want := run("j", "r1")
	want.Reason, want.Attempts, want.Failed, want.Succeeded = jobs.ReasonError, 3, 2, 1
	want.Active, want.WorkloadID, want.ExitCode = true, "wl-123", &code
	want.Deadline, want.RetryAt = base.Add(time.Hour), base.Add(time.Second)
	want.Owner, want.LeaseUntil, want.ConcludedAt = "replica-a", base.Add(30*time.Second), base.Add(2*time.Hour)
	mustCreateRun(t, s, want, event(t, "run", "created", "r1"))
	got, err := s.GetRun(ctx, team, proj, "j", "r1")
	if err != nil {
		t.Fatal(err)
	}
	want.Version = 1
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("GetRun =\n %+v\nwant\n %+v", got, want)
	}
	wantOutbox(t, outbox, 1)

	bare := jobs.Run{TeamID: team, ProjectID: proj, JobID: "j", ID: "r0", Status: jobs.RunRunning}
	mustCreateRun(t, s, bare)
	got, err = s.GetRun(ctx, team, proj, "j", "r0")
	if err != nil {
		t.Fatal(err)
	}
	bare.Version = 1
	if !reflect.DeepEqual(got, bare) {
		t.Fatalf("GetRun(bare) =\n %+v\nwant\n %+v", got, bare)
	}
	if got.ExitCode != nil {
		t.Fatalf("ExitCode = %d, want nil", *got.ExitCode)
	}
}

func testCreateRunRules(t *testing.T, s jobs.Store, outbox func() int) {
	ctx := context.Background()
	mustCreateJob(t, s, job("j"))
	mustCreateRun(t, s, run("j", "r1"), event(t, "run", "created", "r1"))
	if err := s.CreateRun(ctx, run("j", "r1"), event(t, "run", "created", "r1")); !errors.Is(err, jobs.ErrAlreadyExists) {
		t.Fatalf("duplicate CreateRun = %v, want ErrAlreadyExists", err)
	}
	if err := s.CreateRun(ctx, run("ghost", "r1"), event(t, "run", "created", "r1")); !errors.Is(err, jobs.ErrNotFound) {
		t.Fatalf("CreateRun for a missing job = %v, want ErrNotFound", err)
	}
	wantOutbox(t, outbox, 1)
	// The same run id under another job is another run.
	mustCreateJob(t, s, job("k"))
	mustCreateRun(t, s, run("k", "r1"))
}

func testListRuns(t *testing.T, s jobs.Store, _ func() int) {
	ctx := context.Background()
	mustCreateJob(t, s, job("j"))
	mustCreateJob(t, s, job("k"))
	for i := range 23 {
		mustCreateRun(t, s, run("j", fmt.Sprintf("r-%02d", i)))
	}
	mustCreateRun(t, s, run("k", "r-99"))

	var seen []string
	page := paging.Page{Limit: 10}
	for round := 0; ; round++ {
		list, more, total, err := s.ListRuns(ctx, team, proj, "j", page)
		if err != nil {
			t.Fatal(err)
		}
		// Every page counts the job's whole list, not another job's runs.
		if total != 23 {
			t.Fatalf("page %d: total = %d, want 23", round, total)
		}
		for _, r := range list {
			seen = append(seen, r.ID)
		}
		if !more {
			break
		}
		if round > 5 {
			t.Fatal("paging does not end")
		}
		page.After = list[len(list)-1].ID
	}
	if len(seen) != 23 {
		t.Fatalf("paged through %d runs, want 23: %v", len(seen), seen)
	}
	for i, id := range seen {
		if want := fmt.Sprintf("r-%02d", 22-i); id != want {
			t.Fatalf("position %d = %s, want %s (newest first)", i, id, want)
		}
	}
	list, more, total, err := s.ListRuns(ctx, team, proj, "j", paging.Page{Offset: 20, Limit: 10})
	if err != nil || len(list) != 3 || more || list[0].ID != "r-02" || list[2].ID != "r-00" || total != 23 {
		t.Fatalf("offset page = %d runs, more=%v, total=%d, %v; want r-02..r-00, 23", len(list), more, total, err)
	}
	if list[0].Spec.Env["RUN"] != "r-02" {
		t.Fatalf("listed run lost its spec: %+v", list[0].Spec)
	}
	list, more, _, err = s.ListRuns(ctx, team, proj, "j", paging.Page{Limit: 23})
	if err != nil || len(list) != 23 || more {
		t.Fatalf("exact page = %d runs, more=%v, %v; want 23, false", len(list), more, err)
	}
	list, more, total, err = s.ListRuns(ctx, team, proj, "j", paging.Page{After: "r-00", Limit: 10})
	if err != nil || len(list) != 0 || more || total != 23 {
		t.Fatalf("page after the oldest = %d runs, more=%v, total=%d, %v", len(list), more, total, err)
	}
}

func testActiveRuns(t *testing.T, s jobs.Store, _ func() int) {
	ctx := context.Background()
	mustCreateJob(t, s, job("j"))
	mustCreateJob(t, s, job("k"))
	for i, status := range []jobs.RunStatus{jobs.RunSuccess, jobs.RunRunning, jobs.RunFailed, jobs.RunRunning} {
		r := run("j", fmt.Sprintf("r-%d", i))
		r.Status = status
		mustCreateRun(t, s, r)
	}
	mustCreateRun(t, s, run("k", "r-9"))
	active, err := s.ActiveRuns(ctx, team, proj, "j")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range active {
		ids = append(ids, r.ID)
	}
	if !slices.Equal(ids, []string{"r-1", "r-3"}) {
		t.Fatalf("ActiveRuns = %v, want [r-1 r-3]", ids)
	}
	if _, err := s.UpdateRun(ctx, team, proj, "j", "r-1", func(r *jobs.Run) ([]events.Event, error) {
		r.Status, r.ConcludedAt = jobs.RunSuccess, now()
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	if active, _ := s.ActiveRuns(ctx, team, proj, "j"); len(active) != 1 || active[0].ID != "r-3" {
		t.Fatalf("ActiveRuns after concluding r-1 = %+v", active)
	}
	if active, err := s.ActiveRuns(ctx, team, proj, "none"); err != nil || len(active) != 0 {
		t.Fatalf("ActiveRuns(no job) = %+v, %v", active, err)
	}
}

func testUpdateRun(t *testing.T, s jobs.Store, outbox func() int) {
	ctx := context.Background()
	mustCreateJob(t, s, job("j"))
	mustCreateRun(t, s, run("j", "r1"), event(t, "run", "created", "r1"))
	code := int32(1)
	got, err := s.UpdateRun(ctx, team, proj, "j", "r1", func(r *jobs.Run) ([]events.Event, error) {
		r.Status, r.Reason, r.ExitCode, r.Failed, r.Active = jobs.RunFailed, jobs.ReasonError, &code, 1, false
		r.ConcludedAt = now()
		return []events.Event{event(t, "run", "concluded", "r1")}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 2 || got.Status != jobs.RunFailed || got.ExitCode == nil || *got.ExitCode != 1 {
		t.Fatalf("UpdateRun = %+v", got)
	}
	stored, err := s.GetRun(ctx, team, proj, "j", "r1")
	if err != nil || !reflect.DeepEqual(stored, got) {
		t.Fatalf("GetRun after UpdateRun =\n %+v, %v\nwant\n %+v", stored, err, got)
	}
	wantOutbox(t, outbox, 2)

	// No change, no write, no event, even with a new but equal exit code.
	same, err := s.UpdateRun(ctx, team, proj, "j", "r1", func(r *jobs.Run) ([]events.Event, error) {
		one := int32(1)
		r.ExitCode = &one
		return []events.Event{event(t, "run", "updated", "r1")}, nil
	})
	if err != nil || same.Version != 2 {
		t.Fatalf("no-op UpdateRun = %+v, %v", same, err)
	}
	wantOutbox(t, outbox, 2)

	// In-place changes to the spec's environment are seen and stored.
	got, err = s.UpdateRun(ctx, team, proj, "j", "r1", func(r *jobs.Run) ([]events.Event, error) {
		r.Spec.Env["RUN"] = "changed"
		r.ExitCode = nil
		return nil, nil
	})
	if err != nil || got.Version != 3 {
		t.Fatalf("UpdateRun(spec) = %+v, %v", got, err)
	}
	if stored, _ := s.GetRun(ctx, team, proj, "j", "r1"); stored.Spec.Env["RUN"] != "changed" || stored.ExitCode != nil {
		t.Fatalf("stored run = %+v", stored)
	}
	boom := errors.New("boom")
	if _, err := s.UpdateRun(ctx, team, proj, "j", "r1", func(r *jobs.Run) ([]events.Event, error) {
		r.Reason = "nope"
		return nil, boom
	}); !errors.Is(err, boom) {
		t.Fatalf("UpdateRun = %v, want mutate's error", err)
	}
}

// testConcurrentRunUpdates: writers increment a run's counter while its
// owner renews the lease; no increment is lost and no renewal undone.
func testConcurrentRunUpdates(t *testing.T, s jobs.Store, _ func() int) {
	ctx := context.Background()
	mustCreateJob(t, s, job("j"))
	r := run("j", "r1")
	r.Owner, r.LeaseUntil = "me", now()
	mustCreateRun(t, s, r)
	const writers, writes = 8, 5
	var wg sync.WaitGroup
	errs := make(chan error, writers*writes+1)
	for range writers {
		wg.Go(func() {
			for range writes {
				if _, err := s.UpdateRun(ctx, team, proj, "j", "r1", func(r *jobs.Run) ([]events.Event, error) {
					r.Attempts++
					return nil, nil
				}); err != nil {
					errs <- err
				}
			}
		})
	}
	lease := now().Add(time.Hour)
	wg.Go(func() {
		for i := range 20 {
			if err := s.RenewLeases(ctx, "me", lease.Add(time.Duration(i)*time.Second)); err != nil {
				errs <- err
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent UpdateRun/RenewLeases: %v", err)
	}
	got, err := s.GetRun(ctx, team, proj, "j", "r1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Attempts != writers*writes || got.Version != 1+writers*writes {
		t.Fatalf("attempts = %d (version %d), want %d (version %d)", got.Attempts, got.Version, writers*writes, 1+writers*writes)
	}
	if want := lease.Add(19 * time.Second); !got.LeaseUntil.Equal(want) {
		t.Fatalf("LeaseUntil = %v, want the last renewal %v: an update wrote back an old lease", got.LeaseUntil, want)
	}
}

func testOrphanedRuns(t *testing.T, s jobs.Store, _ func() int) {
	ctx := context.Background()
	base := now()
	mustCreateJob(t, s, job("j"))
	other := job("j")
	other.TeamID = "globex"
	mustCreateJob(t, s, other)
	add := func(teamID, id, owner string, lease time.Time, status jobs.RunStatus) {
		r := run("j", id)
		r.TeamID, r.Owner, r.LeaseUntil, r.Status = teamID, owner, lease, status
		mustCreateRun(t, s, r)
	}
	add(team, "mine-live", "me", base.Add(time.Minute), jobs.RunRunning)
	add(team, "mine-expired", "me", base.Add(-time.Minute), jobs.RunRunning)
	add(team, "mine-done", "me", base.Add(-time.Minute), jobs.RunSuccess)
	add(team, "theirs-live", "them", base.Add(time.Minute), jobs.RunRunning)
	add("globex", "theirs-expired", "them", base.Add(-time.Second), jobs.RunRunning)
	add(team, "theirs-done", "them", base.Add(-time.Minute), jobs.RunFailed)
	add(team, "unowned", "", time.Time{}, jobs.RunRunning)

	ids := func(owner string, at time.Time) []string {
		t.Helper()
		runs, err := s.OrphanedRuns(ctx, owner, at)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range runs {
			out = append(out, r.ID)
		}
		slices.Sort(out)
		return out
	}
	// Its own runs (live or not), and anyone's expired or never-leased
	// ones; never another replica's live lease or a concluded run.
	if got, want := ids("me", base), []string{"mine-expired", "mine-live", "theirs-expired", "unowned"}; !slices.Equal(got, want) {
		t.Fatalf("OrphanedRuns(me) = %v, want %v", got, want)
	}
	if got, want := ids("them", base), []string{"mine-expired", "theirs-expired", "theirs-live", "unowned"}; !slices.Equal(got, want) {
		t.Fatalf("OrphanedRuns(them) = %v, want %v", got, want)
	}
	// Renewing extends only the owner's unconcluded runs.
	if err := s.RenewLeases(ctx, "me", base.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got, want := ids("them", base), []string{"theirs-expired", "theirs-live", "unowned"}; !slices.Equal(got, want) {
		t.Fatalf("after RenewLeases(me), OrphanedRuns(them) = %v, want %v", got, want)
	}
	for _, c := range []struct {
		team, id string
		lease    time.Time
	}{
		{team, "mine-live", base.Add(time.Hour)},
		{team, "mine-expired", base.Add(time.Hour)},
		{team, "mine-done", base.Add(-time.Minute)},
		{team, "theirs-live", base.Add(time.Minute)},
	} {
		r, err := s.GetRun(ctx, c.team, proj, "j", c.id)
		if err != nil {
			t.Fatal(err)
		}
		if !r.LeaseUntil.Equal(c.lease) || r.Version != 1 {
			t.Fatalf("%s: LeaseUntil %v (version %d), want %v (version 1)", c.id, r.LeaseUntil, r.Version, c.lease)
		}
	}
	// Once the leases lapse, another replica sees them all.
	if got, want := ids("them", base.Add(2*time.Hour)), []string{"mine-expired", "mine-live", "theirs-expired", "theirs-live", "unowned"}; !slices.Equal(got, want) {
		t.Fatalf("OrphanedRuns(them, later) = %v, want %v", got, want)
	}
	// Taking a run over is an UpdateRun that sets owner and lease.
	took, err := s.UpdateRun(ctx, team, proj, "j", "unowned", func(r *jobs.Run) ([]events.Event, error) {
		r.Owner, r.LeaseUntil = "them", base.Add(time.Minute)
		return nil, nil
	})
	if err != nil || took.Owner != "them" || !took.LeaseUntil.Equal(base.Add(time.Minute)) {
		t.Fatalf("take over = %+v, %v", took, err)
	}
	if got, want := ids("me", base), []string{"mine-expired", "mine-live", "theirs-expired"}; !slices.Equal(got, want) {
		t.Fatalf("after take-over, OrphanedRuns(me) = %v, want %v", got, want)
	}
}

func testLogsAppendRead(t *testing.T, s jobs.Store, _ func() int) {
	ctx := context.Background()
	if out, err := s.AppendLogs(ctx, nil); err != nil || len(out) != 0 {
		t.Fatalf("AppendLogs(nothing) = %v, %v", out, err)
	}
	base := now()
	in := []jobs.LogLine{
		logLine("j", "r1", "r1-1", base.Add(2*time.Second), "c"),
		logLine("j", "r1", "r1-1", base, "a"),
		logLine("j", "r1", "r1-1", base.Add(time.Second), "b"),
	}
	in[1].Stream = "stderr"
	out := mustAppend(t, s, in...)
	if len(out) != 3 {
		t.Fatalf("AppendLogs returned %d lines", len(out))
	}
	for i := range out {
		if out[i].Seq <= 0 || (i > 0 && out[i].Seq <= out[i-1].Seq) {
			t.Fatalf("Seq %v not positive and increasing", out)
		}
		want := in[i]
		want.Seq = out[i].Seq
		if !reflect.DeepEqual(out[i], want) {
			t.Fatalf("appended line %d = %+v, want %+v", i, out[i], want)
		}
	}
	if in[0].Seq != 0 {
		t.Fatal("AppendLogs changed its argument")
	}
	more := mustAppend(t, s, logLine("j", "r1", "r1-1", base.Add(3*time.Second), "d"))
	if more[0].Seq <= out[2].Seq {
		t.Fatalf("Seq %d after %d: not increasing across appends", more[0].Seq, out[2].Seq)
	}
	fwd := readAll(t, s, jobs.LogQuery{TeamID: team, ProjectID: proj, JobID: "j"})
	if texts(fwd) != "a,b,c,d" {
		t.Fatalf("forward = %s, want a,b,c,d (by time)", texts(fwd))
	}
	if fwd[0].Stream != "stderr" || !fwd[0].Time.Equal(base) || fwd[0].Container != "r1-1" || fwd[0].RunID != "r1" || fwd[0].Seq != out[1].Seq {
		t.Fatalf("read line = %+v", fwd[0])
	}
	if !reflect.DeepEqual(fwd[0], out[1]) {
		t.Fatalf("read line =\n %+v\nappended\n %+v", fwd[0], out[1])
	}
	back := readAll(t, s, jobs.LogQuery{TeamID: team, ProjectID: proj, JobID: "j", Backward: true})
	if texts(back) != "d,c,b,a" {
		t.Fatalf("backward = %s, want d,c,b,a", texts(back))
	}
	if got := readAll(t, s, jobs.LogQuery{TeamID: team, ProjectID: proj, JobID: "j", Limit: 2}); texts(got) != "a,b" {
		t.Fatalf("forward limit 2 = %s", texts(got))
	}
	if got := readAll(t, s, jobs.LogQuery{TeamID: team, ProjectID: proj, JobID: "j", Limit: 2, Backward: true}); texts(got) != "d,c" {
		t.Fatalf("backward limit 2 = %s", texts(got))
	}
	if got := readAll(t, s, jobs.LogQuery{TeamID: team, ProjectID: proj, JobID: "other"}); len(got) != 0 {
		t.Fatalf("another job's logs = %s", texts(got))
	}
}

func testLogsFilters(t *testing.T, s jobs.Store, _ func() int) {
	base := now()
	sec := func(n int) time.Time { return base.Add(time.Duration(n) * time.Second) }
	mustAppend(t, s,
		logLine("j", "r1", "r1-1", sec(0), "r1a"),
		logLine("j", "r1", "r1-2", sec(1), "r1b"),
		logLine("j", "r2", "r2-1", sec(2), "r2a"),
		logLine("j", "r1", "r1-2", sec(3), "r1c"),
		logLine("j", "r2", "r2-1", sec(4), "r2b"),
	)
	q := func(mod func(*jobs.LogQuery)) string {
		q := jobs.LogQuery{TeamID: team, ProjectID: proj, JobID: "j"}
		mod(&q)
		return texts(readAll(t, s, q))
	}
	for _, c := range []struct {
		name string
		mod  func(*jobs.LogQuery)
		want string
	}{
		{"run", func(q *jobs.LogQuery) { q.RunID = "r1" }, "r1a,r1b,r1c"},
		{"run backward", func(q *jobs.LogQuery) { q.RunID = "r2"; q.Backward = true }, "r2b,r2a"},
		{"container", func(q *jobs.LogQuery) { q.Container = "r1-2" }, "r1b,r1c"},
		{"run and container", func(q *jobs.LogQuery) { q.RunID = "r2"; q.Container = "r1-2" }, ""},
		{"start inclusive", func(q *jobs.LogQuery) { q.Start = sec(2) }, "r2a,r1c,r2b"},
		{"end exclusive", func(q *jobs.LogQuery) { q.End = sec(2) }, "r1a,r1b"},
		{"start and end", func(q *jobs.LogQuery) { q.Start, q.End = sec(1), sec(4) }, "r1b,r2a,r1c"},
		{"start and end backward", func(q *jobs.LogQuery) { q.Start, q.End, q.Backward = sec(1), sec(4), true }, "r1c,r2a,r1b"},
		{"bounds and limit backward", func(q *jobs.LogQuery) { q.End, q.Backward, q.Limit = sec(4), true, 2 }, "r1c,r2a"},
		{"empty window", func(q *jobs.LogQuery) { q.Start, q.End = sec(10), sec(20) }, ""},
		{"bounds and run", func(q *jobs.LogQuery) { q.Start, q.RunID = sec(1), "r1" }, "r1b,r1c"},
	} {
		if got := q(c.mod); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
	if _, err := s.ReadLogs(context.Background(), jobs.LogQuery{TeamID: team, ProjectID: proj, JobID: "j"}); err == nil {
		t.Error("ReadLogs with no limit succeeded")
	}
}

// testLogsContinuation reads a job's lines a few at a time in both
// directions, continuing from the last line each time: every line comes
// exactly once, in order, including lines that share a timestamp.
func testLogsContinuation(t *testing.T, s jobs.Store, _ func() int) {
	base := now()
	var in []jobs.LogLine
	for i := range 40 {
		// Groups of 4 lines share a time, so (Time, Seq) must break ties.
		in = append(in, logLine("j", "r1", "r1-1", base.Add(time.Duration(i/4)*time.Millisecond), fmt.Sprintf("l%02d", i)))
	}
	mustAppend(t, s, in[:20]...)
	mustAppend(t, s, in[20:]...)
	var want []string
	for _, l := range in {
		want = append(want, l.Text)
	}
	for _, limit := range []int{1, 3, 4, 7, 40, 100} {
		for _, backward := range []bool{false, true} {
			q := jobs.LogQuery{TeamID: team, ProjectID: proj, JobID: "j", Backward: backward, Limit: limit}
			var got []string
			for round := 0; ; round++ {
				if round > 50 {
					t.Fatalf("limit %d backward %v: reading does not end", limit, backward)
				}
				lines, err := s.ReadLogs(context.Background(), q)
				if err != nil {
					t.Fatal(err)
				}
				if len(lines) > limit {
					t.Fatalf("limit %d: got %d lines", limit, len(lines))
				}
				for _, l := range lines {
					got = append(got, l.Text)
				}
				if len(lines) < limit {
					break
				}
				last := lines[len(lines)-1]
				q.AfterTime, q.AfterSeq = last.Time, last.Seq
			}
			w := slices.Clone(want)
			if backward {
				slices.Reverse(w)
			}
			if !slices.Equal(got, w) {
				t.Fatalf("limit %d backward %v read\n %v\nwant\n %v", limit, backward, got, w)
			}
		}
	}
	// Continuation combines with bounds.
	lines := readAll(t, s, jobs.LogQuery{TeamID: team, ProjectID: proj, JobID: "j", Start: base.Add(2 * time.Millisecond), Limit: 2})
	if texts(lines) != "l08,l09" {
		t.Fatalf("bounded first page = %s", texts(lines))
	}
	lines = readAll(t, s, jobs.LogQuery{TeamID: team, ProjectID: proj, JobID: "j", End: base.Add(3 * time.Millisecond),
		AfterTime: lines[1].Time, AfterSeq: lines[1].Seq, Limit: 10})
	if texts(lines) != "l10,l11" {
		t.Fatalf("bounded continuation = %s, want l10,l11", texts(lines))
	}
}

// testEnvRoundTrip: environments with awkward values come back exactly.
func testEnvRoundTrip(t *testing.T, s jobs.Store, _ func() int) {
	ctx := context.Background()
	env := map[string]string{
		"EMPTY":   "",
		"UNICODE": "héllo wörld ✓",
		"QUOTES":  `"quoted" and 'single' and \backslash`,
		"NEWLINE": "line1\nline2",
		"LONG":    strings.Repeat("x", 10000),
	}
	j := job("env")
	j.Env = env
	mustCreateJob(t, s, j)
	got, err := s.GetJob(ctx, team, proj, "env")
	if err != nil || !reflect.DeepEqual(got.Env, env) {
		t.Fatalf("job env = %v, %v", got.Env, err)
	}
	r := run("env", "r1")
	r.Spec.Env = env
	mustCreateRun(t, s, r)
	gotRun, err := s.GetRun(ctx, team, proj, "env", "r1")
	if err != nil || !reflect.DeepEqual(gotRun.Spec, r.Spec) {
		t.Fatalf("run spec = %+v, %v", gotRun.Spec, err)
	}
	// An emptied environment stays empty.
	got, err = s.UpdateJob(ctx, team, proj, "env", func(j *jobs.Job) ([]events.Event, error) { j.Env = nil; return nil, nil })
	if err != nil || got.Env != nil {
		t.Fatalf("UpdateJob(no env) = %v, %v", got.Env, err)
	}
	if got, _ := s.GetJob(ctx, team, proj, "env"); len(got.Env) != 0 {
		t.Fatalf("emptied env came back as %v", got.Env)
	}
}

// testBuildsFromGit: a job's git source round-trips, is set and cleared
// by updates, and lists it among the building jobs; its successful builds
// are recorded once, only while the job exists, the newest of a branch is
// found, a deleted one is forgotten, and deleting the job forgets them
// all (a new job with its id starts with none).
func testBuildsFromGit(t *testing.T, s jobs.Store, _ func() int) {
	ctx := context.Background()
	j := job("built")
	j.Deployment = jobs.Deployment{ConfigType: "default"}
	j.Build = &jobs.Build{
		VcsData: `{"projectUrl":"https://git.example.com/a/b","projectBranch":"main"}`, BuildSettings: `{"buildpack":{"buildContext":"/"}}`,
		BuildPlan: "nf-compute-20", Credentials: &vcs.Credentials{Username: "bot", Password: "t0ken"}, Arguments: map[string]string{"A": "1"},
	}
	mustCreateJob(t, s, j)
	mustCreateJob(t, s, job("plain"))
	got, err := s.GetJob(ctx, team, proj, "built")
	if err != nil || !reflect.DeepEqual(got.Build, j.Build) {
		t.Fatalf("GetJob's build = %+v, %v; want %+v", got.Build, err, j.Build)
	}
	if got, _ := s.GetJob(ctx, team, proj, "plain"); got.Build != nil {
		t.Fatalf("a job without a git source has build %+v", got.Build)
	}
	list, err := s.BuildingJobs(ctx)
	if err != nil || len(list) != 1 || list[0].ID != "built" {
		t.Fatalf("BuildingJobs = %v, %v", list, err)
	}
	// Updates change the build in place and can clear it.
	if _, err := s.UpdateJob(ctx, team, proj, "built", func(j *jobs.Job) ([]events.Event, error) {
		j.Build.Arguments["B"] = "2"
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetJob(ctx, team, proj, "built"); got.Build.Arguments["B"] != "2" {
		t.Fatalf("updated build arguments %v", got.Build.Arguments)
	}
	if _, err := s.UpdateJob(ctx, team, proj, "plain", func(j *jobs.Job) ([]events.Event, error) {
		j.Build = &jobs.Build{VcsData: `{}`}
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateJob(ctx, team, proj, "plain", func(j *jobs.Job) ([]events.Event, error) {
		j.Build = nil
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetJob(ctx, team, proj, "plain"); got.Build != nil {
		t.Fatalf("a cleared build reads %+v", got.Build)
	}

	base := now()
	b1 := jobs.JobBuild{TeamID: team, ProjectID: proj, JobID: "built", ID: "b1", Branch: "main", SHA: "aaa", Path: "/a/1", Command: []string{"./run", "x"}, ConcludedAt: base}
	b2 := jobs.JobBuild{TeamID: team, ProjectID: proj, JobID: "built", ID: "b2", Branch: "main", SHA: "bbb", Image: "img:2", ConcludedAt: base.Add(time.Second)}
	dev := jobs.JobBuild{TeamID: team, ProjectID: proj, JobID: "built", ID: "b3", Branch: "dev", SHA: "ccc", Path: "/a/3", ConcludedAt: base.Add(2 * time.Second)}
	for _, b := range []jobs.JobBuild{b1, b2, b2, dev} { // a redelivery is a no-op
		if err := s.PutJobBuild(ctx, b); err != nil {
			t.Fatalf("PutJobBuild(%s): %v", b.ID, err)
		}
	}
	orphan := b1
	orphan.JobID, orphan.ID = "nojob", "b9"
	if err := s.PutJobBuild(ctx, orphan); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LatestJobBuild(ctx, team, proj, "nojob", "main"); !errors.Is(err, jobs.ErrNotFound) {
		t.Fatalf("a build of a job that does not exist was recorded: %v", err)
	}
	if got, err := s.LatestJobBuild(ctx, team, proj, "built", "main"); err != nil || !reflect.DeepEqual(got, b2) {
		t.Fatalf("LatestJobBuild(main) = %+v, %v; want %+v", got, err, b2)
	}
	if err := s.DeleteJobBuild(ctx, team, proj, "built", "b2"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.LatestJobBuild(ctx, team, proj, "built", "main"); err != nil || !reflect.DeepEqual(got, b1) {
		t.Fatalf("LatestJobBuild(main) after deleting b2 = %+v, %v; want %+v", got, err, b1)
	}
	if _, err := s.LatestJobBuild(ctx, team, proj, "built", "nope"); !errors.Is(err, jobs.ErrNotFound) {
		t.Fatalf("LatestJobBuild of a branch never built = %v", err)
	}
	if err := s.DeleteJob(ctx, team, proj, "built"); err != nil {
		t.Fatal(err)
	}
	mustCreateJob(t, s, job("built"))
	if _, err := s.LatestJobBuild(ctx, team, proj, "built", "dev"); !errors.Is(err, jobs.ErrNotFound) {
		t.Fatalf("a new job with a deleted job's id has its builds: %v", err)
	}
}

// testServiceBuilds: services' builds are recorded once and found by id,
// by commit prefix (the newest of it) and as the newest of a branch; a
// deleted one is forgotten; other services' and projects' are apart.
func testServiceBuilds(t *testing.T, s jobs.Store, _ func() int) {
	ctx := context.Background()
	base := now()
	shaA, shaB := "aaaaaaa"+strings.Repeat("1", 33), "bbbbbbb"+strings.Repeat("2", 33)
	builds := []jobs.JobBuild{
		{TeamID: team, ProjectID: proj, ServiceID: "builder", ID: "s1", Branch: "main", SHA: shaA, Path: "/a/1", Command: []string{"run"}, ConcludedAt: base},
		{TeamID: team, ProjectID: proj, ServiceID: "builder", ID: "s2", Branch: "main", SHA: shaB, Image: "img:2", ConcludedAt: base.Add(time.Second)},
		{TeamID: team, ProjectID: proj, ServiceID: "builder", ID: "s3", Branch: "dev", SHA: shaA, Path: "/a/3", ConcludedAt: base.Add(2 * time.Second)},
		{TeamID: team, ProjectID: proj, ServiceID: "other", ID: "o1", Branch: "main", SHA: shaB, Path: "/o", ConcludedAt: base.Add(3 * time.Second)},
		{TeamID: team, ProjectID: "elsewhere", ServiceID: "builder", ID: "e1", Branch: "main", SHA: shaB, Path: "/e", ConcludedAt: base.Add(4 * time.Second)},
	}
	for _, b := range append(builds, builds[1]) {
		if err := s.PutServiceBuild(ctx, b); err != nil {
			t.Fatalf("PutServiceBuild(%s): %v", b.ID, err)
		}
	}
	find := func(ref jobs.InternalRef) string {
		t.Helper()
		ref.Service = "builder"
		b, err := s.FindServiceBuild(ctx, team, proj, ref)
		if errors.Is(err, jobs.ErrNotFound) {
			return ""
		}
		if err != nil {
			t.Fatal(err)
		}
		return b.ID
	}
	for _, c := range []struct {
		ref  jobs.InternalRef
		want string
	}{
		{jobs.InternalRef{Branch: "main", BuildSHA: "latest"}, "s2"},
		{jobs.InternalRef{Branch: "main"}, "s2"},
		{jobs.InternalRef{Branch: "dev"}, "s3"},
		{jobs.InternalRef{BuildSHA: shaA[:7]}, "s3"}, // the newest build of the commit
		{jobs.InternalRef{BuildSHA: shaB}, "s2"},
		{jobs.InternalRef{BuildID: "s1"}, "s1"},
		{jobs.InternalRef{BuildID: "o1"}, ""},
		{jobs.InternalRef{Branch: "nope"}, ""},
	} {
		if got := find(c.ref); got != c.want {
			t.Errorf("FindServiceBuild(%+v) = %q, want %q", c.ref, got, c.want)
		}
	}
	got, err := s.FindServiceBuild(ctx, team, proj, jobs.InternalRef{Service: "builder", BuildID: "s1"})
	if err != nil || !reflect.DeepEqual(got, builds[0]) {
		t.Errorf("FindServiceBuild(s1) = %+v, %v; want %+v", got, err, builds[0])
	}
	if err := s.DeleteServiceBuild(ctx, team, proj, "builder", "s2"); err != nil {
		t.Fatal(err)
	}
	if got := find(jobs.InternalRef{Branch: "main"}); got != "s1" {
		t.Errorf("newest of main after deleting s2 = %q, want s1", got)
	}
}
