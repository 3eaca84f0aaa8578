package addons_test

import (
	"context"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	addonsv1 "github.com/slipwayhq/slipway/gen/slipway/addons/v1"
	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/events/eventstest"
	"github.com/slipwayhq/slipway/pkg/objstore"
	"github.com/slipwayhq/slipway/pkg/testenv"
	"github.com/slipwayhq/slipway/services/addons"
	"github.com/slipwayhq/slipway/services/addons/engine"
)

func (h *harness) backups(addon string) []*addonsv1.Backup {
	h.t.Helper()
	resp, err := h.client.ListBackups(as(adminCred), &addonsv1.ListBackupsRequest{ProjectId: projectID, AddonId: addon})
	if err != nil {
		h.t.Fatal(err)
	}
	return resp.GetBackups()
}

func (h *harness) schedules(addon string) []*addonsv1.BackupSchedule {
	h.t.Helper()
	resp, err := h.client.ListBackupSchedules(as(adminCred), &addonsv1.ListBackupSchedulesRequest{ProjectId: projectID, AddonId: addon})
	if err != nil {
		h.t.Fatal(err)
	}
	return resp.GetSchedules()
}

// TestSchedules: a Redis addon created with an hourly schedule (Slipway's
// clock moved forward instead of waiting an hour) takes verified backups
// that expire after the retention time and are pruned, except a retained
// one, each announced by backup.started; a run that cannot happen marks
// the schedule failed with why and writes schedule.failed; one schedule
// per interval and type.
func TestSchedules(t *testing.T) {
	h := newHarness(t)
	s := spec("cache", engine.TypeRedis)
	s.BackupSchedules = []*addonsv1.BackupScheduleSpec{{
		Scheduling: &addonsv1.Scheduling{Interval: "hourly", Minute: []int32{0, 30}}, BackupType: "dump", RetentionTime: 1}}
	h.create(s)
	h.waitStatus("cache", addons.StatusRunning)
	scheds := h.schedules("cache")
	if len(scheds) != 1 || scheds[0].GetStatus() != "ok" || scheds[0].GetNextRunAt() == nil ||
		time.Until(scheds[0].GetNextRunAt().AsTime()) > 31*time.Minute {
		t.Fatalf("schedules %v", scheds)
	}
	if got := h.get("cache").GetBackupSchedules(); len(got) != 1 || got[0].GetScheduling().GetInterval() != "hourly" {
		t.Fatalf("backupSchedules on the addon %v", got)
	}
	// A second hourly dump schedule is refused.
	_, err := h.client.CreateBackupSchedule(as(adminCred), &addonsv1.CreateBackupScheduleRequest{ProjectId: projectID, AddonId: "cache",
		Scheduling: &addonsv1.Scheduling{Interval: "hourly", Minute: []int32{5}}, BackupType: "dump", RetentionTime: 2})
	wantCode(t, err, codes.FailedPrecondition, "SCHEDULE_EXISTS")
	// Hour on an hourly schedule, through the schedules endpoint too.
	_, err = h.client.CreateBackupSchedule(as(adminCred), &addonsv1.CreateBackupScheduleRequest{ProjectId: projectID, AddonId: "cache",
		Scheduling: &addonsv1.Scheduling{Interval: "hourly", Minute: []int32{5}, Hour: []int32{1}}, BackupType: "snapshot", RetentionTime: 2})
	wantCode(t, err, codes.InvalidArgument, "scheduling.hour")

	done := func(b *addonsv1.Backup) bool {
		return b.GetStatus() != addons.JobInProgress && b.GetVerification().GetStatus() != addons.VerifyPending
	}
	h.clock.advance(31 * time.Minute)
	var first *addonsv1.Backup
	waitFor(t, 30*time.Second, "the first scheduled backup", func() bool {
		list := h.backups("cache")
		if len(list) == 0 {
			return false
		}
		first = list[0]
		return true
	})
	first = h.waitBackup("cache", first.GetId(), done)
	if first.GetStatus() != addons.JobCompleted || first.GetVerification().GetStatus() != addons.VerifyVerified ||
		first.GetScheduleId() != scheds[0].GetId() || first.GetExpiresAt() == nil {
		t.Fatalf("scheduled backup %v", first)
	}
	started := eventstest.Collect(t, h.js, []string{events.SubjectFor("addons", "backup", "started")}, 1, 0, nil)
	if len(started) != 1 || eventstest.DataField(started[0], "id") != first.GetId() ||
		eventstest.DataField(started[0], "scheduleId") != scheds[0].GetId() || eventstest.DataField(started[0], "status") != addons.JobInProgress {
		t.Fatalf("backup.started events %v", started)
	}
	h.clock.advance(31 * time.Minute)
	var second *addonsv1.Backup
	waitFor(t, 30*time.Second, "the second scheduled backup", func() bool {
		list := h.backups("cache")
		if len(list) < 2 {
			return false
		}
		second = list[0]
		return true
	})
	second = h.waitBackup("cache", second.GetId(), done)
	if _, err := h.client.RetainBackup(as(adminCred), &addonsv1.RetainBackupRequest{ProjectId: projectID, AddonId: "cache", BackupId: second.GetId()}); err != nil {
		t.Fatal(err)
	}
	// Past the retention time: the first goes, the retained one stays.
	h.clock.advance(25 * time.Hour)
	waitFor(t, 30*time.Second, "pruning", func() bool {
		_, err := h.client.GetBackup(as(adminCred), &addonsv1.GetBackupRequest{ProjectId: projectID, AddonId: "cache", BackupId: first.GetId()})
		return err != nil && strings.Contains(err.Error(), "not found")
	})
	if b := h.getBackup("cache", second.GetId()); !b.GetRetained() {
		t.Fatalf("retained backup %v", b)
	}
	// Let the run the clock jump started finish before pausing.
	waitFor(t, 60*time.Second, "idle", func() bool {
		for _, b := range h.backups("cache") {
			if !done(b) {
				return false
			}
		}
		return h.get("cache").GetStatus() == addons.StatusRunning
	})

	// Paused: the next run cannot happen, and says so.
	if _, err := h.client.PauseAddon(as(adminCred), &addonsv1.PauseAddonRequest{ProjectId: projectID, AddonId: "cache"}); err != nil {
		t.Fatal(err)
	}
	h.clock.advance(31 * time.Minute)
	waitFor(t, 30*time.Second, "the schedule to fail", func() bool { return h.schedules("cache")[0].GetStatus() == "failed" })
	if msg := h.schedules("cache")[0].GetStatusMessage(); !strings.Contains(msg, "paused") {
		t.Fatalf("status message %q", msg)
	}
	evs := eventstest.Collect(t, h.js, []string{events.SubjectFor("addons", "schedule", "failed")}, 1, 0, nil)
	if len(evs) != 1 || eventstest.DataField(evs[0], "addonId") != "cache" {
		t.Fatalf("schedule.failed events %v", evs)
	}
}

// TestScheduleAndImportToDestination: a schedule with customDestinationId
// (refused with 404 when the team has no such destination) takes its
// backups into that destination (a real S3 server), verified; retention
// pruning deletes their objects there; an import with
// customDestinationId stores the imported file there; the service names
// the addon whose schedule uses the destination (what refuses deleting
// it).
func TestScheduleAndImportToDestination(t *testing.T) {
	h := newHarness(t)
	s3 := testenv.S3(t)
	st, err := objstore.NewS3(objstore.S3Config{Endpoint: s3.Endpoint, Region: s3.Region, Bucket: s3.Bucket,
		Prefix: "slipway", AccessKey: s3.AccessKey, SecretKey: s3.SecretKey, PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	h.destinations = func(_ context.Context, team, id string) (objstore.Store, error) {
		if team != teamID || id != "offsite" {
			return nil, apierr.NotFound("backup destination", id)
		}
		return st, nil
	}
	h.start()
	// inS3 and inDataDir are the files of backup id on the S3 server's
	// disk and in Slipway's data directory.
	files := func(root, id string) []string {
		var out []string
		_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasPrefix(d.Name(), id) {
				out = append(out, path)
			}
			return nil
		})
		return out
	}
	h.create(spec("cache", engine.TypeRedis))
	h.waitStatus("cache", addons.StatusRunning)

	sched := func(dest string) (*addonsv1.CreateBackupScheduleResponse, error) {
		return h.client.CreateBackupSchedule(as(adminCred), &addonsv1.CreateBackupScheduleRequest{ProjectId: projectID, AddonId: "cache",
			Scheduling: &addonsv1.Scheduling{Interval: "hourly", Minute: []int32{0, 30}}, BackupType: "dump", RetentionTime: 1,
			CustomDestinationId: dest})
	}
	_, err = sched("missing")
	wantCode(t, err, codes.NotFound, "")
	if _, err := sched("offsite"); err != nil {
		t.Fatal(err)
	}
	scheds := h.schedules("cache")
	if len(scheds) != 1 || scheds[0].GetCustomDestinationId() != "offsite" {
		t.Fatalf("schedules %v", scheds)
	}
	if project, addon, err := h.svc.DestinationSchedule(context.Background(), teamID, "offsite"); err != nil || project != projectID || addon != "cache" {
		t.Fatalf("DestinationSchedule = %q, %q, %v", project, addon, err)
	}
	if _, addon, err := h.svc.DestinationSchedule(context.Background(), "other", "offsite"); err != nil || addon != "" {
		t.Fatalf("another team's DestinationSchedule = %q, %v", addon, err)
	}

	done := func(b *addonsv1.Backup) bool {
		return b.GetStatus() != addons.JobInProgress && b.GetVerification().GetStatus() != addons.VerifyPending
	}
	h.clock.advance(31 * time.Minute)
	var first *addonsv1.Backup
	waitFor(t, 30*time.Second, "the scheduled backup", func() bool {
		list := h.backups("cache")
		if len(list) == 0 {
			return false
		}
		first = list[0]
		return true
	})
	first = h.waitBackup("cache", first.GetId(), done)
	if first.GetStatus() != addons.JobCompleted || first.GetVerification().GetStatus() != addons.VerifyVerified ||
		first.GetCustomDestinationId() != "offsite" || first.GetScheduleId() != scheds[0].GetId() {
		t.Fatalf("scheduled backup %v", first)
	}
	started := eventstest.Collect(t, h.js, []string{events.SubjectFor("addons", "backup", "started")}, 1, 0, nil)
	if len(started) != 1 || eventstest.DataField(started[0], "id") != first.GetId() ||
		eventstest.DataField(started[0], "scheduleId") != scheds[0].GetId() || eventstest.DataField(started[0], "status") != addons.JobInProgress {
		t.Fatalf("backup.started events %v", started)
	}
	stored := files(s3.Dir, first.GetId())
	if len(stored) != 1 || len(files(h.dataDir, first.GetId())) != 0 {
		t.Fatalf("the scheduled backup's files: S3 %v, data directory %v", stored, files(h.dataDir, first.GetId()))
	}
	waitFor(t, 60*time.Second, "the addon to be running", func() bool { return h.get("cache").GetStatus() == addons.StatusRunning })

	// Import the scheduled dump back, into the destination.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, stored[0]) }))
	t.Cleanup(srv.Close)
	_, err = h.client.ImportBackup(as(adminCred), &addonsv1.ImportBackupRequest{ProjectId: projectID, AddonId: "cache",
		ImportUrl: srv.URL + "/dump.gz", CustomDestinationId: "missing"})
	wantCode(t, err, codes.NotFound, "")
	imp, err := h.client.ImportBackup(as(adminCred), &addonsv1.ImportBackupRequest{ProjectId: projectID, AddonId: "cache",
		ImportUrl: srv.URL + "/dump.gz", CustomDestinationId: "offsite"})
	if err != nil {
		t.Fatal(err)
	}
	imported := h.waitBackup("cache", imp.GetBackup().GetId(), done)
	if imported.GetStatus() != addons.JobCompleted || imported.GetVerification().GetStatus() != addons.VerifyVerified ||
		imported.GetCustomDestinationId() != "offsite" {
		t.Fatalf("imported backup %v", imported)
	}
	if got := files(s3.Dir, imported.GetId()); len(got) != 1 || len(files(h.dataDir, imported.GetId())) != 0 {
		t.Fatalf("the import's files: S3 %v, data directory %v", got, files(h.dataDir, imported.GetId()))
	}
	waitFor(t, 60*time.Second, "the import's restore", func() bool { return h.get("cache").GetStatus() == addons.StatusRunning })

	// Past the retention time: the scheduled backup and its object go.
	h.clock.advance(25 * time.Hour)
	waitFor(t, 30*time.Second, "pruning", func() bool {
		_, err := h.client.GetBackup(as(adminCred), &addonsv1.GetBackupRequest{ProjectId: projectID, AddonId: "cache", BackupId: first.GetId()})
		return err != nil && strings.Contains(err.Error(), "not found")
	})
	if got := files(s3.Dir, first.GetId()); len(got) != 0 {
		t.Fatalf("the pruned backup's object is still on the S3 server: %v", got)
	}
	// Let the run the clock jump started finish.
	waitFor(t, 60*time.Second, "idle", func() bool {
		for _, b := range h.backups("cache") {
			if !done(b) {
				return false
			}
		}
		return h.get("cache").GetStatus() == addons.StatusRunning
	})
}
