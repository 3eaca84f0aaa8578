package addons

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/runtime"
	"github.com/slipwayhq/slipway/services/addons/engine"
)

// stopGrace is how long a server gets to shut down cleanly (a database
// flushes on SIGTERM) before it is killed.
const stopGrace = 30 * time.Second

// workloads are an addon's workloads of one role (engine.RoleServer or
// engine.RoleVerify), running or not.
func (s *Service) workloads(ctx context.Context, a Addon, role string) ([]runtime.Status, error) {
	return s.opts.Driver.List(ctx, map[string]string{engine.LabelAddon: a.InternalID, engine.LabelRole: role})
}

// runningServer is the id of the addon's running server; "" when none.
func (s *Service) runningServer(ctx context.Context, a Addon) (string, error) {
	list, err := s.workloads(ctx, a, engine.RoleServer)
	if err != nil {
		return "", err
	}
	for _, w := range list {
		if w.State == runtime.StateRunning {
			return w.ID, nil
		}
	}
	return "", nil
}

// removeWorkloads stops and removes the addon's workloads of role.
func (s *Service) removeWorkloads(ctx context.Context, a Addon, role string) error {
	list, err := s.workloads(ctx, a, role)
	if err != nil {
		return err
	}
	for _, w := range list {
		if err := s.removeWorkload(ctx, w.ID); err != nil {
			return err
		}
	}
	return nil
}

// removeVolumes removes the addon's data volumes of role (every role when
// empty) on a driver that keeps volumes (docker); on the process driver
// the data is in the addon's directory. Its workloads must be gone.
func (s *Service) removeVolumes(ctx context.Context, a Addon, role string) error {
	vs, ok := s.opts.Driver.(runtime.Volumes)
	if !ok {
		return nil
	}
	labels := map[string]string{engine.LabelAddon: a.InternalID}
	if role != "" {
		labels[engine.LabelRole] = role
	}
	list, err := vs.ListVolumes(ctx, labels)
	if err != nil {
		return err
	}
	for _, v := range list {
		if err := vs.RemoveVolume(ctx, v.Name); err != nil && !errors.Is(err, runtime.ErrNotFound) {
			return err
		}
	}
	return nil
}

// removeWorkload stops a workload (SIGTERM, then a kill after stopGrace)
// and removes it.
func (s *Service) removeWorkload(ctx context.Context, id string) error {
	if err := s.opts.Driver.Stop(ctx, id, stopGrace); err != nil && !errors.Is(err, runtime.ErrNotFound) {
		return err
	}
	waitCtx, cancel := context.WithTimeout(ctx, stopGrace+10*time.Second)
	_, err := s.opts.Driver.Wait(waitCtx, id)
	cancel()
	if err != nil && !errors.Is(err, runtime.ErrNotFound) {
		return err
	}
	if err := s.opts.Driver.Remove(ctx, id); err != nil && !errors.Is(err, runtime.ErrNotFound) {
		return err
	}
	return nil
}

// startServer starts the addon's server unless it runs, and waits until
// it answers. The caller holds the addon's lock.
func (s *Service) startServer(ctx context.Context, a Addon) (string, error) {
	e, err := engineOf(a.Type)
	if err != nil {
		return "", err
	}
	ea := s.engineAddon(a)
	id, err := s.runningServer(ctx, a)
	if err != nil {
		return "", err
	}
	if id == "" {
		// Exited servers are removed first: their names are the new one's.
		if err := s.removeWorkloads(ctx, a, engine.RoleServer); err != nil {
			return "", err
		}
		if err := engine.PrepareData(ctx, e, s.opts.Driver, ea); err != nil {
			return "", err
		}
		spec, err := e.Spec(ea)
		if err != nil {
			return "", err
		}
		if id, err = s.opts.Driver.Start(ctx, spec); err != nil {
			return "", err
		}
	}
	s.pumpLogs(a, id)
	readyCtx, cancel := context.WithTimeout(ctx, s.opts.ReadyTimeout)
	defer cancel()
	if err := engine.WaitReady(readyCtx, e, s.opts.Driver, id, ea); err != nil {
		return id, err
	}
	return id, nil
}

// setStatus records an addon's status (and why), announcing it.
func (s *Service) setStatus(ctx context.Context, a Addon, status, message string) (Addon, error) {
	return s.store.UpdateAddon(ctx, a.TeamID, a.ProjectID, a.ID, func(cur *Addon) ([]events.Event, error) {
		if cur.Status == status && cur.StatusMessage == message {
			return nil, nil
		}
		cur.Status, cur.StatusMessage, cur.UpdatedAt = status, message, s.now()
		return addonEvents(events.ResourceUpdated, *cur)
	})
}

// transition records status (and why) only when the addon is in one of
// from: work that ends (a start, a backup, a restore) must not overwrite
// what a client did meanwhile (paused, deleting).
func (s *Service) transition(ctx context.Context, a Addon, from []string, status, message string) {
	_, err := s.store.UpdateAddon(ctx, a.TeamID, a.ProjectID, a.ID, func(cur *Addon) ([]events.Event, error) {
		if !contains(from, cur.Status) || (cur.Status == status && cur.StatusMessage == message) {
			return nil, nil
		}
		cur.Status, cur.StatusMessage, cur.UpdatedAt = status, message, s.now()
		return addonEvents(events.ResourceUpdated, *cur)
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		s.log.Warn("recording an addon's status", "addon", a.ID, "status", status, "error", err)
	}
}

// stopping reports whether the service is shutting down.
func (s *Service) stopping() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ctx.Err() != nil
}

// bringUp starts the addon's server in the background and records
// running, or failed with why. With source set, the new addon is then
// restored from that backup (a fork).
func (s *Service) bringUp(a Addon, then func(ctx context.Context, a Addon, server string) error) {
	s.background(func(ctx context.Context) {
		l := s.lock(a.InternalID)
		l.Lock()
		defer l.Unlock()
		cur, err := s.store.GetAddon(ctx, a.TeamID, a.ProjectID, a.ID)
		if err != nil || cur.InternalID != a.InternalID || cur.Status == StatusPaused || cur.Status == StatusDeleting {
			return // deleted, replaced, paused or being deleted meanwhile
		}
		id, err := s.startServer(ctx, cur)
		if err == nil && then != nil {
			err = then(ctx, cur, id)
		}
		if ctx.Err() != nil {
			return // shutting down: the next start takes it back
		}
		starting := []string{StatusPreDeployment, StatusRestore, StatusFailed, StatusRunning}
		if err != nil {
			s.log.Warn("addon server did not start", "addon", a.ID, "project", a.ProjectID, "error", err)
			s.transition(ctx, cur, starting, StatusFailed, trimMessage("the server did not start: "+userMessage(err)))
			return
		}
		s.transition(ctx, cur, starting, StatusRunning, "")
	})
}

// stopServer stops and removes the addon's server and its verification
// instances, keeping the data. The caller holds the addon's lock.
func (s *Service) stopServer(ctx context.Context, a Addon) error {
	if err := s.removeWorkloads(ctx, a, engine.RoleVerify); err != nil {
		return err
	}
	return s.removeWorkloads(ctx, a, engine.RoleServer)
}

// destroy removes everything of an addon: its work in progress, its
// workloads, its backups' files, its directory, then its rows.
func (s *Service) destroy(ctx context.Context, a Addon) error {
	for _, kind := range []string{"backup", "restore"} {
		s.mu.Lock()
		for key, cancel := range s.cancels {
			if len(key) > len(kind)+len(a.InternalID)+2 && key[:len(kind)+1+len(a.InternalID)+1] == kind+"/"+a.InternalID+"/" {
				cancel()
			}
		}
		s.mu.Unlock()
	}
	l := s.lock(a.InternalID)
	l.Lock()
	defer l.Unlock()
	if err := s.stopServer(ctx, a); err != nil {
		return err
	}
	backups, err := s.store.AddonBackups(ctx, a.TeamID, a.ProjectID, a.ID)
	if err != nil {
		return err
	}
	for _, b := range backups {
		if b.Key != "" {
			if err := s.deleteFile(ctx, b); err != nil {
				return err
			}
		}
	}
	// Helpers left by a crash, then the data volumes (docker: the
	// server's and any verification instance's), then the host directory.
	if err := s.removeWorkloads(ctx, a, engine.RoleHelper); err != nil {
		return err
	}
	if err := s.removeVolumes(ctx, a, ""); err != nil {
		return err
	}
	if err := os.RemoveAll(s.addonDir(a)); err != nil {
		return err
	}
	evs, err := addonEvents(events.ResourceDeleted, a)
	if err != nil {
		return err
	}
	if err := s.store.DeleteAddon(ctx, a.TeamID, a.ProjectID, a.ID, evs...); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	return nil
}

// recover puts every addon back in a consistent state after a start:
// what a crash interrupted is concluded (an interrupted backup is failed;
// an interrupted restore is failed and the addon keeps its previous data,
// which the engines guarantee), servers that should run are started,
// paused ones stopped, deletions finished, throwaway verification
// instances removed and pending verifications run again.
func (s *Service) recover(ctx context.Context) {
	const interrupted = "interrupted by a restart of Slipway"
	backups, err := s.store.ActiveBackups(ctx)
	if err != nil {
		s.log.Error("recovery: listing unfinished backups", "error", err)
	}
	var verify []Backup
	for _, b := range backups {
		if b.Status == JobCompleted {
			verify = append(verify, b)
			continue
		}
		_, err := s.store.UpdateBackup(ctx, b.TeamID, b.ProjectID, b.AddonID, b.ID, func(cur *Backup) ([]events.Event, error) {
			switch cur.Status {
			case JobScheduled, JobInProgress:
				cur.Status, cur.StatusMessage = JobFailed, "the backup was "+interrupted
			case JobAborting:
				cur.Status, cur.StatusMessage = JobAborted, "aborted"
			default:
				return nil, nil
			}
			cur.CompletedAt = s.now()
			cur.Verification = Verification{Status: VerifyFailed, Message: "no backup to verify: " + cur.StatusMessage}
			return backupEndEvents(*cur)
		})
		if err != nil {
			s.log.Error("recovery: failing an interrupted backup", "backup", b.ID, "error", err)
			continue
		}
		if b.Key != "" {
			_ = s.deleteFile(ctx, b) // a partial file, if any
		}
		s.log.Warn("recovery: an interrupted backup is failed", "backup", b.ID, "addon", b.AddonID)
	}
	restores, err := s.store.ActiveRestores(ctx)
	if err != nil {
		s.log.Error("recovery: listing unfinished restores", "error", err)
	}
	for _, r := range restores {
		_, err := s.store.UpdateRestore(ctx, r.TeamID, r.ProjectID, r.AddonID, r.ID, func(cur *Restore) ([]events.Event, error) {
			cur.Status, cur.CompletedAt = JobFailed, s.now()
			// The engine's tool may have run on in the server after Slipway
			// died, so which data the addon holds is not known here; the
			// engines restore all or nothing, so it is one or the other.
			cur.StatusMessage = "the restore was " + interrupted + " and did not report its end: the addon holds either " +
				"the data it had before or the backup's, never a mix; restore again to be sure"
			if r.Status == JobAborting {
				cur.Status = JobAborted
			}
			return nil, nil
		})
		if err != nil {
			s.log.Error("recovery: failing an interrupted restore", "restore", r.ID, "error", err)
		}
	}
	all, err := s.store.AllAddons(ctx)
	if err != nil {
		s.log.Error("recovery: listing addons", "error", err)
		return
	}
	for _, a := range all {
		if err := s.removeWorkloads(ctx, a, engine.RoleVerify); err != nil {
			s.log.Warn("recovery: removing verification instances", "addon", a.ID, "error", err)
		}
		if err := s.removeWorkloads(ctx, a, engine.RoleHelper); err != nil {
			s.log.Warn("recovery: removing data helpers", "addon", a.ID, "error", err)
		}
		if err := s.removeVolumes(ctx, a, engine.RoleVerify); err != nil {
			s.log.Warn("recovery: removing verification volumes", "addon", a.ID, "error", err)
		}
		_ = os.RemoveAll(verifyRoot(s.addonDir(a)))
		switch a.Status {
		case StatusDeleting:
			s.background(func(ctx context.Context) {
				if err := s.destroy(ctx, a); err != nil {
					s.log.Error("recovery: finishing a deletion", "addon", a.ID, "error", err)
				}
			})
		case StatusPaused:
			l := s.lock(a.InternalID)
			l.Lock()
			if err := s.stopServer(ctx, a); err != nil {
				s.log.Warn("recovery: stopping a paused addon", "addon", a.ID, "error", err)
			}
			l.Unlock()
		default:
			// preDeployment, running, backup, restore, upgrading, failed:
			// the server should run; backup and restore were concluded
			// above.
			if a.Status == StatusResetting {
				// Finish the reset: the data goes before the server starts.
				if err := s.stopServer(ctx, a); err != nil {
					s.log.Warn("recovery: stopping an addon being reset", "addon", a.ID, "error", err)
					continue
				}
				if err := engine.RemoveData(ctx, s.opts.Driver, s.engineAddon(a)); err != nil {
					s.log.Warn("recovery: emptying an addon being reset", "addon", a.ID, "error", err)
					continue
				}
			}
			if a.Status == StatusBackup || a.Status == StatusRestore || a.Status == StatusUpgrading || a.Status == StatusResetting {
				a, _ = s.setStatus(ctx, a, StatusPreDeployment, "")
			}
			s.bringUp(a, nil)
		}
	}
	for _, b := range verify {
		s.background(func(ctx context.Context) { s.verify(ctx, b) })
	}
}

// userMessage is what an error says to a client: the engines' errors
// describe the tool's failure without secrets (engine.ToolError redacts
// passwords); anything else is summarised.
func userMessage(err error) string {
	var te *engine.ToolError
	if errors.As(err, &te) {
		return te.Error()
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "it took too long"
	case errors.Is(err, context.Canceled):
		return "aborted"
	}
	return err.Error()
}

// ---- events

// addonEventData is the data of the addon lifecycle events.
type addonEventData struct {
	TeamID    string `json:"teamId"`
	ProjectID string `json:"projectId"`
	ID        string `json:"id"`
	Name      string `json:"name"`
	Type      string `json:"type"`
	Status    string `json:"status"`
	Message   string `json:"message,omitempty"`
}

// addonEvents are "slipway.addons.addon.<verb>" and the shared
// project-resource event (projects list addons and refuse to delete a
// project that holds one).
func addonEvents(verb events.ResourceVerb, a Addon) ([]events.Event, error) {
	own, err := events.New("addons", "addon", string(verb), a.TeamID+"/"+a.ProjectID+"/"+a.ID, addonEventData{
		TeamID: a.TeamID, ProjectID: a.ProjectID, ID: a.ID, Name: a.Name, Type: a.Type, Status: a.Status, Message: a.StatusMessage,
	})
	if err != nil {
		return nil, err
	}
	shared, err := events.NewProjectResource("addons", verb, events.ProjectResource{
		TeamID: a.TeamID, ProjectID: a.ProjectID, Kind: events.ResourceAddon, ID: a.ID,
		Name: a.Name, Description: a.Settings.Description, Type: a.Type,
	})
	if err != nil {
		return nil, err
	}
	return []events.Event{own, shared}, nil
}

// backupEventData is the data of the backup events.
type backupEventData struct {
	TeamID       string `json:"teamId"`
	ProjectID    string `json:"projectId"`
	AddonID      string `json:"addonId"`
	ID           string `json:"id"`
	Name         string `json:"name"`
	Status       string `json:"status"`
	Message      string `json:"message,omitempty"`
	Verification string `json:"verification"`
	ScheduleID   string `json:"scheduleId,omitempty"`
}

// backupEvents is "slipway.addons.backup.<verb>": started (the backup is
// recorded in progress), completed, aborted (a client aborted it, or its
// addon was deleted) or failed (it or its verification did not succeed).
func backupEvents(verb string, b Backup) ([]events.Event, error) {
	ev, err := events.New("addons", "backup", verb, b.TeamID+"/"+b.ProjectID+"/"+b.AddonID+"/"+b.ID, backupEventData{
		TeamID: b.TeamID, ProjectID: b.ProjectID, AddonID: b.AddonID, ID: b.ID, Name: b.Name, Status: b.Status,
		Message: b.StatusMessage, Verification: b.Verification.Status, ScheduleID: b.ScheduleID,
	})
	if err != nil {
		return nil, err
	}
	return []events.Event{ev}, nil
}

// backupEndEvents is the event of a backup that has just concluded: its
// verb follows the status recorded (an abort is not a failure, so that
// notifications tell them apart: Northflank's addon-backup:abort and
// addon-backup:failure).
func backupEndEvents(b Backup) ([]events.Event, error) {
	switch b.Status {
	case JobCompleted:
		return backupEvents("completed", b)
	case JobAborted:
		return backupEvents("aborted", b)
	}
	return backupEvents("failed", b)
}

// scheduleFailedEvent is "slipway.addons.schedule.failed": a schedule's
// run could not happen.
func scheduleFailedEvent(sc Schedule) ([]events.Event, error) {
	ev, err := events.New("addons", "schedule", "failed", sc.TeamID+"/"+sc.ProjectID+"/"+sc.AddonID+"/"+sc.ID, map[string]string{
		"teamId": sc.TeamID, "projectId": sc.ProjectID, "addonId": sc.AddonID, "id": sc.ID, "message": sc.StatusMessage,
	})
	if err != nil {
		return nil, err
	}
	return []events.Event{ev}, nil
}

// ---- server logs

// logSubject carries an addon's (or a backup's, a restore's) stored lines
// to live tails, on core NATS, outside the event stream.
func logSubject(team, project, addon string, kind LogKind, ref string) string {
	return events.LiveSubject("addons", "logs", team, project, addon, string(kind), ref)
}

// appendLogs stores lines and announces them to live tails.
func (s *Service) appendLogs(ctx context.Context, lines []LogLine) {
	if len(lines) == 0 {
		return
	}
	stored, err := s.store.AppendLogs(ctx, lines)
	if err != nil {
		s.log.Warn("storing addon log lines", "error", err)
		return
	}
	l := stored[0]
	if b, err := json.Marshal(stored); err == nil && len(b) < 512<<10 {
		_ = s.opts.NATS.Publish(logSubject(l.TeamID, l.ProjectID, l.AddonID, l.Kind, l.Ref), b)
	}
}

// note stores one line of Slipway's own account of a backup or restore.
func (s *Service) note(ctx context.Context, a Addon, kind LogKind, ref, format string, args ...any) {
	s.appendLogs(context.WithoutCancel(ctx), []LogLine{{TeamID: a.TeamID, ProjectID: a.ProjectID, AddonID: a.ID, Kind: kind, Ref: ref,
		Time: s.opts.Clock().UTC(), Container: string(kind) + "-" + ref, Stream: "slipway", Text: fmt.Sprintf(format, args...)}})
}

// pumpLogs stores the server workload's log lines as its addon's, once
// per workload: lines older than the newest stored one are skipped, so a
// pump started again after a restart of Slipway does not store them twice.
func (s *Service) pumpLogs(a Addon, id string) {
	s.mu.Lock()
	if s.pumps[id] {
		s.mu.Unlock()
		return
	}
	s.pumps[id] = true
	s.mu.Unlock()
	s.background(func(ctx context.Context) {
		defer func() {
			s.mu.Lock()
			delete(s.pumps, id)
			s.mu.Unlock()
		}()
		var since time.Time
		if last, err := s.store.ReadLogs(ctx, LogQuery{TeamID: a.TeamID, ProjectID: a.ProjectID, AddonID: a.ID, Kind: LogAddon, Backward: true, Limit: 1}); err == nil && len(last) > 0 {
			since = last[0].Time
		}
		container := engine.WorkloadName(s.engineAddon(a))
		for line, err := range s.opts.Driver.Logs(ctx, id, true) {
			if err != nil {
				return
			}
			if !line.Time.After(since) {
				continue
			}
			s.appendLogs(ctx, []LogLine{{TeamID: a.TeamID, ProjectID: a.ProjectID, AddonID: a.ID, Kind: LogAddon,
				Time: line.Time, Container: container, Stream: line.Stream, Text: line.Text}})
		}
	})
}
