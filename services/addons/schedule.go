package addons

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	addonsv1 "github.com/slipwayhq/slipway/gen/slipway/addons/v1"
	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/services/addons/engine"
)

// scheduleSpec is what a schedule request gives (the create body and the
// backupSchedules of an addon have the same fields).
type scheduleSpec interface {
	GetScheduling() *addonsv1.Scheduling
	GetBackupType() string
	GetCustomDestinationId() string
	GetAdditionalDestinations() []*addonsv1.AdditionalDestination
	GetCompressionType() string
	GetRetentionTime() int32
}

// scheduleOfSpec checks one schedule of an addon (field prefixes its
// fields in errors) and returns it with its first run. A
// customDestinationId must name one of the team's backup destinations
// (404 otherwise), as a manual backup's must.
func (s *Service) scheduleOfSpec(ctx context.Context, a Addon, spec scheduleSpec, info engine.TypeInfo, field string) (Schedule, error) {
	sc := spec.GetScheduling()
	in := func(name string) string { return field + "scheduling." + name }
	minutes, hours, days := ints(sc.GetMinute()), ints(sc.GetHour()), ints(sc.GetDay())
	switch sc.GetInterval() {
	case "hourly":
		if len(hours) > 0 {
			return Schedule{}, apierr.InvalidField(in("hour"), "an hourly schedule runs every hour: give no hour")
		}
		if len(days) > 0 {
			return Schedule{}, apierr.InvalidField(in("day"), "an hourly schedule runs every day: give no day")
		}
	case "daily":
		if len(hours) == 0 {
			return Schedule{}, apierr.InvalidField(in("hour"), "a daily schedule needs at least one hour")
		}
		if len(days) > 0 {
			return Schedule{}, apierr.InvalidField(in("day"), "a daily schedule runs every day: give no day")
		}
	case "weekly":
		if len(hours) == 0 {
			return Schedule{}, apierr.InvalidField(in("hour"), "a weekly schedule needs at least one hour")
		}
		if len(days) == 0 {
			return Schedule{}, apierr.InvalidField(in("day"), "a weekly schedule needs at least one day (0 = Monday … 6 = Sunday)")
		}
	default:
		return Schedule{}, apierr.InvalidField(in("interval"), "must be hourly, daily or weekly")
	}
	if len(minutes) == 0 {
		return Schedule{}, apierr.InvalidField(in("minute"), "needs at least one minute")
	}
	for _, check := range []struct {
		name     string
		list     []int
		min, max int
	}{{"minute", minutes, 0, 59}, {"hour", hours, 0, 23}, {"day", days, 0, 6}} {
		for _, v := range check.list {
			if v < check.min || v > check.max {
				return Schedule{}, apierr.InvalidField(in(check.name), fmt.Sprintf("%d is out of range %d to %d", v, check.min, check.max))
			}
		}
	}
	if !slices.Contains(info.BackupTypes, spec.GetBackupType()) {
		return Schedule{}, apierr.InvalidField(field+"backupType", fmt.Sprintf("%s addons do not take %s backups here", a.Type, spec.GetBackupType()))
	}
	if len(spec.GetAdditionalDestinations()) > 0 {
		return Schedule{}, apierr.InvalidField(field+"additionalDestinations", "additional backup destinations are not available: give customDestinationId to keep the backups in one destination")
	}
	if id := spec.GetCustomDestinationId(); id != "" {
		// The destination must exist now, not only when the first run is due.
		if _, err := s.objects(ctx, Backup{TeamID: a.TeamID, DestinationID: id}); err != nil {
			return Schedule{}, err
		}
	}
	if spec.GetRetentionTime() < 1 {
		return Schedule{}, apierr.InvalidField(field+"retentionTime", "must be at least 1 day")
	}
	compression := spec.GetCompressionType()
	if compression == "" && spec.GetBackupType() == engine.BackupDump {
		compression = "gz"
	}
	now := s.now()
	out := Schedule{TeamID: a.TeamID, ProjectID: a.ProjectID, AddonID: a.ID, ID: newID(now), Interval: sc.GetInterval(),
		Minute: minutes, Hour: hours, Day: days, BackupType: spec.GetBackupType(), Compression: compression,
		DestinationID: spec.GetCustomDestinationId(), RetentionDays: int(spec.GetRetentionTime()), Status: "ok", CreatedAt: now, UpdatedAt: now}
	sched, err := cronOf(out)
	if err != nil {
		return Schedule{}, apierr.InvalidField(field+"scheduling", err.Error())
	}
	out.NextRunAt = sched.Next(now)
	return out, nil
}

// schedulesOf checks an addon's backupSchedules: one per interval and
// backup type.
func (s *Service) schedulesOf(ctx context.Context, a Addon, specs []*addonsv1.BackupScheduleSpec, info engine.TypeInfo) ([]Schedule, error) {
	var out []Schedule
	seen := map[string]bool{}
	for i, spec := range specs {
		field := fmt.Sprintf("backupSchedules[%d].", i)
		sc, err := s.scheduleOfSpec(ctx, a, spec, info, field)
		if err != nil {
			return nil, err
		}
		key := sc.Interval + "/" + sc.BackupType
		if seen[key] {
			return nil, apierr.InvalidField(field+"scheduling.interval", fmt.Sprintf("only one %s %s schedule per addon", sc.Interval, sc.BackupType))
		}
		seen[key] = true
		sc.ID = fmt.Sprintf("%s%02d", sc.ID, i) // distinct within one request
		out = append(out, sc)
	}
	return out, nil
}

func ints(list []int32) []int {
	out := make([]int, len(list))
	for i, v := range list {
		out[i] = int(v)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// cronOf is a schedule as a cron schedule in UTC: Northflank's days count
// from Monday (0) while cron's count from Sunday (0), hence (d+1)%7.
func cronOf(sc Schedule) (cron.Schedule, error) {
	list := func(v []int, conv func(int) int) string {
		if len(v) == 0 {
			return "*"
		}
		parts := make([]string, len(v))
		for i, x := range v {
			parts[i] = strconv.Itoa(conv(x))
		}
		return strings.Join(parts, ",")
	}
	same := func(x int) int { return x }
	spec := fmt.Sprintf("%s %s * * %s", list(sc.Minute, same), list(sc.Hour, same), list(sc.Day, func(d int) int { return (d + 1) % 7 }))
	return cron.ParseStandard(spec)
}

// ListBackupSchedules implements AddonsService.
func (s *Service) ListBackupSchedules(ctx context.Context, req *addonsv1.ListBackupSchedulesRequest) (*addonsv1.ListBackupSchedulesResponse, error) {
	a, err := s.addon(ctx, req, req.GetAddonId())
	if err != nil {
		return nil, err
	}
	scope := "addon-schedules/" + a.TeamID + "/" + a.ProjectID + "/" + a.ID
	p, err := s.opts.Cursors.Parse(scope, req.GetPerPage(), req.GetPage(), req.GetCursor())
	if err != nil {
		return nil, err
	}
	list, more, total, err := s.store.ListSchedules(ctx, a.TeamID, a.ProjectID, a.ID, p)
	if err != nil {
		return nil, err
	}
	resp := &addonsv1.ListBackupSchedulesResponse{Schedules: make([]*addonsv1.BackupSchedule, 0, len(list))}
	last := ""
	for _, sc := range list {
		resp.Schedules = append(resp.Schedules, scheduleOf(sc))
		last = sc.ID
	}
	resp.Pagination = s.opts.Cursors.Result(scope, len(list), more, last, total)
	return resp, nil
}

// CreateBackupSchedule implements AddonsService.
func (s *Service) CreateBackupSchedule(ctx context.Context, req *addonsv1.CreateBackupScheduleRequest) (*addonsv1.CreateBackupScheduleResponse, error) {
	a, err := s.addon(ctx, req, req.GetAddonId())
	if err != nil {
		return nil, err
	}
	e, err := engineOf(a.Type)
	if err != nil {
		return nil, err
	}
	sc, err := s.scheduleOfSpec(ctx, a, req, e.Info(s.opts.Driver.Name()), "")
	if err != nil {
		return nil, err
	}
	if err := s.store.CreateSchedule(ctx, sc); err != nil {
		if isAlreadyExists(err) {
			return nil, apierr.Conflict(apierr.ReasonScheduleExists, "addon %q already has a %s %s backup schedule", a.ID, sc.Interval, sc.BackupType)
		}
		return nil, apierr.FromStore(err, "backup schedule", sc.ID)
	}
	return &addonsv1.CreateBackupScheduleResponse{Id: sc.ID}, nil
}

// DeleteBackupSchedule implements AddonsService.
func (s *Service) DeleteBackupSchedule(ctx context.Context, req *addonsv1.DeleteBackupScheduleRequest) (*addonsv1.DeleteBackupScheduleResponse, error) {
	a, err := s.addon(ctx, req, req.GetAddonId())
	if err != nil {
		return nil, err
	}
	if err := s.store.DeleteSchedule(ctx, a.TeamID, a.ProjectID, a.ID, req.GetScheduleId()); err != nil {
		return nil, apierr.FromStore(err, "backup schedule", req.GetScheduleId())
	}
	return &addonsv1.DeleteBackupScheduleResponse{}, nil
}

// fireSchedules starts the backups of every schedule that is due. A run
// that cannot happen (the addon is paused, failed, busy) is recorded on
// the schedule (status failed, with why) and announced with a
// schedule.failed event: never silent.
func (s *Service) fireSchedules(ctx context.Context) {
	all, err := s.store.AllSchedules(ctx)
	if err != nil {
		s.log.Warn("listing backup schedules", "error", err)
		return
	}
	now := s.now()
	for _, sc := range all {
		if sc.NextRunAt.IsZero() || sc.NextRunAt.After(now) {
			continue
		}
		sched, err := cronOf(sc)
		if err != nil {
			continue
		}
		sc.LastRunAt, sc.NextRunAt, sc.UpdatedAt = now, sched.Next(now), now
		var evs []events.Event
		a, err := s.store.GetAddon(ctx, sc.TeamID, sc.ProjectID, sc.AddonID)
		if err == nil {
			_, err = s.startBackup(ctx, a, backupOptions{Type: sc.BackupType, Compression: sc.Compression, ScheduleID: sc.ID,
				DestinationID: sc.DestinationID, Name: fmt.Sprintf("%s %s %s", a.Name, sc.Interval, now.Format("2006-01-02 15:04")),
				ExpiresAt: now.Add(time.Duration(sc.RetentionDays) * 24 * time.Hour)})
		}
		if err != nil {
			sc.Status, sc.StatusMessage = "failed", trimMessage(fmt.Sprintf("the backup due at %s could not run: %s", now.Format(time.RFC3339), userMessage(err)))
			if evs, err = scheduleFailedEvent(sc); err != nil {
				s.log.Error("building a schedule.failed event", "error", err)
			}
			s.log.Warn("a scheduled backup could not run", "addon", sc.AddonID, "schedule", sc.ID, "reason", sc.StatusMessage)
		} else {
			sc.Status, sc.StatusMessage = "ok", ""
		}
		if err := s.store.UpdateSchedule(ctx, sc, evs...); err != nil {
			s.log.Warn("recording a schedule's run", "schedule", sc.ID, "error", err)
		}
	}
}

// pruneExpired deletes scheduled backups past their schedule's retention
// (retained ones are never expired; manual ones have no expiry).
func (s *Service) pruneExpired(ctx context.Context) {
	list, err := s.store.ExpiredBackups(ctx, s.now())
	if err != nil {
		s.log.Warn("listing expired backups", "error", err)
		return
	}
	for _, b := range list {
		if b.Status == JobInProgress || b.Status == JobScheduled || b.Status == JobAborting {
			continue
		}
		if err := s.removeBackup(ctx, b); err != nil {
			s.log.Warn("pruning an expired backup", "backup", b.ID, "error", err)
			continue
		}
		s.log.Info("pruned an expired backup", "addon", b.AddonID, "backup", b.ID)
	}
}

// isAlreadyExists reports a store's ErrAlreadyExists.
func isAlreadyExists(err error) bool {
	e := apierr.From(apierr.FromStore(err, "x", "x"))
	return e != nil && e.Reason == apierr.ReasonAlreadyExists
}
