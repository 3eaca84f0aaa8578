package addons

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/objstore"
	"github.com/slipwayhq/slipway/services/addons/engine"
)

// newID returns a fresh id that sorts by creation time: 12 hex digits of
// Unix milliseconds, then 8 random ones (lists show newest first by id).
func newID(now time.Time) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%012x%s", now.UnixMilli(), hex.EncodeToString(b))
}

// backupKey names a backup's file in the object store: by team, project,
// the addon's internal id (never reused) and the backup id.
func backupKey(a Addon, b Backup) string {
	ext := ".dump"
	if b.Type == engine.BackupSnapshot {
		ext = ".tar"
	}
	switch b.Compression {
	case "gz":
		ext += ".gz"
	case "zstd":
		ext += ".zst"
	}
	return a.TeamID + "/" + a.ProjectID + "/" + a.InternalID + "/" + b.ID + ext
}

// backupOptions is what a backup is asked to be.
type backupOptions struct {
	Name, Type, Compression, DestinationID string
	ScheduleID                             string
	ExpiresAt                              time.Time
}

// startBackup records a backup of a and takes it in the background.
// Refused (409) when the addon does not run or another backup or restore
// of it is under way.
func (s *Service) startBackup(ctx context.Context, a Addon, o backupOptions) (Backup, error) {
	e, err := engineOf(a.Type)
	if err != nil {
		return Backup{}, err
	}
	if o.Type == "" {
		o.Type = engine.BackupSnapshot // Northflank's default
	}
	if !contains(e.Info(s.opts.Driver.Name()).BackupTypes, o.Type) {
		return Backup{}, apierr.InvalidField("backupType", fmt.Sprintf("%s addons do not take %s backups here", a.Type, o.Type))
	}
	if o.DestinationID != "" {
		// The destination must exist (404) before anything is recorded.
		if _, err := s.objects(ctx, Backup{TeamID: a.TeamID, DestinationID: o.DestinationID}); err != nil {
			return Backup{}, err
		}
	}
	if o.Compression == "" && o.Type == engine.BackupDump {
		o.Compression = "gz"
	}
	now := s.now()
	if o.Name == "" {
		o.Name = a.Name + " " + now.Format("2006-01-02 15:04:05")
	}
	b := Backup{
		TeamID: a.TeamID, ProjectID: a.ProjectID, AddonID: a.ID, ID: newID(now), Name: o.Name, Type: o.Type,
		Compression: o.Compression, SourceType: "sameAddon", Status: JobInProgress, AddonType: a.Type,
		AddonVersion: a.Settings.Version, ScheduleID: o.ScheduleID, ExpiresAt: o.ExpiresAt, CreatedAt: now,
		DestinationID: o.DestinationID, Verification: Verification{Status: VerifyPending},
	}
	if o.Type == engine.BackupSnapshot {
		b.SourceType = "snapshot"
	}
	b.Key = backupKey(a, b)
	// The addon's status says a backup is under way; only a running addon
	// takes one, and one thing at a time.
	if _, err := s.store.UpdateAddon(ctx, a.TeamID, a.ProjectID, a.ID, func(cur *Addon) ([]events.Event, error) {
		if cur.Status != StatusRunning {
			return nil, notRunning(*cur)
		}
		cur.Status, cur.UpdatedAt = StatusBackup, now
		return addonEvents(events.ResourceUpdated, *cur)
	}); err != nil {
		return Backup{}, apierr.FromStore(err, "addon", a.ID)
	}
	started, err := backupEvents("started", b)
	if err != nil {
		return Backup{}, err
	}
	if err := s.store.CreateBackup(ctx, b, started...); err != nil {
		s.transition(context.WithoutCancel(ctx), a, []string{StatusBackup, StatusRestore}, StatusRunning, "")
		return Backup{}, apierr.FromStore(err, "backup", b.ID)
	}
	s.background(func(ctx context.Context) { s.runBackup(ctx, a, b) })
	return b, nil
}

// notRunning is the refusal of work that needs the addon's server.
func notRunning(a Addon) error {
	return apierr.Conflict(apierr.ReasonAddonBusy, "addon %q is %s: it must be running for this", a.ID, a.Status)
}

// runBackup takes a backup: the source's check, then the dump or
// snapshot streamed (compressed) to the object store with its size and
// checksum, then the source's check again; then the addon is running
// again and the backup is verified.
func (s *Service) runBackup(ctx context.Context, a Addon, b Backup) {
	ctx, cancel := context.WithCancel(ctx)
	defer s.cancelable("backup/"+a.InternalID+"/"+b.ID, cancel)()
	l := s.lock(a.InternalID)
	l.Lock()
	source, size, sum, err := s.takeBackup(ctx, a, b)
	l.Unlock()
	if s.stopping() && errors.Is(err, context.Canceled) {
		return // Slipway is stopping: the next start fails it as interrupted
	}
	done := context.WithoutCancel(ctx)
	s.transition(done, a, []string{StatusBackup}, StatusRunning, "")
	b, uerr := s.store.UpdateBackup(done, b.TeamID, b.ProjectID, b.AddonID, b.ID, func(cur *Backup) ([]events.Event, error) {
		cur.CompletedAt = s.now()
		switch {
		case err == nil:
			cur.Status, cur.Size, cur.Checksum = JobCompleted, size, sum
			cur.Verification.Source = source
			return backupEvents("completed", *cur)
		case cur.Status == JobAborting || errors.Is(err, context.Canceled):
			cur.Status, cur.StatusMessage = JobAborted, "aborted"
		default:
			cur.Status, cur.StatusMessage = JobFailed, "the backup failed: "+userMessage(err)
		}
		cur.Verification = Verification{Status: VerifyFailed, Message: "no backup to verify: " + cur.StatusMessage}
		return backupEndEvents(*cur)
	})
	if uerr != nil {
		s.log.Error("recording a backup's outcome", "backup", b.ID, "error", uerr)
		return
	}
	if err != nil {
		_ = s.deleteFile(done, b)
		s.note(done, a, LogBackup, b.ID, "%s", b.StatusMessage)
		s.log.Warn("backup failed", "addon", a.ID, "backup", b.ID, "error", err)
		return
	}
	s.note(done, a, LogBackup, b.ID, "stored %d bytes, sha256 %s", size, sum)
	s.verify(ctx, b)
}

// takeBackup checks the source, streams the dump or snapshot through the
// compressor, a counter and a hash into the object store, and checks the
// source again: an addon written to while the backup ran is backed up as
// it was at one moment in between (the tools take consistent copies), so
// verification compares the restored copy with both checks (sourceCheck).
func (s *Service) takeBackup(ctx context.Context, a Addon, b Backup) (map[string]any, int64, string, error) {
	e, err := engineOf(a.Type)
	if err != nil {
		return nil, 0, "", err
	}
	ea := s.engineAddon(a)
	id, err := s.runningServer(ctx, a)
	if err != nil {
		return nil, 0, "", err
	}
	if id == "" {
		return nil, 0, "", errors.New("the addon's server is not running")
	}
	s.note(ctx, a, LogBackup, b.ID, "checking what %s holds", a.Name)
	before, err := e.Check(ctx, s.opts.Driver, id, ea)
	if err != nil {
		return nil, 0, "", err
	}
	s.note(ctx, a, LogBackup, b.ID, "source: %s; taking a %s", before.Summary(), b.Type)
	pr, pw := io.Pipe()
	go func() {
		out, err := compressor(pw, b.Compression)
		if err == nil {
			if b.Type == engine.BackupSnapshot {
				err = e.Snapshot(ctx, s.opts.Driver, id, ea, out)
			} else {
				err = e.Dump(ctx, s.opts.Driver, id, ea, out)
			}
			if cerr := out.Close(); err == nil {
				err = cerr
			}
		}
		pw.CloseWithError(err)
	}()
	size, sum, err := s.putFile(ctx, b, pr)
	if err != nil {
		pr.CloseWithError(err)
		return nil, 0, "", err
	}
	// Without the check after, a write during the backup would make a
	// good backup fail verification; a backup whose source cannot be
	// checked again is not taken as verifiable.
	after, err := e.Check(ctx, s.opts.Driver, id, ea)
	if err != nil {
		return nil, 0, "", fmt.Errorf("checking the source after the backup: %w", err)
	}
	src := sourceCheck{Before: before, After: after}
	if src.changed() {
		s.note(ctx, a, LogBackup, b.ID, "the source changed while the backup ran: now %s", after.Summary())
	}
	return sourceCheckMap(src), size, sum, nil
}

// nopCloser adapts a writer that needs no closing.
type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// compressor wraps w in the backup's compression.
func compressor(w io.Writer, compression string) (io.WriteCloser, error) {
	switch compression {
	case "gz":
		return gzip.NewWriter(w), nil
	case "zstd":
		return zstd.NewWriter(w)
	}
	return nopCloser{w}, nil
}

// decompressor reads what compressor wrote.
func decompressor(r io.Reader, compression string) (io.ReadCloser, error) {
	switch compression {
	case "gz":
		return gzip.NewReader(r)
	case "zstd":
		d, err := zstd.NewReader(r)
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	}
	return io.NopCloser(r), nil
}

// checkMap is a check as the API shows it.
func checkMap(c engine.Check) map[string]any {
	counts := map[string]any{}
	for k, v := range c.Counts {
		counts[k] = v
	}
	out := map[string]any{"summary": c.Summary(), "counts": counts}
	if c.Schema != nil {
		schema := map[string]any{}
		for k, v := range c.Schema {
			schema[k] = v
		}
		out["schema"] = schema
	}
	return out
}

// checkFromMap reads back what checkMap made (after a JSON round trip).
func checkFromMap(m map[string]any) engine.Check {
	c := engine.Check{Counts: map[string]int64{}}
	if counts, ok := m["counts"].(map[string]any); ok {
		for k, v := range counts {
			switch n := v.(type) {
			case float64:
				c.Counts[k] = int64(n)
			case int64:
				c.Counts[k] = n
			}
		}
	}
	if schema, ok := m["schema"].(map[string]any); ok {
		c.Schema = map[string]string{}
		for k, v := range schema {
			c.Schema[k], _ = v.(string)
		}
	}
	return c
}

// fetchBackup copies a backup's file into a temporary file under the
// addon's directory, decompressed, after checking its size and checksum:
// a file that does not match is refused before anything is restored.
func (s *Service) fetchBackup(ctx context.Context, a Addon, b Backup) (string, error) {
	rc, err := s.getFile(ctx, b)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return "", errors.New("the backup's file is missing")
		}
		return "", err
	}
	defer rc.Close()
	dir := filepath.Join(s.addonDir(a), "tmp")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	raw, err := os.CreateTemp(dir, "fetch-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(raw.Name())
	defer raw.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(raw, h), objstore.ContextReader(ctx, rc))
	if err != nil {
		return "", err
	}
	if n != b.Size || hex.EncodeToString(h.Sum(nil)) != b.Checksum {
		return "", fmt.Errorf("the backup's file does not match its checksum (%d bytes stored, %d expected): it is corrupted", n, b.Size)
	}
	if _, err := raw.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	plain, err := os.CreateTemp(dir, "plain-*")
	if err != nil {
		return "", err
	}
	dec, err := decompressor(raw, b.Compression)
	if err == nil {
		_, err = io.Copy(plain, objstore.ContextReader(ctx, dec))
		dec.Close()
	}
	if cerr := plain.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(plain.Name())
		return "", fmt.Errorf("the backup's file cannot be decompressed: %w", err)
	}
	return plain.Name(), nil
}

// verifyRoot is where an addon's verification instances keep their data.
func verifyRoot(addonDir string) string { return filepath.Join(addonDir, "verify") }

// verify restores a completed backup into a throwaway instance
// (slipway.role: verify) and compares its check with the source's, taken
// before and after the backup (sourceCheck.compare): verified, or failed
// loudly (backup.failed event).
func (s *Service) verify(ctx context.Context, b Backup) {
	a, err := s.store.GetAddon(ctx, b.TeamID, b.ProjectID, b.AddonID)
	if err != nil {
		return
	}
	// One verification instance per addon at a time: they share a
	// workload name (engine.WorkloadName), and two backups taken in a row
	// may be verified at once otherwise.
	l := s.lock("verify/" + a.InternalID)
	l.Lock()
	result, src, verr := s.restoreThrowaway(ctx, a, b)
	l.Unlock()
	if ctx.Err() != nil && s.stopping() {
		return // stopping: verified again at the next start
	}
	done := context.WithoutCancel(ctx)
	updated, err := s.store.UpdateBackup(done, b.TeamID, b.ProjectID, b.AddonID, b.ID, func(cur *Backup) ([]events.Event, error) {
		cur.Verification.VerifiedAt = s.now()
		if verr != nil {
			cur.Verification.Status, cur.Verification.Message = VerifyFailed, "the backup does not restore: "+userMessage(verr)
			if result != nil {
				cur.Verification.Result = verificationResult(src, *result)
			}
			return backupEvents("failed", *cur)
		}
		cur.Verification.Status, cur.Verification.Result = VerifyVerified, verificationResult(src, *result)
		cur.Verification.Message = verifiedMessage(src, *result)
		return nil, nil
	})
	if err != nil {
		s.log.Error("recording a backup's verification", "backup", b.ID, "error", err)
		return
	}
	s.note(done, a, LogBackup, b.ID, "verification %s: %s", updated.Verification.Status, updated.Verification.Message)
	if verr != nil {
		s.log.Error("backup verification failed", "addon", a.ID, "project", a.ProjectID, "backup", b.ID, "error", verr)
	}
}

// restoreThrowaway starts a verification instance with fresh directories,
// restores the backup into it, checks it and compares with the source's
// checks (nil for an imported dump, which has no source to compare); the
// instance and its directories are removed afterwards.
func (s *Service) restoreThrowaway(ctx context.Context, a Addon, b Backup) (*engine.Check, *sourceCheck, error) {
	e, err := engineOf(a.Type)
	if err != nil {
		return nil, nil, err
	}
	file, err := s.fetchBackup(ctx, a, b)
	if err != nil {
		return nil, nil, err
	}
	defer os.Remove(file)
	va := s.engineAddon(a)
	va.Verify = true
	root := filepath.Join(verifyRoot(s.addonDir(a)), b.ID)
	va.DataDir, va.RunDir = filepath.Join(root, "data"), filepath.Join(root, "run")
	va.Volume = engine.VerifyVolume(a.InternalID, b.ID)
	defer os.RemoveAll(root)
	// Runs after the instance's removal below (deferred later).
	defer func() {
		if err := engine.RemoveData(context.WithoutCancel(ctx), s.opts.Driver, va); err != nil {
			s.log.Warn("removing a verification instance's data", "addon", a.ID, "backup", b.ID, "error", err)
		}
	}()
	s.note(ctx, a, LogBackup, b.ID, "verifying: restoring into a throwaway instance")
	if err := engine.PrepareData(ctx, e, s.opts.Driver, va); err != nil {
		return nil, nil, err
	}
	if b.Type == engine.BackupSnapshot {
		f, err := os.Open(file)
		if err != nil {
			return nil, nil, err
		}
		err = e.RestoreSnapshot(ctx, s.opts.Driver, va, f)
		f.Close()
		if err != nil {
			return nil, nil, err
		}
	}
	spec, err := e.Spec(va)
	if err != nil {
		return nil, nil, err
	}
	id, err := s.opts.Driver.Start(ctx, spec)
	if err != nil {
		return nil, nil, err
	}
	defer func() { _ = s.removeWorkload(context.WithoutCancel(ctx), id) }()
	readyCtx, cancel := context.WithTimeout(ctx, s.opts.ReadyTimeout)
	err = engine.WaitReady(readyCtx, e, s.opts.Driver, id, va)
	cancel()
	if err != nil {
		return nil, nil, err
	}
	if b.Type != engine.BackupSnapshot {
		f, err := os.Open(file)
		if err != nil {
			return nil, nil, err
		}
		err = e.Restore(ctx, s.opts.Driver, id, va, f)
		f.Close()
		if err != nil {
			return nil, nil, err
		}
	}
	got, err := e.Check(ctx, s.opts.Driver, id, va)
	if err != nil {
		return nil, nil, err
	}
	if b.Verification.Source == nil {
		return &got, nil, nil
	}
	src := sourceCheckFromMap(b.Verification.Source)
	return &got, &src, src.compare(got)
}

// contains reports whether list holds v.
func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// sizeString is a stored size for the API (Northflank's string of bytes).
func sizeString(n int64) string { return strconv.FormatInt(n, 10) }

// trimMessage bounds a message shown to clients.
func trimMessage(s string) string {
	if len(s) > 2000 {
		return s[:2000] + "…"
	}
	return strings.TrimSpace(s)
}
