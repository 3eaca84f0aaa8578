// Package storetest is the contract of addons.Store written as tests:
// every implementation runs the same suite.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/paging"
	"github.com/slipwayhq/slipway/services/addons"
)

// Factory returns an empty, migrated store and a function counting the
// events committed to its outbox.
type Factory func(t *testing.T) (addons.Store, func() int)

// Run runs the whole suite against stores made by newStore.
func Run(t *testing.T, newStore Factory) {
	tests := map[string]func(*testing.T, addons.Store, func() int){
		"CreateGetAddon":          testCreateGet,
		"CreateAddonDuplicate":    testDuplicate,
		"GetMissing":              testMissing,
		"ListAddonsPages":         testListAddons,
		"UpdateAddonAndEvents":    testUpdateAddon,
		"UpdateMutateError":       testMutateError,
		"ConcurrentAddonUpdates":  testConcurrentUpdates,
		"DeleteAddonCascades":     testDeleteCascades,
		"TeamsIsolated":           testIsolation,
		"BackupsNewestFirst":      testBackups,
		"ActiveAndExpiredBackups": testActiveExpired,
		"Restores":                testRestores,
		"SchedulesOnePerKind":     testSchedules,
		"Logs":                    testLogs,
		"DestinationBackups":      testDestinationBackups,
	}
	for name, test := range tests {
		t.Run(name, func(t *testing.T) {
			s, outbox := newStore(t)
			test(t, s, outbox)
		})
	}
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func event(t *testing.T, verb string) events.Event {
	t.Helper()
	ev, err := events.New("addons", "addon", verb, "team/p/a", map[string]string{"id": "a"})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func addon(team, project, id string) addons.Addon {
	return addons.Addon{
		TeamID: team, ProjectID: project, ID: id, InternalID: team + "-" + project + "-" + id, Name: id, Type: "postgresql",
		Settings:    addons.Settings{Version: "15", Plan: "nf-compute-20", StorageMB: 1024, Replicas: 1, Tags: []string{"db"}},
		Status:      addons.StatusPreDeployment,
		Credentials: addons.Credentials{AdminUser: "postgres", AdminPassword: "s3cret-admin", User: "app", Password: "s3cret-user"},
		CreatedAt:   t0, UpdatedAt: t0,
	}
}

func create(t *testing.T, s addons.Store, a addons.Addon) {
	t.Helper()
	if err := s.CreateAddon(context.Background(), a, nil); err != nil {
		t.Fatal(err)
	}
}

func testCreateGet(t *testing.T, s addons.Store, outbox func() int) {
	ctx := context.Background()
	a := addon("t", "p", "db")
	sc := addons.Schedule{TeamID: "t", ProjectID: "p", AddonID: "db", ID: "s1", Interval: "daily", Minute: []int{0}, Hour: []int{3},
		BackupType: "dump", RetentionDays: 7, CreatedAt: t0, UpdatedAt: t0}
	if err := s.CreateAddon(ctx, a, []addons.Schedule{sc}, event(t, "created")); err != nil {
		t.Fatal(err)
	}
	if n := outbox(); n != 1 {
		t.Fatalf("outbox holds %d events, want 1", n)
	}
	got, err := s.GetAddon(ctx, "t", "p", "db")
	if err != nil {
		t.Fatal(err)
	}
	if got.Credentials != a.Credentials || got.Settings.Version != "15" || got.Settings.Tags[0] != "db" || !got.CreatedAt.Equal(t0) || got.Version != 1 {
		t.Fatalf("got %+v", got)
	}
	list, err := s.AddonSchedules(ctx, "t", "p", "db")
	if err != nil || len(list) != 1 || list[0].Hour[0] != 3 || list[0].Status != "ok" {
		t.Fatalf("schedules %+v, %v", list, err)
	}
}

func testDuplicate(t *testing.T, s addons.Store, _ func() int) {
	create(t, s, addon("t", "p", "db"))
	a := addon("t", "p", "db")
	a.InternalID = "other"
	if err := s.CreateAddon(context.Background(), a, nil); !errors.Is(err, addons.ErrAlreadyExists) {
		t.Fatalf("duplicate id: %v, want ErrAlreadyExists", err)
	}
}

func testMissing(t *testing.T, s addons.Store, _ func() int) {
	ctx := context.Background()
	if _, err := s.GetAddon(ctx, "t", "p", "nope"); !errors.Is(err, addons.ErrNotFound) {
		t.Fatalf("GetAddon: %v", err)
	}
	if _, err := s.GetBackup(ctx, "t", "p", "nope", "b"); !errors.Is(err, addons.ErrNotFound) {
		t.Fatalf("GetBackup: %v", err)
	}
	if _, err := s.GetRestore(ctx, "t", "p", "nope", "r"); !errors.Is(err, addons.ErrNotFound) {
		t.Fatalf("GetRestore: %v", err)
	}
	if err := s.DeleteAddon(ctx, "t", "p", "nope"); !errors.Is(err, addons.ErrNotFound) {
		t.Fatalf("DeleteAddon: %v", err)
	}
	if err := s.CreateBackup(ctx, addons.Backup{TeamID: "t", ProjectID: "p", AddonID: "nope", ID: "b", Status: addons.JobScheduled}); !errors.Is(err, addons.ErrNotFound) {
		t.Fatalf("CreateBackup of a missing addon: %v", err)
	}
	if err := s.CreateRestore(ctx, addons.Restore{TeamID: "t", ProjectID: "p", AddonID: "nope", ID: "r", BackupProjectID: "p", BackupAddonID: "nope", BackupID: "b",
		Status: addons.JobScheduled}); !errors.Is(err, addons.ErrNotFound) {
		t.Fatalf("CreateRestore into a missing addon: %v", err)
	}
}

func testListAddons(t *testing.T, s addons.Store, _ func() int) {
	for i := range 5 {
		create(t, s, addon("t", "p", fmt.Sprintf("db%d", i)))
	}
	create(t, s, addon("t", "other", "dbx"))
	ctx := context.Background()
	// Every page counts the project's whole list (not the other
	// project's addon), wherever it starts.
	page, more, total, err := s.ListAddons(ctx, "t", "p", paging.Page{Limit: 2})
	if err != nil || len(page) != 2 || !more || page[0].ID != "db0" || total != 5 {
		t.Fatalf("first page %v %v total %d %v", len(page), more, total, err)
	}
	page, more, total, err = s.ListAddons(ctx, "t", "p", paging.Page{Limit: 2, After: "db3"})
	if err != nil || len(page) != 1 || more || page[0].ID != "db4" || total != 5 {
		t.Fatalf("last page %v %v total %d %v", len(page), more, total, err)
	}
	if page, _, total, err := s.ListAddons(ctx, "t", "p", paging.Page{Limit: 2, Offset: 4}); err != nil || len(page) != 1 || total != 5 {
		t.Fatalf("offset page %v total %d %v", len(page), total, err)
	}
	all, err := s.ProjectAddons(ctx, "t", "p")
	if err != nil || len(all) != 5 {
		t.Fatalf("ProjectAddons %d %v", len(all), err)
	}
	every, err := s.AllAddons(ctx)
	if err != nil || len(every) != 6 {
		t.Fatalf("AllAddons %d %v", len(every), err)
	}
}

func testUpdateAddon(t *testing.T, s addons.Store, outbox func() int) {
	create(t, s, addon("t", "p", "db"))
	ctx := context.Background()
	got, err := s.UpdateAddon(ctx, "t", "p", "db", func(a *addons.Addon) ([]events.Event, error) {
		a.Status = addons.StatusRunning
		a.Settings.Tags = append(a.Settings.Tags, "x")
		a.InternalID = "must-not-change"
		return []events.Event{event(t, "updated")}, nil
	})
	if err != nil || got.Version != 2 || got.Status != addons.StatusRunning {
		t.Fatalf("update %+v %v", got, err)
	}
	read, _ := s.GetAddon(ctx, "t", "p", "db")
	if read.InternalID != "t-p-db" || len(read.Settings.Tags) != 2 || read.Version != 2 {
		t.Fatalf("stored %+v", read)
	}
	if outbox() != 1 {
		t.Fatalf("outbox %d", outbox())
	}
	// Nothing changed, nothing written.
	same, err := s.UpdateAddon(ctx, "t", "p", "db", func(*addons.Addon) ([]events.Event, error) { return nil, nil })
	if err != nil || same.Version != 2 {
		t.Fatalf("no-op update %+v %v", same, err)
	}
}

func testMutateError(t *testing.T, s addons.Store, outbox func() int) {
	create(t, s, addon("t", "p", "db"))
	boom := errors.New("refused")
	if _, err := s.UpdateAddon(context.Background(), "t", "p", "db", func(a *addons.Addon) ([]events.Event, error) {
		a.Status = addons.StatusFailed
		return nil, boom
	}); !errors.Is(err, boom) {
		t.Fatalf("err %v", err)
	}
	read, _ := s.GetAddon(context.Background(), "t", "p", "db")
	if read.Status != addons.StatusPreDeployment || outbox() != 0 {
		t.Fatalf("a refused mutation wrote: %+v", read)
	}
}

func testConcurrentUpdates(t *testing.T, s addons.Store, _ func() int) {
	create(t, s, addon("t", "p", "db"))
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.UpdateAddon(context.Background(), "t", "p", "db", func(a *addons.Addon) ([]events.Event, error) {
				a.Settings.Tags = append(a.Settings.Tags, fmt.Sprint(i))
				return nil, nil
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	read, _ := s.GetAddon(context.Background(), "t", "p", "db")
	if len(read.Settings.Tags) != 9 {
		t.Fatalf("lost updates: tags %v", read.Settings.Tags)
	}
}

func backup(id string) addons.Backup {
	return addons.Backup{TeamID: "t", ProjectID: "p", AddonID: "db", ID: id, Name: id, Type: "dump", Status: addons.JobCompleted,
		Verification: addons.Verification{Status: addons.VerifyVerified}, CreatedAt: t0, CompletedAt: t0}
}

func testDeleteCascades(t *testing.T, s addons.Store, outbox func() int) {
	ctx := context.Background()
	create(t, s, addon("t", "p", "db"))
	if err := s.CreateBackup(ctx, backup("b1")); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRestore(ctx, addons.Restore{TeamID: "t", ProjectID: "p", AddonID: "db", ID: "r1", BackupProjectID: "p", BackupAddonID: "db", BackupID: "b1", Status: addons.JobCompleted}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendLogs(ctx, []addons.LogLine{{TeamID: "t", ProjectID: "p", AddonID: "db", Kind: addons.LogAddon, Time: t0, Text: "x"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAddon(ctx, "t", "p", "db", event(t, "deleted")); err != nil {
		t.Fatal(err)
	}
	create(t, s, addon("t", "p", "db")) // same id again: nothing of the old one shows
	if list, _ := s.AddonBackups(ctx, "t", "p", "db"); len(list) != 0 {
		t.Fatalf("backups outlived their addon: %v", list)
	}
	if _, err := s.GetRestore(ctx, "t", "p", "db", "r1"); !errors.Is(err, addons.ErrNotFound) {
		t.Fatalf("restore outlived its addon: %v", err)
	}
	if lines, _ := s.ReadLogs(ctx, addons.LogQuery{TeamID: "t", ProjectID: "p", AddonID: "db", Kind: addons.LogAddon, Limit: 10}); len(lines) != 0 {
		t.Fatalf("logs outlived their addon")
	}
	if outbox() != 1 {
		t.Fatalf("outbox %d", outbox())
	}
}

func testIsolation(t *testing.T, s addons.Store, _ func() int) {
	create(t, s, addon("t1", "p", "db"))
	if _, err := s.GetAddon(context.Background(), "t2", "p", "db"); !errors.Is(err, addons.ErrNotFound) {
		t.Fatalf("another team's addon: %v", err)
	}
}

func testBackups(t *testing.T, s addons.Store, _ func() int) {
	ctx := context.Background()
	create(t, s, addon("t", "p", "db"))
	for _, id := range []string{"b1", "b2", "b3"} {
		if err := s.CreateBackup(ctx, backup(id)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateBackup(ctx, backup("b1")); !errors.Is(err, addons.ErrAlreadyExists) {
		t.Fatalf("duplicate backup: %v", err)
	}
	page, more, total, err := s.ListBackups(ctx, "t", "p", "db", paging.Page{Limit: 2})
	if err != nil || len(page) != 2 || !more || page[0].ID != "b3" || page[1].ID != "b2" || total != 3 {
		t.Fatalf("first page %+v %v total %d %v", page, more, total, err)
	}
	page, more, total, err = s.ListBackups(ctx, "t", "p", "db", paging.Page{Limit: 2, After: "b2"})
	if err != nil || len(page) != 1 || more || page[0].ID != "b1" || total != 3 {
		t.Fatalf("second page %+v %v total %d %v", page, more, total, err)
	}
	if page, _, total, err := s.ListBackups(ctx, "t", "p", "nope", paging.Page{Limit: 2}); err != nil || len(page) != 0 || total != 0 {
		t.Fatalf("another addon's backups %+v total %d %v", page, total, err)
	}
	got, err := s.UpdateBackup(ctx, "t", "p", "db", "b1", func(b *addons.Backup) ([]events.Event, error) {
		b.Verification.Result = map[string]any{"tables": map[string]any{"t": float64(3)}}
		b.Size, b.Checksum = 42, "abc"
		return nil, nil
	})
	if err != nil || got.Version != 2 {
		t.Fatal(err)
	}
	read, _ := s.GetBackup(ctx, "t", "p", "db", "b1")
	if read.Size != 42 || read.Verification.Result["tables"].(map[string]any)["t"] != float64(3) {
		t.Fatalf("stored %+v", read)
	}
	if err := s.DeleteBackup(ctx, "t", "p", "db", "b1"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteBackup(ctx, "t", "p", "db", "b1"); !errors.Is(err, addons.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

func testActiveExpired(t *testing.T, s addons.Store, _ func() int) {
	ctx := context.Background()
	create(t, s, addon("t", "p", "db"))
	running := backup("b1")
	running.Status = addons.JobInProgress
	pending := backup("b2")
	pending.Verification.Status = addons.VerifyPending
	expired := backup("b3")
	expired.ExpiresAt = t0
	retained := backup("b4")
	retained.ExpiresAt, retained.Retained = t0, true
	later := backup("b5")
	later.ExpiresAt = t0.Add(time.Hour)
	for _, b := range []addons.Backup{running, pending, expired, retained, later} {
		if err := s.CreateBackup(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	active, err := s.ActiveBackups(ctx)
	if err != nil || len(active) != 2 || active[0].ID != "b1" || active[1].ID != "b2" {
		t.Fatalf("active %+v %v", active, err)
	}
	exp, err := s.ExpiredBackups(ctx, t0)
	if err != nil || len(exp) != 1 || exp[0].ID != "b3" {
		t.Fatalf("expired %+v %v", exp, err)
	}
}

func testRestores(t *testing.T, s addons.Store, _ func() int) {
	ctx := context.Background()
	create(t, s, addon("t", "p", "db"))
	create(t, s, addon("t", "p", "fork"))
	ref := addons.BackupRef{ProjectID: "p", AddonID: "db", ID: "b1"}
	for _, r := range []addons.Restore{
		{TeamID: "t", ProjectID: "p", AddonID: "db", ID: "r1", BackupProjectID: "p", BackupAddonID: "db", BackupID: "b1", Status: addons.JobCompleted},
		{TeamID: "t", ProjectID: "p", AddonID: "db", ID: "r2", BackupProjectID: "p", BackupAddonID: "db", BackupID: "b2", Status: addons.JobInProgress},
		{TeamID: "t", ProjectID: "p", AddonID: "fork", ID: "r3", BackupProjectID: "p", BackupAddonID: "db", BackupID: "b1", Status: addons.JobFailed},
	} {
		if err := s.CreateRestore(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	all, _, total, err := s.ListRestores(ctx, "t", "p", "db", nil, paging.Page{Limit: 10})
	if err != nil || len(all) != 2 || all[0].ID != "r2" || total != 2 {
		t.Fatalf("addon restores %+v total %d %v", all, total, err)
	}
	// The backup filter applies to the total as to the page.
	of, _, total, err := s.ListRestores(ctx, "t", "p", "db", &ref, paging.Page{Limit: 10})
	if err != nil || len(of) != 1 || of[0].ID != "r1" || total != 1 {
		t.Fatalf("backup restores %+v total %d %v", of, total, err)
	}
	if page, more, total, err := s.ListRestores(ctx, "t", "p", "db", nil, paging.Page{Limit: 1}); err != nil || len(page) != 1 || !more || total != 2 {
		t.Fatalf("first page of restores %+v %v total %d %v", page, more, total, err)
	}
	last, err := s.LastRestore(ctx, "t", ref)
	if err != nil || last.ID != "r3" {
		t.Fatalf("last restore %+v %v", last, err)
	}
	if _, err := s.LastRestore(ctx, "other", ref); !errors.Is(err, addons.ErrNotFound) {
		t.Fatalf("another team's last restore: %v", err)
	}
	active, err := s.ActiveRestores(ctx)
	if err != nil || len(active) != 1 || active[0].ID != "r2" {
		t.Fatalf("active %+v %v", active, err)
	}
	done, err := s.UpdateRestore(ctx, "t", "p", "db", "r2", func(r *addons.Restore) ([]events.Event, error) {
		r.Status, r.StatusMessage, r.CompletedAt = addons.JobFailed, "why", t0
		return nil, nil
	})
	if err != nil || done.Version != 2 {
		t.Fatal(err)
	}
	if active, _ := s.ActiveRestores(ctx); len(active) != 0 {
		t.Fatalf("still active %+v", active)
	}
}

func testSchedules(t *testing.T, s addons.Store, outbox func() int) {
	ctx := context.Background()
	create(t, s, addon("t", "p", "db"))
	sc := func(id, interval, typ string) addons.Schedule {
		return addons.Schedule{TeamID: "t", ProjectID: "p", AddonID: "db", ID: id, Interval: interval, Minute: []int{5}, BackupType: typ, RetentionDays: 1}
	}
	if err := s.CreateSchedule(ctx, sc("s1", "hourly", "dump")); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSchedule(ctx, sc("s2", "hourly", "snapshot")); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSchedule(ctx, sc("s3", "hourly", "dump")); !errors.Is(err, addons.ErrAlreadyExists) {
		t.Fatalf("second hourly dump schedule: %v", err)
	}
	if err := s.CreateSchedule(ctx, addons.Schedule{TeamID: "t", ProjectID: "p", AddonID: "nope", ID: "s", Interval: "hourly", BackupType: "dump"}); !errors.Is(err, addons.ErrNotFound) {
		t.Fatalf("schedule of a missing addon: %v", err)
	}
	failed := sc("s1", "hourly", "dump")
	failed.Status, failed.StatusMessage, failed.LastRunAt, failed.NextRunAt = "failed", "addon paused", t0, t0.Add(time.Hour)
	if err := s.UpdateSchedule(ctx, failed, event(t, "failed")); err != nil {
		t.Fatal(err)
	}
	list, more, total, err := s.ListSchedules(ctx, "t", "p", "db", paging.Page{Limit: 1})
	if err != nil || !more || list[0].Status != "failed" || !list[0].NextRunAt.Equal(t0.Add(time.Hour)) || total != 2 {
		t.Fatalf("list %+v %v total %d %v", list, more, total, err)
	}
	if list, more, total, err := s.ListSchedules(ctx, "t", "p", "db", paging.Page{Limit: 1, After: "s1"}); err != nil || more || len(list) != 1 || total != 2 {
		t.Fatalf("second page %+v %v total %d %v", list, more, total, err)
	}
	if err := s.ReplaceSchedules(ctx, "t", "p", "db", []addons.Schedule{sc("s9", "daily", "dump")}); err != nil {
		t.Fatal(err)
	}
	all, _ := s.AllSchedules(ctx)
	if len(all) != 1 || all[0].ID != "s9" {
		t.Fatalf("after replace %+v", all)
	}
	if err := s.DeleteSchedule(ctx, "t", "p", "db", "s9"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSchedule(ctx, "t", "p", "db", "s9"); !errors.Is(err, addons.ErrNotFound) {
		t.Fatalf("second delete %v", err)
	}
	if outbox() != 1 {
		t.Fatalf("outbox %d", outbox())
	}
}

func testLogs(t *testing.T, s addons.Store, _ func() int) {
	ctx := context.Background()
	create(t, s, addon("t", "p", "db"))
	var lines []addons.LogLine
	for i := range 5 {
		lines = append(lines, addons.LogLine{TeamID: "t", ProjectID: "p", AddonID: "db", Kind: addons.LogBackup, Ref: "b1", Time: t0.Add(time.Duration(i) * time.Second), Text: fmt.Sprint(i)})
	}
	lines = append(lines, addons.LogLine{TeamID: "t", ProjectID: "p", AddonID: "db", Kind: addons.LogAddon, Time: t0, Text: "server"})
	stored, err := s.AppendLogs(ctx, lines)
	if err != nil || stored[0].Seq == 0 {
		t.Fatal(err)
	}
	got, err := s.ReadLogs(ctx, addons.LogQuery{TeamID: "t", ProjectID: "p", AddonID: "db", Kind: addons.LogBackup, Ref: "b1", Limit: 2, Backward: true})
	if err != nil || len(got) != 2 || got[0].Text != "4" {
		t.Fatalf("backward %+v %v", got, err)
	}
	got, err = s.ReadLogs(ctx, addons.LogQuery{TeamID: "t", ProjectID: "p", AddonID: "db", Kind: addons.LogBackup, Ref: "b1", Limit: 10,
		AfterTime: stored[1].Time, AfterSeq: stored[1].Seq})
	if err != nil || len(got) != 3 || got[0].Text != "2" {
		t.Fatalf("forward after %+v %v", got, err)
	}
	got, _ = s.ReadLogs(ctx, addons.LogQuery{TeamID: "t", ProjectID: "p", AddonID: "db", Kind: addons.LogAddon, Limit: 10})
	if len(got) != 1 || got[0].Text != "server" {
		t.Fatalf("addon lines %+v", got)
	}
}

func testDestinationBackups(t *testing.T, s addons.Store, _ func() int) {
	ctx := context.Background()
	create(t, s, addon("t", "p", "db"))
	create(t, s, addon("t", "p", "db-2"))
	create(t, s, addon("u", "p", "db"))
	for _, b := range []addons.Backup{backup("b1"), backup("b2"), backup("b3")} {
		b.DestinationID = "offsite"
		if b.ID == "b3" {
			b.AddonID = "db-2"
		}
		if err := s.CreateBackup(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	local := backup("b4")
	if err := s.CreateBackup(ctx, local); err != nil {
		t.Fatal(err)
	}
	other := backup("b5")
	other.TeamID, other.DestinationID = "u", "offsite"
	if err := s.CreateBackup(ctx, other); err != nil {
		t.Fatal(err)
	}
	// The total is the team's backups in the destination: not another
	// team's (b5), wherever the page starts.
	page, more, total, err := s.DestinationBackups(ctx, "t", "offsite", paging.Page{Limit: 2})
	if err != nil || len(page) != 2 || !more || total != 3 {
		t.Fatalf("first page %+v %v total %d %v", page, more, total, err)
	}
	last := page[1].ProjectID + "/" + page[1].AddonID + "/" + page[1].ID
	rest, more, total, err := s.DestinationBackups(ctx, "t", "offsite", paging.Page{Limit: 2, After: last})
	if err != nil || len(rest) != 1 || more || total != 3 {
		t.Fatalf("second page %+v %v total %d %v", rest, more, total, err)
	}
	seen := map[string]bool{}
	for _, b := range append(page, rest...) {
		seen[b.AddonID+"/"+b.ID] = true
	}
	if !seen["db/b1"] || !seen["db/b2"] || !seen["db-2/b3"] {
		t.Fatalf("listed %v", seen)
	}
	if none, _, total, _ := s.DestinationBackups(ctx, "t", "elsewhere", paging.Page{Limit: 5}); len(none) != 0 || total != 0 {
		t.Fatalf("another destination lists %v (total %d)", none, total)
	}
}
