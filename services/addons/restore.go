package addons

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/services/addons/engine"
)

// sourceBackup finds the backup a restore or a fork names: of the target
// addon itself, or of another addon of the same team (another team's is
// not found: 404). Only a completed backup of the same type restores.
func (s *Service) sourceBackup(ctx context.Context, target Addon, project, addon, id string) (Backup, Addon, error) {
	if project == "" {
		project = target.ProjectID
	}
	if addon == "" {
		addon = target.ID
	}
	src, err := s.store.GetAddon(ctx, target.TeamID, project, addon)
	if err != nil {
		return Backup{}, Addon{}, apierr.FromStore(err, "backup", id)
	}
	b, err := s.store.GetBackup(ctx, target.TeamID, project, addon, id)
	if err != nil {
		return Backup{}, Addon{}, apierr.FromStore(err, "backup", id)
	}
	if b.Status != JobCompleted {
		return Backup{}, Addon{}, apierr.Conflict(apierr.ReasonBackupNotRestorable, "backup %q is %s: only a completed backup restores", b.ID, b.Status)
	}
	if src.Type != target.Type {
		return Backup{}, Addon{}, apierr.Conflict(apierr.ReasonBackupNotRestorable, "backup %q is of a %s addon, not %s", b.ID, src.Type, target.Type)
	}
	if b.Type == engine.BackupSnapshot && b.AddonVersion != target.Settings.Version {
		return Backup{}, Addon{}, apierr.Conflict(apierr.ReasonBackupNotRestorable, "snapshot %q was taken of version %s: it restores only into that version (this addon runs %s)", b.ID, b.AddonVersion, target.Settings.Version)
	}
	return b, src, nil
}

// startRestore records a restore of b into a and runs it in the
// background. The addon must be running, and nothing else under way.
func (s *Service) startRestore(ctx context.Context, a Addon, b Backup) (Restore, error) {
	now := s.now()
	r := Restore{TeamID: a.TeamID, ProjectID: a.ProjectID, AddonID: a.ID, ID: newID(now),
		BackupProjectID: b.ProjectID, BackupAddonID: b.AddonID, BackupID: b.ID, Status: JobInProgress, CreatedAt: now}
	if _, err := s.store.UpdateAddon(ctx, a.TeamID, a.ProjectID, a.ID, func(cur *Addon) ([]events.Event, error) {
		if cur.Status != StatusRunning {
			return nil, notRunning(*cur)
		}
		cur.Status, cur.UpdatedAt = StatusRestore, now
		return addonEvents(events.ResourceUpdated, *cur)
	}); err != nil {
		return Restore{}, apierr.FromStore(err, "addon", a.ID)
	}
	if err := s.store.CreateRestore(ctx, r); err != nil {
		s.transition(context.WithoutCancel(ctx), a, []string{StatusBackup, StatusRestore}, StatusRunning, "")
		return Restore{}, apierr.FromStore(err, "restore", r.ID)
	}
	s.background(func(ctx context.Context) {
		l := s.lock(a.InternalID)
		l.Lock()
		err := s.runRestore(ctx, a, b, r)
		l.Unlock()
		s.finishRestore(ctx, a, r, err)
		if !s.stopping() {
			s.transition(context.WithoutCancel(ctx), a, []string{StatusRestore}, StatusRunning, "")
		}
	})
	return r, nil
}

// finishRestore records a restore's outcome.
func (s *Service) finishRestore(ctx context.Context, a Addon, r Restore, err error) {
	if s.stopping() && errors.Is(err, context.Canceled) {
		return // stopping: the next start fails it as interrupted
	}
	done := context.WithoutCancel(ctx)
	r, uerr := s.store.UpdateRestore(done, r.TeamID, r.ProjectID, r.AddonID, r.ID, func(cur *Restore) ([]events.Event, error) {
		cur.CompletedAt = s.now()
		switch {
		case err == nil:
			cur.Status = JobCompleted
		case cur.Status == JobAborting || errors.Is(err, context.Canceled):
			cur.Status, cur.StatusMessage = JobAborted, "aborted; the addon kept the data it had before the restore"
		default:
			cur.Status = JobFailed
			cur.StatusMessage = trimMessage("the restore failed and the addon kept the data it had before it: " + userMessage(err))
		}
		return nil, nil
	})
	if uerr != nil {
		s.log.Error("recording a restore's outcome", "restore", r.ID, "error", uerr)
		return
	}
	if err != nil {
		s.note(done, a, LogRestore, r.ID, "%s", r.StatusMessage)
		s.log.Warn("restore failed", "addon", a.ID, "restore", r.ID, "error", err)
	} else {
		s.note(done, a, LogRestore, r.ID, "restore completed")
	}
}

// runRestore restores backup b into a's server. The backup's file is
// fetched and checked first (a corrupted file changes nothing). A dump is
// restored into the running server, all or nothing (the engines restore
// in one transaction, or load aside and swap); a snapshot needs the
// server stopped: the engine unpacks it next to the data and swaps only
// once complete, and the server is started again either way, on the new
// data or the previous.
func (s *Service) runRestore(ctx context.Context, a Addon, b Backup, r Restore) error {
	ctx, cancel := context.WithCancel(ctx)
	defer s.cancelable("restore/"+a.InternalID+"/"+r.ID, cancel)()
	e, err := engineOf(a.Type)
	if err != nil {
		return err
	}
	s.note(ctx, a, LogRestore, r.ID, "fetching backup %s (%d bytes) and checking its checksum", b.ID, b.Size)
	file, err := s.fetchBackup(ctx, a, b)
	if err != nil {
		return err
	}
	defer os.Remove(file)
	ea := s.engineAddon(a)
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	if b.Type != engine.BackupSnapshot {
		id, err := s.runningServer(ctx, a)
		if err != nil {
			return err
		}
		if id == "" {
			return errors.New("the addon's server is not running")
		}
		s.note(ctx, a, LogRestore, r.ID, "restoring the dump into the running server")
		return e.Restore(ctx, s.opts.Driver, id, ea, f)
	}
	s.note(ctx, a, LogRestore, r.ID, "stopping the server to restore the snapshot")
	if err := s.stopServer(ctx, a); err != nil {
		return err
	}
	rerr := e.RestoreSnapshot(ctx, s.opts.Driver, ea, f)
	// Whatever happened, the server runs again: on the restored data, or
	// on the previous data RestoreSnapshot left in place.
	if _, err := s.startServer(context.WithoutCancel(ctx), a); err != nil {
		if rerr != nil {
			return fmt.Errorf("%v; the server did not start again on the previous data: %w", rerr, err)
		}
		return fmt.Errorf("the server did not start on the restored data: %w", err)
	}
	return rerr
}

// fork restores a new addon from its source backup once its server runs
// (create with source): the addon's status is restore meanwhile.
func (s *Service) fork(b Backup) func(ctx context.Context, a Addon, server string) error {
	return func(ctx context.Context, a Addon, _ string) error {
		now := s.now()
		r := Restore{TeamID: a.TeamID, ProjectID: a.ProjectID, AddonID: a.ID, ID: newID(now),
			BackupProjectID: b.ProjectID, BackupAddonID: b.AddonID, BackupID: b.ID, Status: JobInProgress, CreatedAt: now}
		if err := s.store.CreateRestore(ctx, r); err != nil {
			return err
		}
		cur, err := s.setStatus(ctx, a, StatusRestore, "")
		if err != nil {
			return err
		}
		err = s.runRestore(ctx, cur, b, r)
		s.finishRestore(ctx, cur, r, err)
		if err != nil {
			return fmt.Errorf("restoring backup %s: %w", b.ID, err)
		}
		return nil
	}
}
