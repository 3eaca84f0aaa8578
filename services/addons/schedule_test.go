package addons_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	addonsv1 "github.com/slipwayhq/slipway/gen/slipway/addons/v1"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/events/eventstest"
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
// one; a run that cannot happen marks the schedule failed with why and
// writes schedule.failed; one schedule per interval and type.
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
